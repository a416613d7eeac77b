"""The batch folder tool (``python -m src.inference.predict`` on a folder, src/inference/folder.py): a tree with
a corrupt file, a nested folder and outputs from an earlier run."""
import importlib
import os

import numpy as np
import pytest
from PIL import Image

from src.cli import run_cli
from src.models import exact_sobel_net, save_model
from src.io.images import to_uint8
from src.inference.predict import predict

predict_cli = importlib.import_module("src.inference.predict")


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli(predict_cli.main, argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("m") / "sobel.ckpt", exact_sobel_net(), "compact", "sobel")


def rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def tree(tmp_path):
    """in/a.png, in/sub/b.jpg, in/sub/deep/c.png, in/bad.png (corrupt)."""
    src = tmp_path / "in"
    (src / "sub" / "deep").mkdir(parents=True)
    Image.fromarray(rgb(20, 30, 0)).save(src / "a.png")
    Image.fromarray(rgb(17, 13, 1)).save(src / "sub" / "b.jpg", quality=95)
    Image.fromarray(rgb(9, 11, 2)).save(src / "sub" / "deep" / "c.png")
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return src


def args(ckpt, src, out, *more):
    return ["--checkpoint", str(ckpt), "--input", str(src), "--output", str(out), "--no-progress", *more]


def test_folder_keeps_subfolders_and_names_and_counts_the_corrupt_file(ckpt, tree, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run_main(args(ckpt, tree, out, "--jobs", "3"), capsys)
    assert code == 1, "one file unreadable: exit 1, the others written"
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "sub/b.png", "sub/deep/c.png"]
    assert [line for line in stdout.splitlines() if line.startswith("skipped:")] == [
        line for line in stdout.splitlines() if "bad.png" in line]
    assert "3 written, 0 already done (skipped), 1 unreadable (skipped)" in stdout
    assert "images/s" in stdout and "MP/s" in stdout
    c = np.asarray(Image.open(out / "sub" / "deep" / "c.png"))
    assert np.array_equal(c, to_uint8(predict(exact_sobel_net(), rgb(9, 11, 2))))


def test_parallel_jobs_give_the_same_files_as_one(ckpt, tree, tmp_path, capsys):
    run_main(args(ckpt, tree, tmp_path / "one", "--jobs", "1"), capsys)
    run_main(args(ckpt, tree, tmp_path / "four", "--jobs", "4"), capsys)
    for name in ("a.png", "sub/b.png", "sub/deep/c.png"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "four" / name).read_bytes()


def test_a_second_run_skips_complete_outputs_and_redoes_a_truncated_one(ckpt, tree, tmp_path, capsys):
    out = tmp_path / "out"
    run_main(args(ckpt, tree, out), capsys)
    a_before = (out / "a.png").stat().st_mtime_ns
    full = (out / "sub" / "b.png").read_bytes()
    (out / "sub" / "b.png").write_bytes(full[: len(full) // 2])  # an output cut short (by another tool)
    os.utime(out / "a.png", ns=(1, 1))
    code, stdout, _ = run_main(args(ckpt, tree, out), capsys)
    assert "1 written, 2 already done (skipped), 1 unreadable" in stdout
    assert (out / "a.png").stat().st_mtime_ns == 1 != a_before, "a complete output is not rewritten"
    assert (out / "sub" / "b.png").read_bytes() == full


def test_overwrite_redoes_every_output(ckpt, tree, tmp_path, capsys):
    out = tmp_path / "out"
    run_main(args(ckpt, tree, out), capsys)
    code, stdout, _ = run_main(args(ckpt, tree, out, "--overwrite"), capsys)
    assert "3 written, 0 already done" in stdout


def test_no_temporary_file_is_left_beside_the_outputs(ckpt, tree, tmp_path, capsys):
    out = tmp_path / "out"
    run_main(args(ckpt, tree, out, "--jobs", "2"), capsys)
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix != ".png"]


def test_zero_jobs_is_refused_with_one_line(ckpt, tree, tmp_path, capsys):
    code, _, err = run_main(args(ckpt, tree, tmp_path / "out", "--jobs", "0"), capsys)
    assert code == 2 and "--jobs must be at least 1" in err and len(err.strip().splitlines()) == 1
