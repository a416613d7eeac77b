"""Images in: the embedded scikit-image set, real data sets or a folder, read into RGB uint8, served as crops or whole.

The Lightning data module is imported lazily, so the download and prepare commands start without torch.
"""
from src.io.images import MAX_PIXELS, list_images, read_rgb, to_rgb_uint8, write_png
from src.dataset.sources import EMBEDDED_SPLITS, embedded_images, load_split
from src.io.images import NamedImage

_LAZY = {"FilterDataModule", "RandomCrops", "WholeImages", "to_tensor"}


def __getattr__(name: str):
    if name in _LAZY:
        from src.dataset import datamodule  # lazy: the data commands start without torch

        return getattr(datamodule, name)
    raise AttributeError(f"module 'src.dataset' has no attribute {name!r}")


__all__ = [
    "EMBEDDED_SPLITS",
    "MAX_PIXELS",
    "FilterDataModule",
    "NamedImage",
    "RandomCrops",
    "WholeImages",
    "embedded_images",
    "list_images",
    "load_split",
    "read_rgb",
    "to_rgb_uint8",
    "to_tensor",
    "write_png",
]
