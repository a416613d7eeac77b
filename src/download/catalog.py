"""The real data sets by name: where they come from, how big they are, how to check them, how they unpack.

The URLs and MD5s of CIFAR-100 and Oxford-IIIT Pets are torchvision's (``CIFAR100.url``/``tgz_md5``,
``OxfordIIITPet._RESOURCES``; a test keeps them in step), and the raw folders use torchvision's layout,
so ``torchvision.datasets.CIFAR100("data/raw/cifar100")`` reads what ``download`` wrote.
mini-COCO has no published checksums: see ``download.py`` for what is verified instead.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from src.errors import UserError

SIZES = ("64", "128", "native")


@dataclass(frozen=True)
class Resource:
    """One file to fetch: ``filename`` is its path under the data set's raw folder."""

    url: str
    filename: str
    md5: str | None  # None: no published checksum (the sha256 is recorded on first download)
    size: int | None  # bytes; for the progress bar and --help
    unpacks_to: str | None = None  # the folder (beside ``filename``) a tar archive unpacks to


@dataclass(frozen=True)
class DataSet:
    name: str
    title: str
    homepage: str
    resources: tuple[Resource, ...]
    layout: str  # which reader in prepare.py understands the raw files
    default_size: str  # what ``--data NAME`` means without ``:SIZE``
    splits: str  # how train/val/test are made, in words
    images: int
    image_url: str | None = None  # mini-COCO: each listed image is fetched from image_url + file_name
    image_bytes: int | None = None  # total of those images, approximate

    @property
    def download_bytes(self) -> int:
        return sum(r.size or 0 for r in self.resources) + (self.image_bytes or 0)

    def sources(self) -> list[str]:
        urls = [r.url for r in self.resources]
        return urls + ([self.image_url + "..."] if self.image_url else [])


DATASETS: dict[str, DataSet] = {
    "mini-coco": DataSet(
        name="mini-coco",
        title="COCO minitrain: 25k images of COCO train2017 (Samet et al., HoughNet, ECCV 2020)",
        homepage="https://github.com/giddyyupp/coco-minitrain",
        # The image list is the published COCO-style annotation file; the authors share it on Google Drive.
        resources=(
            Resource(
                url="https://drive.usercontent.google.com/download?id=1lezhgY4M_Ag13w0dEzQ7x_zQ_w0ohjin"
                "&export=download&confirm=t",
                filename="instances_minitrain2017.json",
                md5=None,
                size=108_000_000,
            ),
        ),
        layout="coco-list",
        default_size="128",
        splits="80/10/10 % train/val/test by a hash of the file name",
        images=25_000,
        image_url="http://images.cocodataset.org/train2017/",
        image_bytes=25_000 * 160_000,  # COCO train2017 averages ~160 kB per JPEG
    ),
    "cifar100": DataSet(
        name="cifar100",
        title="CIFAR-100: 60k colour images, 32x32 (Krizhevsky, 2009)",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        resources=(
            Resource(
                url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                filename="cifar-100-python.tar.gz",
                md5="eb9058c3a382ffc7106e4002c42a8d85",
                size=169_001_437,
                unpacks_to="cifar-100-python",
            ),
        ),
        layout="cifar",
        default_size="native",
        splits="official test set; official train split 90/10 % train/val by a hash of the index",
        images=60_000,
    ),
    "oxford-pets": DataSet(
        name="oxford-pets",
        title="Oxford-IIIT Pets: 7.4k photos of 37 cat and dog breeds (Parkhi et al., CVPR 2012)",
        homepage="https://www.robots.ox.ac.uk/~vgg/data/pets/",
        resources=(
            Resource(
                url="https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
                filename="oxford-iiit-pet/images.tar.gz",
                md5="5c4f3ee8e5d25df40f4fd59a7f44e54c",
                size=791_918_971,
                unpacks_to="images",
            ),
            Resource(  # only for the official trainval/test lists
                url="https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
                filename="oxford-iiit-pet/annotations.tar.gz",
                md5="95a8c909bbe2e81eed6a22bccdf3f68f",
                size=19_173_078,
                unpacks_to="annotations",
            ),
        ),
        layout="pets",
        default_size="128",
        splits="official test list; official trainval list 90/10 % train/val by a hash of the name",
        images=7_349,
    ),
}


# Data sets that are a folder under data/raw whose train/, val/ and test/ subfolders are the splits, and the
# command that makes it (``--data photos``; ``--data ./photos`` is a folder of that name).
FOLDER_DATASETS: dict[str, str] = {
    "photos": "python -m src.download.photos --from <clone of https://github.com/Zelex/images>",
}


def folder_dataset(spec: str) -> Path | None:
    """``"photos"`` -> data/raw/photos, whose train/, val/ and test/ are the splits; ``None`` for other specs."""
    if spec not in FOLDER_DATASETS:
        return None
    folder = data_root() / "raw" / spec
    if not folder.is_dir():
        raise UserError(f"--data {spec}: no {folder}; run `{FOLDER_DATASETS[spec]}`")
    return folder


def get_dataset(name: str) -> DataSet:
    if name not in DATASETS:
        raise UserError(f"unknown data set {name!r}; available: {', '.join(DATASETS)}")
    return DATASETS[name]


def parse_data_spec(spec: str) -> tuple[DataSet, str] | None:
    """``"cifar100"`` or ``"mini-coco:64"`` -> (data set, size); ``None`` when ``spec`` names no data set."""
    name, _, size = spec.partition(":")
    if name not in DATASETS:
        return None
    size = size or DATASETS[name].default_size
    if size not in SIZES:
        raise UserError(f"--data {spec}: size must be one of {', '.join(SIZES)}, got {size!r}")
    return DATASETS[name], size


def data_root() -> Path:
    """The folder holding raw/, interim/ and processed/: $LEARN_FILTERS_DATA, else the repository's data/."""
    env = os.environ.get("LEARN_FILTERS_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data"


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError
