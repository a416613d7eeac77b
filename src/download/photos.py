"""Natural photographs to learn from: copied from a clone of https://github.com/Zelex/images and verified.

    git clone https://github.com/Zelex/images path/to/images    # no download here: the photos come from your clone
    python -m src.download.photos --from path/to/images [--out data/raw/photos]

    data/raw/photos/train/wikipedia-photos-001.png   the Wikipedia photos (~1300x800), all but every 7th
    data/raw/photos/val/wikipedia-photos-007.png     every 7th Wikipedia photo
    data/raw/photos/test/kodak-kodim01.png           the 24 Kodak images (768x512): the field's test set
    data/raw/photos/MANIFEST.json                    file -> SHA-256, size, split

Kodak is never trained on or used to choose a model (validation): it is the test split and only that.
``--data photos`` in training reads these three folders as its splits.

The committed manifest (``photos_manifest.json`` beside this file) lists every file with its SHA-256; each
copy is checked against it. Files are copied into a temporary folder beside ``--out``, checked, then the
folder is renamed into place: a missing or changed file stops the run in one line and leaves nothing behind.
A complete folder makes a re-run a no-op. ``--write-manifest`` makes the manifest from a clone (maintainers).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from src.cli import run_cli
from src.download.catalog import data_root
from src.download.download import file_digest, read_json, write_json
from src.errors import UserError

REPOSITORY = "https://github.com/Zelex/images"
MANIFEST = Path(__file__).with_name("photos_manifest.json")
VAL_EVERY = 7  # every 7th Wikipedia photo is validation
FIRST_FEW = 3  # missing files named in the error line


def plan(clone: Path) -> dict[str, tuple[str, str]]:
    """``{"train/wikipedia-photos-001.png": ("wikipedia-photos/001.png", "train"), ...}`` from a clone's files."""
    out: dict[str, tuple[str, str]] = {}
    wiki = sorted((clone / "wikipedia-photos").glob("*.png"))
    for i, path in enumerate(wiki, start=1):
        split = "val" if i % VAL_EVERY == 0 else "train"
        out[f"{split}/wikipedia-photos-{path.name}"] = (f"wikipedia-photos/{path.name}", split)
    for path in sorted((clone / "kodak").glob("kodim*.png")):  # the test set: never train, never val
        out[f"test/kodak-{path.name}"] = (f"kodak/{path.name}", "test")
    return out


def write_manifest(clone: Path, manifest: Path) -> dict:
    """Hash the files :func:`plan` picks from ``clone`` into ``manifest``; returns it."""
    files = {}
    for dest, (source, split) in plan(check_clone(clone)).items():
        path = clone / source
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                raise UserError(f"{path}: not a PNG (a Git LFS pointer or a partial checkout?)")
        files[dest] = {"from": source, "sha256": file_digest(path, "sha256"), "size": path.stat().st_size,
                       "split": split}
    if not any(f["split"] == "test" for f in files.values()) or not any(f["split"] == "train" for f in files.values()):
        raise UserError(f"{clone}: expected PNGs in both wikipedia-photos/ and kodak/ (a clone of {REPOSITORY})")
    data = {"source": REPOSITORY, "files": files}
    write_json(manifest, data)
    return data


def check_clone(clone: Path) -> Path:
    if not clone.is_dir():
        raise UserError(f"--from {clone}: no such folder; get the photos with `git clone {REPOSITORY}`")
    if not (clone / "wikipedia-photos").is_dir() and not (clone / "kodak").is_dir():
        raise UserError(f"--from {clone}: not a clone of {REPOSITORY} (no wikipedia-photos/ or kodak/ in it)")
    return clone


def read_manifest(manifest: Path) -> dict[str, dict]:
    files = read_json(manifest).get("files")
    if not files:
        raise UserError(f"{manifest}: missing or not a photos manifest; make it with --write-manifest")
    return files


def differences(folder: Path, files: dict[str, dict]) -> list[str]:
    """What in ``folder`` differs from ``files`` (the manifest's entries), one phrase each."""
    problems = []
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != entry["size"] or file_digest(path, "sha256") != entry["sha256"]:
            problems.append(f"{name} differs from the manifest (SHA-256 {entry['sha256'][:12]}...)")
    return problems


def is_complete(out: Path, files: dict[str, dict]) -> bool:
    return read_json(out / "MANIFEST.json").get("files") == files and not differences(out, files)


def copy_photos(clone: Path, out: Path, manifest: Path = MANIFEST) -> dict[str, int]:
    """Copy and verify every file of ``manifest`` from ``clone`` into ``out``; images per split."""
    files = read_manifest(manifest)
    counts = {s: sum(1 for e in files.values() if e["split"] == s) for s in ("train", "val", "test")}
    check_clone(clone)
    if out.exists() and is_complete(out, files):
        return counts
    missing = [e["from"] for e in files.values() if not (clone / e["from"]).is_file()]
    if missing:
        raise UserError(f"{len(missing)} of {len(files)} photos are missing from {clone}: "
                        f"{', '.join(missing[:FIRST_FEW])}{', ...' if len(missing) > FIRST_FEW else ''} "
                        f"(a partial clone of {REPOSITORY}?)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        why = (differences(out, files) or ["its MANIFEST.json differs"])[0] if out.is_dir() else "not a folder"
        raise UserError(f"--out {out} exists but does not match the manifest ({why}); delete it and run again")
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.*.copying"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".copying", dir=out.parent))
    try:
        for name, entry in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(clone / entry["from"], tmp / name)
        wrong = [f"{files[name]['from']} in {clone}" for name in files if differences(tmp, {name: files[name]})]
        if wrong:
            raise UserError(f"{wrong[0]} differs from the manifest {manifest.name} (SHA-256 or size)"
                            + (f", and {len(wrong) - 1} more" if len(wrong) > 1 else "")
                            + f"; nothing was written to {out}")
        write_json(tmp / "MANIFEST.json", {"source": REPOSITORY, "files": files})
        if out.is_dir():  # empty: checked above
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.download.photos", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="clone", type=Path, required=True, metavar="PATH",
                    help=f"a clone of {REPOSITORY}")
    ap.add_argument("--out", type=Path, default=None, help="where the photos go (default: data/raw/photos)")
    ap.add_argument("--manifest", type=Path, default=MANIFEST, help=f"expected files (default: {MANIFEST.name})")
    ap.add_argument("--write-manifest", action="store_true",
                    help="make --manifest from the clone instead of copying (maintainers)")
    args = ap.parse_args(argv)
    if args.write_manifest:
        files = write_manifest(args.clone, args.manifest)["files"]
        print(f"photos: {len(files)} files of {args.clone} listed with their SHA-256 in {args.manifest}")
        return 0
    out = args.out or data_root() / "raw" / "photos"
    counts = copy_photos(args.clone, out, args.manifest)
    print(f"photos: {counts['train']} train / {counts['val']} val / {counts['test']} test (kodak) images in {out}, "
          f"SHA-256 verified against {args.manifest.name}")
    return 0


if __name__ == "__main__":
    run_cli(main)
