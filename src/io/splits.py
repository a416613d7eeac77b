"""Which split an image belongs to: a hash of its name, stable as files are added, with a fallback that
gives val and test one image each in a small folder.

May import: nothing from ``src``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
SPLITS = ("train", "val", "test")


def folder_split_of(relative_path: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """Deterministic split of one file by a hash of its relative path (stable as files are added)."""
    h = int(hashlib.sha1(relative_path.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if h < test_fraction:
        return "test"
    if h < test_fraction + val_fraction:
        return "val"
    return "train"


def assign_splits(items: Iterable[T], name: Callable[[T], str], by_folder: bool = False) -> dict[str, list[T]]:
    """``items`` by split of ``name(item)``; in a small folder, val and test each get one item taken from the
    end of train (when train has at least 3). ``by_folder``: a name under a top folder ``train``, ``val`` or
    ``test`` goes to that split.

    >>> assign_splits(["a", "b", "c", "d"], str)  # by hash: a, b and d in train, c in val; d moves to test
    {'train': ['a', 'b'], 'val': ['c'], 'test': ['d']}
    """
    splits: dict[str, list[T]] = {s: [] for s in SPLITS}
    for item in items:
        parts = Path(name(item)).parts
        top = parts[0] if by_folder and len(parts) > 1 and parts[0] in SPLITS else None
        splits[top or folder_split_of(name(item))].append(item)
    for s in ("test", "val"):
        if not splits[s] and len(splits["train"]) >= 3:
            splits[s].append(splits["train"].pop())
    return splits
