"""One LightningDataModule for every filter: random crops for training, whole images for val/test."""
from __future__ import annotations

import pytorch_lightning as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from src.dataset.sources import NamedImage, load_split
from src.filters import Filter


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """RGB uint8 ``(H, W, 3)`` -> float32 ``(3, H, W)`` in [0, 1] (the same scaling as the filters)."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)


class RandomCrops(Dataset):
    """``length`` random ``crop`` x ``crop`` patches with random flips, images drawn by area.

    Images smaller than the crop are reflect-padded up to it. The target is computed by the loader only
    when ``filter`` is given (filters without a torch twin); otherwise the model computes it on device.
    """

    def __init__(self, images: list[NamedImage], crop: int, length: int, filter: Filter | None = None):
        if not images:
            raise ValueError("no training images")
        self.images = [_pad_to(im.rgb, crop) for im in images]
        areas = np.array([im.shape[0] * im.shape[1] for im in self.images], np.float64)
        self.weights = torch.from_numpy(areas / areas.sum())
        self.crop, self.length, self.filter = crop, length, filter

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        img = self.images[int(torch.multinomial(self.weights, 1))]
        h, w = img.shape[:2]
        y0 = int(torch.randint(0, h - self.crop + 1, ()))
        x0 = int(torch.randint(0, w - self.crop + 1, ()))
        patch = img[y0 : y0 + self.crop, x0 : x0 + self.crop]
        if torch.rand(()) < 0.5:
            patch = patch[:, ::-1]
        if torch.rand(()) < 0.5:
            patch = patch[::-1]
        patch = np.ascontiguousarray(patch)
        item = {"input": to_tensor(patch)}
        if self.filter is not None:
            item["target"] = _target_tensor(self.filter, patch)
        return item


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
            item["target"] = _target_tensor(self.filter, im.rgb)
        return item


def _target_tensor(filter: Filter, rgb: np.ndarray) -> torch.Tensor:
    t = filter(rgb)
    t = t[None] if t.ndim == 2 else t.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32))


def _pad_to(rgb: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    if h >= size and w >= size:
        return rgb
    ph, pw = max(0, size - h), max(0, size - w)
    if min(h, w) == 1:
        return np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return cv2.copyMakeBorder(rgb, 0, ph, 0, pw, cv2.BORDER_REFLECT_101)


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
    ):
        super().__init__()
        self.filter, self.data, self.crop = filter, data, crop
        self.batch_size, self.steps_per_epoch = batch_size, steps_per_epoch
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.splits: dict[str, list[NamedImage]] = {}

    @property
    def targets_in_loader(self) -> bool:
        return self.filter.torch_fn is None

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val", "test"):
            if split not in self.splits:
                self.splits[split] = load_split(self.data, split)

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        f = self.filter if self.targets_in_loader else None
        ds = RandomCrops(self.splits["train"], self.crop, self.steps_per_epoch * self.batch_size, f)
        return self._loader(ds, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        f = self.filter if self.targets_in_loader else None
        return self._loader(WholeImages(self.splits["val"], f), 1)

    def test_dataloader(self) -> DataLoader:
        f = self.filter if self.targets_in_loader else None
        return self._loader(WholeImages(self.splits["test"], f), 1)
