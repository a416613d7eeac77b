"""One LightningDataModule for every filter: random crops for training, whole images for val/test."""
from __future__ import annotations

import pytorch_lightning as pl
import numpy as np
import torch
from typing import Callable, Iterator

from torch.utils.data import DataLoader, Dataset, Sampler

from src.dataset.crops import crop_rng, cut, pad_to, random_window, target_tensor, to_tensor  # noqa: F401 (re-exported)
from src.dataset.sources import load_split
from src.dataset.streaming import RankShard, StreamingCrops, StreamingWholeImages, collate_present, default_cache_mb, open_splits, shard_line
from src.io.images import NamedImage
from src.filters import Filter


class RandomCrops(Dataset):
    """Random ``crop`` x ``crop`` patches with random flips, images drawn by area; item ``i`` is the same
    patch for the same ``seed`` every time (see :func:`crop_rng`), whatever order items are asked in.

    Images smaller than the crop are reflect-padded up to it. The target is computed by the loader only
    when ``filter`` is given (filters without a torch twin); otherwise the model computes it on device.
    ``length`` is nominal (one epoch's worth); any integer index is a valid item.
    """

    def __init__(self, images: list[NamedImage], crop: int, length: int, filter: Filter | None = None, seed: int = 0):
        if not images:
            raise ValueError("no training images")
        self.images = [pad_to(im.rgb, crop) for im in images]
        self.shapes = [im.shape[:2] for im in self.images]
        areas = np.array([h * w for h, w in self.shapes], np.float64)
        self.weights = areas / areas.sum()
        self.crop, self.length, self.filter, self.seed = crop, length, filter, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i, y0, x0, fx, fy = random_window(crop_rng(self.seed, index), self.weights, self.shapes, self.crop)
        patch = cut(self.images[i], y0, x0, self.crop, fx, fy)
        item = {"input": to_tensor(patch)}
        if self.filter is not None:
            item["target"] = target_tensor(self.filter, patch)
        return item


class StepSampler(Sampler[int]):
    """Sample indices of one epoch, starting where training stands.

    ``batches_done()`` (the trainer's count of finished training batches) decides where an iteration
    starts: at an epoch boundary it yields the whole epoch, after a mid-epoch resume only the batches
    still to come. Batch ``b`` always holds samples ``b * batch_size ...``, so a run resumed at any step
    trains on the same crops as an uninterrupted one.
    """

    def __init__(self, batches_per_epoch: int, batch_size: int, batches_done: Callable[[], int] = lambda: 0):
        self.batches_per_epoch, self.batch_size, self.batches_done = batches_per_epoch, batch_size, batches_done

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size

    def __iter__(self) -> Iterator[int]:
        done = int(self.batches_done())
        first, end = done, done - done % self.batches_per_epoch + self.batches_per_epoch
        return iter(range(first * self.batch_size, end * self.batch_size))


class WholeImages(Dataset):
    """Images at native resolution, one per batch (sizes differ)."""

    def __init__(self, images: list[NamedImage], filter: Filter | None = None):
        self.images, self.filter = images, filter

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        im = self.images[index]
        item = {"input": to_tensor(im.rgb), "name": im.name}
        if self.filter is not None:
            item["target"] = target_tensor(self.filter, im.rgb)
        return item


class FilterDataModule(pl.LightningDataModule):
    """Input/target pairs for one filter from ``data`` (``"skimage"`` or a folder).

    Targets for filters with a torch implementation are computed on the model's device from the batch
    (cheap, and no CPU worker time); others are computed by the loader workers.
    """

    def __init__(
        self,
        filter: Filter,
        data: str = "skimage",
        crop: int = 64,
        batch_size: int = 32,
        steps_per_epoch: int = 100,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
        cache_mb: float | None = None,
    ):
        super().__init__()
        self.filter, self.data, self.crop, self.seed = filter, data, crop, seed
        self.cache_mb = cache_mb  # None: chosen from available memory (src.dataset.streaming)
        self.batch_size, self.steps_per_epoch = batch_size, steps_per_epoch
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.splits: dict[str, list[NamedImage]] = {}

    @property
    def targets_in_loader(self) -> bool:
        return self.filter.torch_fn is None

    def setup(self, stage: str | None = None) -> None:
        if self.data != "skimage" and not self.splits:  # files of any number: read by path, decoded on access
            budget = default_cache_mb() if self.cache_mb is None else self.cache_mb
            self.splits.update(open_splits(self.data, self.filter, budget))
        for split in ("train", "val", "test"):
            if split not in self.splits:
                self.splits[split] = load_split(self.data, split)

    def _loader(self, dataset: Dataset, batch_size: int, sampler: Sampler | None = None, collate_fn=None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=collate_fn,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def _batches_done(self) -> int:
        """Training batches finished so far (0 outside a trainer): where the next epoch's data starts."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        # Under DDP each rank runs 1/world_size of an epoch's batches; the sampler counts them all.
        return trainer.global_step // getattr(trainer.lightning_module, "steps_per_batch", 1) * trainer.world_size

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _train_images(self, shard: bool = True):
        images, (rank, world) = self.splits["train"], self._rank()
        if shard and world > 1 and len(images) >= world:  # under DDP each rank crops from its own files
            images = images[rank::world] if isinstance(images, list) else images.shard(rank, world)
        return images

    def _crops(self, shard: bool = True) -> Dataset:
        f = self.filter if self.targets_in_loader else None
        images = self._train_images(shard)
        if not isinstance(images, list):
            return StreamingCrops(images, self.crop, self.steps_per_epoch * self.batch_size, f, seed=self.seed)
        return RandomCrops(images, self.crop, self.steps_per_epoch * self.batch_size, f, seed=self.seed)

    def train_dataloader(self) -> DataLoader:
        sampler = StepSampler(self.steps_per_epoch, self.batch_size, self._batches_done)
        crops, (rank, world) = self._crops(), self._rank()
        if world > 1:  # disjoint crop indices per rank (Lightning keeps a DistributedSampler as it is)
            sampler = RankShard(sampler, rank, world)
            print(shard_line(self._train_images(), rank, world, len(self.splits["train"])))
        return self._loader(crops, self.batch_size, sampler)

    def fixed_batch(self, count: int) -> dict[str, torch.Tensor]:
        """``count`` training crops that never change for this seed: the data of a second-order finish.

        The same on every DDP rank: L-BFGS line searches must see one loss, or the ranks' steps diverge."""
        ds = self._crops(shard=False)
        items = [ds[-1 - i] for i in range(count)]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def _whole(self, split: str) -> DataLoader:
        f = self.filter if self.targets_in_loader else None
        images, (rank, world) = self.splits[split], self._rank()
        sampler = None
        # Each image on one rank, no padding: the metrics' sync averages every image once. Fewer images than
        # ranks: every rank scores all of them (each counted world_size times, the same mean).
        if world > 1 and len(images) >= world:
            sampler = RankShard(range(len(images)), rank, world)
        if isinstance(images, list):
            return self._loader(WholeImages(images, f), 1, sampler)
        return self._loader(StreamingWholeImages(images, f), 1, sampler, collate_present)

    def val_dataloader(self) -> DataLoader:
        return self._whole("val")

    def test_dataloader(self) -> DataLoader:
        return self._whole("test")
