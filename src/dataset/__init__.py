"""Images in: the embedded scikit-image set or a folder, read into RGB uint8, served as crops or whole."""
from src.dataset.datamodule import FilterDataModule, RandomCrops, WholeImages, to_tensor
from src.dataset.images import MAX_PIXELS, list_images, read_rgb, to_rgb_uint8, write_png
from src.dataset.sources import EMBEDDED_SPLITS, NamedImage, embedded_images, load_split

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
