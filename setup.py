"""Create the project's folders: ``python setup.py`` (idempotent; prints what it made).

data/raw (immutable downloads), data/interim (decoded, resized), data/processed (input/target pairs),
figures/ (every figure the README shows), models/ (checkpoints).
"""
from __future__ import annotations

import sys
from pathlib import Path

FOLDERS = ("data/raw", "data/interim", "data/processed", "figures", "models")


def make_folders(root: Path) -> list[Path]:
    made = []
    for rel in FOLDERS:
        p = root / rel
        if not p.is_dir():
            p.mkdir(parents=True)
            made.append(p)
    return made


if __name__ == "__main__":
    if len(sys.argv) > 1:  # this is not a setuptools script; refuse its commands clearly
        print(f"error: setup.py only creates the project folders; got arguments {sys.argv[1:]}", file=sys.stderr)
        sys.exit(2)
    made = make_folders(Path(__file__).resolve().parent)
    for p in made:
        print(f"created {p}")
    print("all folders present" if not made else f"created {len(made)} folder(s)")
