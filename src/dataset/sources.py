"""Where images come from: scikit-image's bundled photos (the default, no download) or a folder."""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.dataset.catalog import DATASETS, parse_data_spec
from src.dataset.images import list_images, read_rgb, to_rgb_uint8
from src.errors import UserError

# scikit-image ships these with its wheel. Split by image, so no test picture is ever trained on.
EMBEDDED_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "brick", "cell", "clock", "colorwheel", "grass", "gravel", "hubble_deep_field",
        "immunohistochemistry", "logo", "microaneurysms", "moon", "retina", "rocket", "text",
    ),
    "val": ("chelsea", "page"),
    "test": ("astronaut", "coffee", "camera", "coins"),
}
SPLITS = ("train", "val", "test")


@dataclass
class NamedImage:
    name: str
    rgb: np.ndarray  # (H, W, 3) uint8


def embedded_images(split: str) -> list[NamedImage]:
    """The bundled scikit-image pictures of one split, as RGB uint8 (gray ones stacked, alpha dropped)."""
    import skimage.data

    if split not in EMBEDDED_SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {SPLITS}")
    return [NamedImage(n, to_rgb_uint8(getattr(skimage.data, n)())) for n in EMBEDDED_SPLITS[split]]


def folder_split_of(relative_path: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """Deterministic split of one file by a hash of its relative path (stable as files are added)."""
    h = int(hashlib.sha1(relative_path.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if h < test_fraction:
        return "test"
    if h < test_fraction + val_fraction:
        return "val"
    return "train"


def folder_images(root: str | Path, split: str | None = None, problems: list[str] | None = None,
                  notes: list[str] | None = None) -> list[NamedImage]:
    """Images under ``root`` (recursive). ``split=None`` returns all of them (for evaluation).

    Files that are not images, or cannot be decoded, are skipped and counted in one warning (or, with
    ``problems``, each unreadable file's one-line reason is appended there instead). ``notes`` collects the
    conversions worth stating (float range, transparency, first of many frames), one line per file.
    """
    root = Path(root)
    paths, skipped = list_images(root)
    if split is not None:
        paths = _assign_folder_splits(root, paths)[split]
    out, bad = [], []
    for p in paths:
        said: list[str] | None = [] if notes is not None else None
        try:
            out.append(NamedImage(str(p.relative_to(root)) if p != root else p.name, read_rgb(p, notes=said)))
            if notes is not None:
                notes.extend(f"{p}: {n}" for n in said)
        except UserError as exc:
            bad.append(p.name)
            if problems is not None:
                problems.append(str(exc))
    if problems is not None:
        return out
    if skipped or bad:
        warnings.warn(f"{root}: skipped {skipped} non-image file(s) and {len(bad)} unreadable image(s)"
                      + (f" ({', '.join(bad[:5])}{'...' if len(bad) > 5 else ''})" if bad else ""), stacklevel=2)
    return out


def _assign_folder_splits(root: Path, paths: list[Path]) -> dict[str, list[Path]]:
    splits: dict[str, list[Path]] = {s: [] for s in SPLITS}
    for p in paths:
        splits[folder_split_of(str(p.relative_to(root)))].append(p)
    # Small folders: make sure val and test each get an image, taken from the end of train.
    for s in ("test", "val"):
        if not splits[s] and len(splits["train"]) >= 3:
            splits[s].append(splits["train"].pop())
    return splits


def load_split(data: str, split: str) -> list[NamedImage]:
    """Images of ``split`` from ``data``: ``"skimage"`` (embedded), a data set ``NAME[:SIZE]`` or a folder."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {SPLITS}")
    if data == "skimage":
        return embedded_images(split)
    if parse_data_spec(data) is not None:  # data/interim when prepared, else prepared now from data/raw
        from src.dataset.prepare import load_prepared_split

        return load_prepared_split(data, split)
    root = Path(data)
    if not root.exists():
        raise UserError(f"--data {data!r}: not 'skimage', a data set ({', '.join(DATASETS)}) or a folder")
    images = folder_images(root, split)
    if not images:
        found = len(list_images(root)[0])
        if found == 0:
            raise UserError(f"--data {data}: no image files in this folder")
        if found < 3:
            raise UserError(f"--data {data}: {found} image(s); a folder needs at least 3 (train, val and test get one each)")
        raise UserError(f"--data {data}: none of the images of the {split} split could be read")
    return images
