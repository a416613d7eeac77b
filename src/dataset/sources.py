"""Where images come from: scikit-image's bundled photos (the default, no download) or a folder."""
from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from src.download.catalog import DATASETS, FOLDER_DATASETS, folder_dataset, parse_data_spec
from src.errors import UserError
from src.io.images import NamedImage, list_images, read_rgb, to_rgb_uint8
from src.io.splits import SPLITS, assign_splits

# scikit-image ships these with its wheel. Split by image, so no test picture is ever trained on.
EMBEDDED_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "brick", "cell", "clock", "colorwheel", "grass", "gravel", "hubble_deep_field",
        "immunohistochemistry", "logo", "microaneurysms", "moon", "retina", "rocket", "text",
    ),
    "val": ("chelsea", "page"),
    "test": ("astronaut", "coffee", "camera", "coins"),
}


def embedded_images(split: str) -> list[NamedImage]:
    """The bundled scikit-image pictures of one split, as RGB uint8 (gray ones stacked, alpha dropped)."""
    if split not in EMBEDDED_SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {SPLITS}")
    return [NamedImage(n, to_rgb_uint8(getattr(skimage.data, n)())) for n in EMBEDDED_SPLITS[split]]


def photo(megapixels: float) -> np.ndarray:
    """scikit-image's astronaut resized to a square of about ``megapixels`` (bicubic): the benchmarks' photo.

    >>> photo(0.01).shape
    (100, 100, 3)
    """
    side = max(1, int(round((megapixels * 1e6) ** 0.5)))
    return cv2.resize(skimage.data.astronaut(), (side, side), interpolation=cv2.INTER_CUBIC)


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
        paths = assign_splits(paths, lambda p: str(p.relative_to(root)))[split]
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


def load_split(data: str, split: str) -> list[NamedImage]:
    """Images of ``split`` from ``data``: ``"skimage"`` (embedded), a data set ``NAME[:SIZE]``, ``"photos"``
    (the images in data/raw/photos/SPLIT) or a folder."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {SPLITS}")
    if data == "skimage":
        return embedded_images(split)
    if parse_data_spec(data) is not None:  # data/interim when prepared, else prepared now from data/raw
        from src.download.prepare import load_prepared_split  # on use: prepare imports the filters, hence torch

        return load_prepared_split(data, split)
    if (named := folder_dataset(data)) is not None:
        if not (images := folder_images(named / split) if (named / split).is_dir() else []):
            raise UserError(f"--data {data}: no readable images in {named / split}")
        return images
    root = Path(data)
    if not root.exists():
        raise UserError(f"--data {data!r}: not 'skimage', a data set ({', '.join([*DATASETS, *FOLDER_DATASETS])}) or a folder")
    images = folder_images(root, split)
    if not images:
        found = len(list_images(root)[0])
        if found == 0:
            raise UserError(f"--data {data}: no image files in this folder")
        if found < 3:
            raise UserError(f"--data {data}: {found} image(s); a folder needs at least 3 (train, val and test get one each)")
        raise UserError(f"--data {data}: none of the images of the {split} split could be read")
    return images
