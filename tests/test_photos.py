"""The photographs (``python -m src.download.photos``), from a small fake clone of github.com/Zelex/images built here."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.dataset.sources import load_split
from src.download import photos
from src.download.download import file_digest
from src.errors import UserError
from tests.conftest import run_module

WIKI = [f"{i:03d}.png" for i in range(1, 9)]  # 8 photos: 007 is the 7th, hence val
KODAK = ["kodim01.png", "kodim02.png"]


def png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (5, 7, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def clone(tmp_path):
    """A clone in the repository's layout, with the files a real one has besides the photos."""
    root = tmp_path / "images"
    for i, name in enumerate(WIKI):
        png(root / "wikipedia-photos" / name, i)
    for i, name in enumerate(KODAK):
        png(root / "kodak" / name, 100 + i)
    png(root / "kodak_highres" / "kodim01.png", 200)  # not the 768x512 set: ignored
    (root / "kodak" / ".DS_Store").write_bytes(b"\0")
    (root / "README.md").write_text("images\n")
    return root


@pytest.fixture
def manifest(clone, tmp_path):
    path = tmp_path / "manifest.json"
    assert photos.main(["--from", str(clone), "--write-manifest", "--manifest", str(path)]) == 0
    return path


def copy(clone, out, manifest):
    return photos.main(["--from", str(clone), "--out", str(out), "--manifest", str(manifest)])


def files_under(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_every_photo_is_copied_under_its_source_folders_name_and_matches_the_manifest(clone, manifest, tmp_path):
    out = tmp_path / "photos"
    assert copy(clone, out, manifest) == 0
    written = json.loads((out / "MANIFEST.json").read_text())["files"]
    assert set(written) == {str(p.relative_to(out)) for p in out.rglob("*.png")}
    assert "train/wikipedia-photos-001.png" in written and "test/kodak-kodim01.png" in written
    for name, entry in written.items():
        assert file_digest(out / name, "sha256") == entry["sha256"]
        assert (out / name).read_bytes() == (clone / entry["from"]).read_bytes()


def test_kodak_is_the_test_split_and_every_seventh_wikipedia_photo_is_val(clone, manifest, tmp_path):
    out = tmp_path / "photos"
    copy(clone, out, manifest)
    assert sorted(p.name for p in (out / "test").iterdir()) == ["kodak-kodim01.png", "kodak-kodim02.png"]
    assert sorted(p.name for p in (out / "val").iterdir()) == ["wikipedia-photos-007.png"]
    assert len(list((out / "train").iterdir())) == 7
    assert not [p for p in out.rglob("*kodim*") if p.parent.name != "test"]


def test_the_committed_manifest_keeps_all_24_kodak_images_in_test_only():
    files = json.loads(photos.MANIFEST.read_text())["files"]
    kodak = {name for name, e in files.items() if e["from"].startswith("kodak/")}
    assert len(kodak) == 24 and all(files[name]["split"] == "test" for name in kodak)
    assert {name for name, e in files.items() if e["split"] == "test"} == kodak
    assert {e["split"] for name, e in files.items() if name not in kodak} == {"train", "val"}


def test_a_changed_photo_is_refused_in_one_line_naming_it_and_nothing_is_left_behind(clone, manifest, tmp_path):
    png(clone / "wikipedia-photos" / "003.png", 999)
    out = tmp_path / "data" / "photos"
    res = run_module("src.download.photos", "--from", str(clone), "--out", str(out), "--manifest", str(manifest))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "wikipedia-photos/003.png" in res.stderr, res.stderr
    assert not out.exists() and not list(out.parent.iterdir())  # no half-written folder, no temporary one


def test_photos_missing_from_the_clone_are_refused_in_one_line_naming_the_first_few(clone, manifest, tmp_path):
    for name in ("001.png", "002.png", "003.png", "004.png"):
        (clone / "wikipedia-photos" / name).unlink()
    with pytest.raises(UserError, match=r"4 of 10 photos are missing .*wikipedia-photos/001.png, "
                                        r"wikipedia-photos/002.png, wikipedia-photos/003.png, \.\.\."):
        copy(clone, tmp_path / "photos", manifest)
    assert not (tmp_path / "photos").exists()


def test_a_missing_clone_is_refused_in_one_line_saying_how_to_get_it(tmp_path):
    res = run_module("src.download.photos", "--from", str(tmp_path / "nowhere"), "--out", str(tmp_path / "photos"))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "git clone https://github.com/Zelex/images" in res.stderr, res.stderr
    assert not (tmp_path / "photos").exists()


def test_a_rerun_changes_nothing(clone, manifest, tmp_path):
    out = tmp_path / "photos"
    copy(clone, out, manifest)
    before = files_under(out)
    assert copy(clone, out, manifest) == 0
    assert files_under(out) == before
    assert not list(tmp_path.glob(".photos.*"))


def test_data_photos_reads_the_three_folders_as_the_splits(clone, manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("LEARN_FILTERS_DATA", str(tmp_path / "data"))
    copy(clone, tmp_path / "data" / "raw" / "photos", manifest)
    splits = {s: [im.name for im in load_split("photos", s)] for s in ("train", "val", "test")}
    assert splits["test"] == ["kodak-kodim01.png", "kodak-kodim02.png"]
    assert splits["val"] == ["wikipedia-photos-007.png"]
    assert len(splits["train"]) == 7 and all(n.startswith("wikipedia-photos-") for n in splits["train"])
    assert load_split("photos", "train")[0].rgb.shape == (5, 7, 3)


def test_data_photos_without_the_folder_says_which_command_makes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARN_FILTERS_DATA", str(tmp_path))
    with pytest.raises(UserError) as err:
        load_split("photos", "train")
    assert "\n" not in str(err.value)
    assert "python -m src.download.photos --from <clone of https://github.com/Zelex/images>" in str(err.value)


def test_training_on_data_photos_streams_the_three_folders_as_the_splits(clone, manifest, tmp_path, monkeypatch):
    from src.dataset.streaming import open_splits  # torch: imported by this test only

    monkeypatch.setenv("LEARN_FILTERS_DATA", str(tmp_path / "data"))
    copy(clone, tmp_path / "data" / "raw" / "photos", manifest)
    splits = open_splits("photos", None, cache_mb=0, say=lambda line: None)
    assert {s: len(im) for s, im in splits.items()} == {"train": 7, "val": 1, "test": 2}
    assert [im.name for im in splits["test"]] == ["kodak-kodim01.png", "kodak-kodim02.png"]
