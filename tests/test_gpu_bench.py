"""`make gpu-bench` (src/bench/gpu.py): its tiny mode learns and reports rates that fit its run time, its budget
skips what it cannot cover, its Pix2Pix run is main.ipynb's gpu profile, and the committed GPU table is its summary."""
import math

import pytest

from src.models import load_model


def test_gpu_bench_tiny_mode_learns_and_its_rates_fit_its_run_time(tmp_path):
    import json
    import subprocess
    import sys
    import time

    from .conftest import ROOT

    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "src.bench.gpu", "--tiny", "--out", str(tmp_path), "--work",
                          str(tmp_path / "work")], cwd=ROOT, capture_output=True, text=True, timeout=240)
    wall = time.monotonic() - t0
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "gpu-bench.json").read_text())
    cfg = report["config"]
    assert 0 < report["total_seconds"] <= wall
    for knobs, images_per_s in report["train_images_per_s"].items():
        # the measured steps' images at that rate took no longer than the whole run, and no less than 0.1 ms each
        measured_images = cfg["batch"] * cfg["measure"]
        assert measured_images / report["total_seconds"] <= images_per_s <= 1e4, (knobs, images_per_s)
    after = report["pix2pix"]
    metrics = load_model(tmp_path / "work" / "pix2pix-timed.ckpt").meta["metrics"]
    assert after["test_psnr"] == pytest.approx(metrics["test_psnr"])  # the report is its checkpoint's score
    assert after["test_psnr"] > metrics["test_zero_psnr"], (after, metrics)  # it learned: beats predicting zeros
    assert after["trivial_psnr"] == pytest.approx(metrics["test_zero_psnr"])  # Sobel's do-nothing answer: zeros
    can = report["can"]
    assert can["steps"] == can["max_steps"] == cfg["can"]["max_steps"] and can["stopped_by"] == "step budget"
    assert math.isfinite(can["test_psnr"]) and can["settings"]["filter"] == "detail-enhance"
    compact = report["compact"]
    assert 0 < compact["predict_gpix_per_s"] and 0 < compact["network_gpix_per_s"] < 10
    assert set(compact["predict_parts_ms"]) == {"upload", "upload_pinned", "kernel", "download", "nan_scan"}
    assert all(v >= 0 for v in compact["predict_parts_ms"].values())
    assert report["not_run"] == {} and report["date"].endswith("UTC")
    md = (tmp_path / "gpu-bench.md").read_text()
    assert report["date"] in md and "do-nothing answer" in md and "CAN 4×3 on detail-enhance" in md
    from src.bench.gpu import summarize

    table = summarize(tmp_path)  # the GPU results table, from the same JSON
    assert f"| CAN 4×3 | detail-enhance | 6 steps | 1 | {can['test_psnr']:.2f} |" in table
    assert f"| Pix2Pix ngf 4, gpu profile | sobel | 3 s | 1 | {after['test_psnr']:.2f} |" in table


def test_committed_gpu_runs_table_is_the_summary_of_the_committed_gpu_reports(tmp_path):
    import shutil

    from src.bench.gpu import summarize

    from .conftest import ROOT

    for f in (ROOT / "figures").glob("gpu-bench*.json"):
        shutil.copyfile(f, tmp_path / f.name)
    assert summarize(tmp_path) == (ROOT / "figures" / "gpu-runs.md").read_text()


def test_gpu_bench_trains_main_notebooks_gpu_profile():
    """`make gpu-bench`'s Pix2Pix run is the notebook's `gpu` profile: the settings that define the run agree."""
    import ast

    import nbformat

    from src.bench.gpu import GPU_PROFILE

    from .conftest import ROOT

    cell = next(c.source for c in nbformat.read(ROOT / "main.ipynb", as_version=4).cells if "PROFILES = {" in c.source)
    cell = "\n".join(line for line in cell.splitlines() if not line.startswith("%"))  # IPython magics
    profiles = next(n.value for n in ast.walk(ast.parse(cell)) if isinstance(n, ast.Assign)
                    and getattr(n.targets[0], "id", "") == "PROFILES")
    gpu = next(v for k, v in zip(profiles.keys, profiles.values) if ast.literal_eval(k) == "gpu")
    nb = {kw.arg: kw.value for kw in gpu.keywords}
    extra = {kw.arg: ast.literal_eval(kw.value) for kw in nb.pop("extra").keywords}
    nb = {k: eval(compile(ast.Expression(v), "main.ipynb", "eval"), {}) for k, v in nb.items()}  # literals and 2 * N
    assert (GPU_PROFILE["crop"], GPU_PROFILE["model_kwargs"]["ngf"], GPU_PROFILE["batch_size"], GPU_PROFILE["lr"],
            GPU_PROFILE["max_steps"], GPU_PROFILE["steps_per_epoch"]) == (
        nb["crop"], nb["ngf"], nb["batch_size"], nb["lr"], nb["max_steps"], nb["steps_per_epoch"])
    assert (GPU_PROFILE["precision"], GPU_PROFILE["channels_last"]) == (extra["precision"], extra["channels_last"])


def test_gpu_bench_skips_what_its_budget_cannot_cover_and_says_so(tmp_path):
    import json

    from src.bench import gpu as gpu_bench

    assert gpu_bench.main(["--tiny", "--budget", "0", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu-bench.json").read_text())
    assert set(report["not_run"]) == {"knobs", "pix2pix", "can", "compact", "fused"}
    assert all(v.startswith("skipped:") for v in report["not_run"].values())
    assert "Not measured: pix2pix (skipped:" in (tmp_path / "gpu-bench.md").read_text()
