"""Training on example pairs (the ``pairs`` filter, :mod:`src.filters.pairs`): the same crops cut from an
input and its output (never flipped: an unknown filter need not commute with flips), whole images for
validation and test. The split is by file name, or by a top folder named ``train``, ``val`` or ``test``.

    python -m src.training.train --pairs photos/before photos/after --model can
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from src.dataset.datamodule import FilterDataModule, WholeImages
from src.dataset.crops import pad_to, crop_rng, cut, random_window
from src.io.splits import SPLITS, assign_splits
from src.errors import UserError
from src.filters.pairs import content_key, load_pairs
from src.filters.registry import Filter
from src.io.images import NamedImage


class PairedCrops(Dataset):
    """Random ``crop`` x ``crop`` patches cut at the same place from an input and its output, never flipped
    (an unknown filter need not commute with flips: a flipped pair teaches the mirrored kernel); item ``i``
    is a pure function of ``(seed, i)`` as in :class:`~src.dataset.datamodule.RandomCrops`."""

    def __init__(self, images: list[NamedImage], targets: dict[str, np.ndarray], crop: int, length: int, seed: int = 0):
        if not images:
            raise UserError("--pairs: no training pairs")
        stacked = [np.concatenate([im.rgb.astype(np.float32) / np.float32(255.0), targets[content_key(im.rgb)]], 2)
                   for im in images]
        self.stacks = [pad_to(s, crop) for s in stacked]
        self.shapes = [s.shape[:2] for s in self.stacks]
        areas = np.array([h * w for h, w in self.shapes], np.float64)
        self.weights = areas / areas.sum()
        self.crop, self.length, self.seed = crop, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i, y0, x0, _, _ = random_window(crop_rng(self.seed, index), self.weights, self.shapes, self.crop)
        t = torch.from_numpy(cut(self.stacks[i], y0, x0, self.crop, False, False).transpose(2, 0, 1).copy())
        return {"input": t[:3], "target": t[3:]}


class PairsDataModule(FilterDataModule):
    """:class:`FilterDataModule` over example pairs: paired crops for training, whole images for val/test."""

    targets_have_context = True  # a crop's target saw pixels outside the crop: FilterRegressor scores its interior

    def __init__(self, filter: Filter, **kwargs):
        super().__init__(filter, data=filter.params["in_dir"], **kwargs)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        inputs, self.targets, _ = load_pairs(self.filter.params["in_dir"], self.filter.params["out_dir"])
        self.splits = assign_splits(inputs, lambda im: im.name, by_folder=True)
        for s in SPLITS:
            if not self.splits[s]:  # fewer than 3 pairs: every split sees all of them
                self.splits[s] = list(inputs)

    def _crops(self, shard: bool = True) -> Dataset:  # example pairs are few: every rank sees all of them
        return PairedCrops(self.splits["train"], self.targets, self.crop, self.steps_per_epoch * self.batch_size, self.seed)

    def val_dataloader(self):
        return self._loader(WholeImages(self.splits["val"], self.filter), 1)

    def test_dataloader(self):
        return self._loader(WholeImages(self.splits["test"], self.filter), 1)
