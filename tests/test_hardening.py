"""No wrong answer scored as perfect, no traceback, no lost output, no leftovers: one behaviour per test."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.io.images import list_images
from src.io.files import atomic_write_bytes, check_writable
from src.filters.pairs import match_pairs
from src.dataset.sources import load_split
from src.errors import UserError, one_line
from src.cli import run_cli, strict_json
from src.models import CompactNet, exact_sobel_net, save_model
from src.models.checkpoint import check_device
from src.demo.support import HeavyGate
from src.evaluation.metrics import image_metrics, psnr, ssim

predict_cli = importlib.import_module("src.inference.predict")
evaluate_cli = importlib.import_module("src.evaluation.evaluate")


def run_main(main, argv, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli(main, argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("m") / "sobel.ckpt", exact_sobel_net(), "compact", "sobel")


def small(path: Path, seed: int = 0) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(path)
    return path


# ---------------------------------------------------------------------------------- non-finite values
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_psnr_of_a_non_finite_prediction_is_nan_not_the_cap(bad):
    pred = np.zeros((16, 16), np.float32)
    pred[3, 4] = bad
    assert np.isnan(psnr(pred, np.zeros((16, 16))))
    assert np.isnan(ssim(pred, np.zeros((16, 16), np.float32)))


def test_psnr_in_chunks_equals_the_direct_formula(monkeypatch, rng):
    import src.evaluation.metrics as metrics

    a, b = rng.random((37, 41)), rng.random((37, 41))
    want = 10 * np.log10(1 / np.mean((a - b) ** 2))
    monkeypatch.setattr(metrics, "CHUNK", 100)
    assert psnr(a, b) == pytest.approx(want, rel=1e-12)


def test_sampled_ssim_is_close_to_the_full_one(rng):
    a = rng.random((400, 300)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    assert ssim(a, b, max_pixels=30_000) == pytest.approx(ssim(a, b), abs=0.01)


def test_image_metrics_of_a_nan_prediction_report_nan():
    pred = np.full((20, 20), np.nan, np.float32)
    m = image_metrics(pred, np.zeros((20, 20), np.float32))
    assert np.isnan(m["psnr"]) and np.isnan(m["border_psnr"]) and m["zero_psnr"] == 100.0


@pytest.mark.parametrize("where", ["weights", "metrics"])
def test_save_model_refuses_non_finite_values(where, tmp_path):
    net = CompactNet()
    metrics = {"test_psnr": 30.0}
    if where == "weights":
        with torch.no_grad():
            net.bank.weight[0, 0, 0, 0] = float("nan")
    else:
        metrics["test_psnr"] = float("inf")
    with pytest.raises(UserError, match="a diverged run"):
        save_model(tmp_path / "m.ckpt", net, "compact", "sobel", metrics=metrics)
    assert list(tmp_path.iterdir()) == []


def test_strict_json_writes_null_for_nan_and_parses_anywhere():
    text = strict_json({"psnr": float("nan"), "loss": float("-inf"), "rows": [1.5, float("inf")]})
    assert json.loads(text) == {"psnr": None, "loss": None, "rows": [1.5, None]}
    assert "NaN" not in text and "Infinity" not in text


# ------------------------------------------------------------------------------------- checkpoints
def test_a_declared_network_larger_than_its_weights_is_refused_before_any_allocation(tmp_path):
    """A CAN within the bounds (width 256, depth 16) over a few compact weights: its size is computed on
    the meta device and compared with the file's, so nothing of the declared size is ever allocated."""
    import resource

    blob = torch.load(save_model(tmp_path / "m.ckpt", exact_sobel_net(), "compact", "sobel"), weights_only=True)
    blob.update(model="can", model_kwargs={"width": 256, "depth": 16})  # within bounds: the size check refuses it
    torch.save(blob, tmp_path / "big.ckpt")
    from src.models import load_model

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UserError, match=r"weights do not fit a 'can' network .*values declared"):
        load_model(tmp_path / "big.ckpt")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # kB: nothing was allocated


# ----------------------------------------------------------------------------------- lost output
def test_predict_keeps_the_extension_when_names_collide(ckpt, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    small(src / "x.png", 0)
    Image.open(small(tmp_path / "tmp.png", 1)).save(src / "x.jpg", quality=95)
    code, out, err = run_main(predict_cli.main, ["--checkpoint", str(ckpt), "--input", str(src),
                                                 "--output", str(tmp_path / "out")], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.jpg.png", "x.png.png"]
    assert "share the name x.png" in out


def test_predict_refuses_to_overwrite_its_inputs(ckpt, tmp_path, capsys):
    small(tmp_path / "a.png")
    code, _, err = run_main(predict_cli.main, ["--checkpoint", str(ckpt), "--input", str(tmp_path),
                                               "--output", str(tmp_path)], capsys)
    assert code == 2 and "would overwrite input image(s)" in err


def test_pairs_with_two_files_of_one_name_are_refused(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    small(tmp_path / "in" / "x.png")
    small(tmp_path / "in" / "x.jpg")
    small(tmp_path / "out" / "x.png")
    with pytest.raises(UserError, match=r"1 ambiguous name\(s\) in .*\(x.jpg / x.png\)"):
        match_pairs(tmp_path / "in", tmp_path / "out")


def test_transparent_pixels_follow_the_alpha_option(ckpt, tmp_path, capsys):
    rgba = np.zeros((12, 16, 4), np.uint8)
    rgba[:, 8:, 3] = 255  # left half transparent black, right half opaque black
    Image.fromarray(rgba).save(tmp_path / "a.png")
    outs = {}
    for bg in ("white", "black"):
        code, out, err = run_main(predict_cli.main, ["--checkpoint", str(ckpt), "--input", str(tmp_path / "a.png"),
                                                     "--output", str(tmp_path / bg), "--alpha", bg], capsys)
        assert code == 0, err
        outs[bg] = np.asarray(Image.open(tmp_path / bg / "a.png"))
    assert outs["black"].max() == 0, "all black: no edge"
    assert outs["white"][:, 6:10].max() > 0, "the white/black boundary is an edge"


# ------------------------------------------------------------------------------ check early, one line
@pytest.mark.parametrize("make_output, reason", [
    (lambda t: (t / "file").write_text("x") and t / "file", "is a file, expected a folder"),
    (lambda t: (t / "file").write_text("x") and t / "file" / "sub", "cannot write there"),
])
def test_a_bad_output_folder_fails_before_any_work(make_output, reason, ckpt, tmp_path, capsys):
    src = small(tmp_path / "a.png")
    code, out, err = run_main(predict_cli.main, ["--checkpoint", str(ckpt), "--input", str(src),
                                                 "--output", str(make_output(tmp_path))], capsys)
    assert code == 2 and reason in err and out == "" and len(err.strip().splitlines()) == 1


def test_evaluate_checks_its_figures_folder_before_evaluating(ckpt, tmp_path, capsys):
    (tmp_path / "fig").mkdir()
    (tmp_path / "fig" / "ev.csv").mkdir()  # a folder where the CSV goes
    code, out, err = run_main(evaluate_cli.main, ["--checkpoint", str(ckpt), "--figures", str(tmp_path / "fig"),
                                                  "--name", "ev"], capsys)
    assert code == 2 and "ev.csv: is a folder, expected a file" in err and out == ""


@pytest.mark.parametrize("device, reason", [
    ("cuda" if not torch.cuda.is_available() else "cuda:99", "CUDA"),
    ("gpu0", "unknown device"),
    ("tpu", "unknown device"),
])
def test_unusable_devices_are_refused_in_one_line(device, reason, ckpt, tmp_path, capsys):
    with pytest.raises(UserError, match=reason):
        check_device(device)
    code, _, err = run_main(predict_cli.main, ["--checkpoint", str(ckpt), "--input", str(small(tmp_path / "a.png")),
                                               "--output", str(tmp_path / "out"), "--device", device], capsys)
    assert code == 2 and reason in err and not (tmp_path / "out").exists()


def test_run_cli_reports_os_errors_with_path_and_reason(tmp_path, capsys):
    def main(argv):
        open(tmp_path / "missing" / "x.txt")

    with pytest.raises(SystemExit) as info:
        run_cli(main, [])
    assert info.value.code == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing' / 'x.txt'}: No such file or directory\n"
    assert one_line(PermissionError(13, "Permission denied", "/x")) == "/x: Permission denied"


def test_a_filter_module_that_fails_at_import_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "lf_broken_filter.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from src.filters import get_filter

    with pytest.raises(UserError, match=r"importing 'lf_broken_filter' failed \(RuntimeError: boom at import\)"):
        get_filter("lf_broken_filter:f")


def test_a_missing_input_is_named_as_a_file_or_folder(tmp_path):
    with pytest.raises(UserError, match="missing.png: no such file or folder"):
        list_images(tmp_path / "missing.png")


def test_a_folder_of_two_images_says_it_is_too_small_to_split(tmp_path):
    for i in range(2):
        small(tmp_path / f"{i}.png", i)
    with pytest.raises(UserError, match="2 image\\(s\\); a folder needs at least 3"):
        for split in ("train", "val", "test"):
            load_split(str(tmp_path), split)


def test_a_text_file_as_checkpoint_says_it_is_not_a_pytorch_file(tmp_path):
    from src.models import load_model

    (tmp_path / "notes.ckpt").write_text("hello\n")
    with pytest.raises(UserError) as info:
        load_model(tmp_path / "notes.ckpt")
    assert str(info.value) == f"{tmp_path / 'notes.ckpt'}: not a readable checkpoint (not a PyTorch file)"


# ------------------------------------------------------------------------------------------ leftovers
def test_temp_files_of_dead_processes_are_cleaned_on_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".a.png.{dead.stdout.strip()}.x1y2z3.part"
    live = tmp_path / f".b.png.{os.getppid()}.x1y2z3.part"  # a running process's write in progress
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    atomic_write_bytes(tmp_path / "c.txt", b"done")
    assert not stale.exists() and live.exists() and (tmp_path / "c.txt").read_bytes() == b"done"


def test_old_style_temp_files_are_cleaned_once_an_hour_old(tmp_path):
    old, recent = tmp_path / ".a.png.ab12cd_9.part", tmp_path / ".b.png.zz12cd_9.part"
    for p in (old, recent):
        p.write_bytes(b"half")
    os.utime(old, (0, 0))
    atomic_write_bytes(tmp_path / "c.txt", b"done")
    assert not old.exists() and recent.exists()


def test_a_killed_write_leaves_a_temp_file_that_the_next_run_removes(tmp_path):
    code = ("import os, signal\nfrom src.io import files as images\n"
            "images.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
            f"images.atomic_write_bytes({str(tmp_path / 'x.png')!r}, b'data')\n")
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1])
    assert [p.name.endswith(".part") for p in tmp_path.iterdir()] == [True] and not (tmp_path / "x.png").exists()
    subprocess.run([sys.executable, "-c", "from src.io.files import atomic_write_bytes as w; "
                    f"w({str(tmp_path / 'y.png')!r}, b'ok')"], cwd=Path(__file__).resolve().parents[1], check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y.png"]


def test_check_writable_leaves_no_probe_file(tmp_path):
    check_writable(tmp_path / "new")
    assert list((tmp_path / "new").iterdir()) == []


# ------------------------------------------------------------------------------------------------ demo
def test_the_large_image_lane_refuses_beyond_its_waiting_room():
    gate = HeavyGate(workers=1, waiting=1)
    with gate.slot():
        import threading

        entered = threading.Event()
        release = threading.Event()

        def waiter():
            with gate.slot():
                entered.set()
            release.set()

        t = threading.Thread(target=waiter)
        t.start()
        import time

        deadline = time.monotonic() + 5
        while gate._inside < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(UserError, match="large images are being processed or waiting"):
            with gate.slot():
                pass
        assert not entered.is_set()
    t.join(5)
    assert entered.is_set()
