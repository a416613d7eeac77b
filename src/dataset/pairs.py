"""Learning a black-box filter from examples: a folder of inputs and a folder of their outputs.

    python -m src.experiment.train --pairs photos/before photos/after --model can

Files are matched by their path relative to the folder without the suffix (``a/x.jpg`` <-> ``a/x.png``),
and every pair must have the same width and height. All problems (inputs without an output, outputs
without an input, size mismatches, unreadable files) are collected and refused in one error before
training starts. Outputs that are gray in every file (R = G = B) are learned as one channel. Pairs
under a top folder named ``train``, ``val`` or ``test`` go to that split; the others are split by name.

The examples define a filter, ``get_filter("pairs", in_dir=..., out_dir=...)``, that knows its
outputs on exactly its example inputs (looked up by content), so evaluation and checkpoints work as
for any other filter. The split is by file name, as for a folder of images.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from src.dataset.datamodule import FilterDataModule, WholeImages, _pad_to, crop_rng, cut, random_window
from src.dataset.images import list_images, read_rgb
from src.dataset.sources import SPLITS, NamedImage, folder_split_of
from src.errors import UserError
from src.filters.registry import Filter

MAX_LISTED = 5


def _stem(path: Path, root: Path) -> str:
    return str(path.relative_to(root).with_suffix(""))


def _listed(items: list[str]) -> str:
    more = f", ... ({len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return ", ".join(items[:MAX_LISTED]) + more


def _by_stem(root: Path) -> dict[str, Path]:
    """Images of ``root`` by name without suffix; two files with one name (``x.png``, ``x.jpg``) are refused."""
    by_stem: dict[str, list[Path]] = {}
    for p in list_images(root)[0]:
        by_stem.setdefault(_stem(p, root), []).append(p)
    if ambiguous := sorted(" / ".join(q.name for q in ps) for ps in by_stem.values() if len(ps) > 1):
        raise UserError(f"--pairs: {len(ambiguous)} ambiguous name(s) in {root}, pairs are matched by name without "
                        f"the extension ({_listed(ambiguous)}); keep one file per name")
    return {k: ps[0] for k, ps in by_stem.items()}


def match_pairs(in_dir: str | Path, out_dir: str | Path) -> list[tuple[str, Path, Path]]:
    """``(name, input_path, output_path)`` for every matched pair; one ``UserError`` listing every mismatch."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    for d, what in ((in_dir, "input"), (out_dir, "output")):
        if not d.is_dir():
            raise UserError(f"--pairs: {what} folder {d} does not exist")
    ins, outs = _by_stem(in_dir), _by_stem(out_dir)
    problems = []
    if missing_out := sorted(set(ins) - set(outs)):
        problems.append(f"{len(missing_out)} input(s) without an output in {out_dir} ({_listed(missing_out)})")
    if missing_in := sorted(set(outs) - set(ins)):
        problems.append(f"{len(missing_in)} output(s) without an input in {in_dir} ({_listed(missing_in)})")
    if problems:
        raise UserError("--pairs: " + "; ".join(problems))
    if not ins:
        raise UserError(f"--pairs: no images in {in_dir} and {out_dir}")
    return [(name, ins[name], outs[name]) for name in sorted(ins)]


def _content_key(rgb: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(rgb).tobytes() + str(rgb.shape).encode()).hexdigest()


@lru_cache(maxsize=4)
def load_pairs(in_dir: str, out_dir: str) -> tuple[list[NamedImage], dict[str, np.ndarray], int]:
    """Inputs, their targets (float32 ``(H, W, C)`` in [0, 1], by content key) and the channel count C."""
    pairs = match_pairs(in_dir, out_dir)
    inputs, targets, problems = [], {}, []
    for name, pin, pout in pairs:
        try:
            rgb, out = read_rgb(pin), read_rgb(pout)
        except UserError as exc:
            problems.append(str(exc))
            continue
        if rgb.shape != out.shape:
            problems.append(f"{name}: input {rgb.shape[1]}x{rgb.shape[0]} vs output {out.shape[1]}x{out.shape[0]}")
            continue
        inputs.append(NamedImage(name, rgb))
        targets[_content_key(rgb)] = out
    if problems:
        raise UserError(f"--pairs: {len(problems)} pair(s) refused: {_listed(problems)}")
    gray = all((t[..., 0] == t[..., 1]).all() and (t[..., 0] == t[..., 2]).all() for t in targets.values())
    channels = 1 if gray else 3
    targets = {k: (t[..., :channels].astype(np.float32) / np.float32(255.0)) for k, t in targets.items()}
    return inputs, targets, channels


def pairs_filter(in_dir: str, out_dir: str) -> Filter:
    """The filter the examples define; it answers only for its example inputs."""
    in_dir, out_dir = str(in_dir), str(out_dir)
    _, targets, channels = load_pairs(in_dir, out_dir)

    def reference(rgb: np.ndarray) -> np.ndarray:
        t = targets.get(_content_key(rgb))
        if t is None:
            raise UserError(f"the 'pairs' filter knows only the {len(targets)} example inputs in {in_dir}; "
                            "this image is not one of them")
        return t[..., 0] if channels == 1 else t

    return Filter(name="pairs", params={"in_dir": in_dir, "out_dir": out_dir}, reference=reference,
                  out_channels=channels, description=f"examples {in_dir} -> {out_dir}",
                  extra={"key": f"pairs-{Path(out_dir).name or 'out'}"})


class PairedCrops(Dataset):
    """Random ``crop`` x ``crop`` patches cut at the same place from an input and its output, never flipped
    (an unknown filter need not commute with flips: a flipped pair teaches the mirrored kernel); item ``i``
    is a pure function of ``(seed, i)`` as in :class:`~src.dataset.datamodule.RandomCrops`."""

    def __init__(self, images: list[NamedImage], targets: dict[str, np.ndarray], crop: int, length: int, seed: int = 0):
        if not images:
            raise UserError("--pairs: no training pairs")
        stacked = [np.concatenate([im.rgb.astype(np.float32) / np.float32(255.0), targets[_content_key(im.rgb)]], 2)
                   for im in images]
        self.stacks = [_pad_to(s, crop) for s in stacked]
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
        self.splits = {s: [] for s in SPLITS}
        for im in inputs:
            top = Path(im.name).parts[0]
            self.splits[top if top in SPLITS and top != im.name else folder_split_of(im.name)].append(im)
        for s in ("test", "val"):  # small folders: val and test each get a pair, taken from train
            if not self.splits[s] and len(self.splits["train"]) >= 3:
                self.splits[s].append(self.splits["train"].pop())
        for s in SPLITS:
            if not self.splits[s]:  # fewer than 3 pairs: every split sees all of them
                self.splits[s] = list(inputs)

    def _crops(self) -> Dataset:
        return PairedCrops(self.splits["train"], self.targets, self.crop, self.steps_per_epoch * self.batch_size, self.seed)

    def val_dataloader(self):
        return self._loader(WholeImages(self.splits["val"], self.filter), 1)

    def test_dataloader(self):
        return self._loader(WholeImages(self.splits["test"], self.filter), 1)
