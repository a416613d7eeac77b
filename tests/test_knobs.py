"""The speed-knob table (src.bench.knobs): every knob measured as a pair, written as CSV and Markdown."""
import csv
import math

import pytest

from src.bench.knob_table import Row, format_rate, format_speedup, gpu_rows, speedup, to_csv, to_markdown

from .conftest import run_module

CPU_KNOBS = {"threads", "channels_last", "no_grad", "inference_mode", "bf16", "compile", "opencv runtime",
             "loader workers", "targets on device", "ddp", "2 threads, idle", "2 threads, one core busy"}


@pytest.mark.slow
def test_quick_run_measures_every_knob_and_no_row_failed(tmp_path):
    res = run_module("src.bench.knobs", "--quick", "--threads", "1", "--out", str(tmp_path / "knobs"),
                     "--gpu-json", str(tmp_path / "absent.json"), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "knobs.csv").open()))
    assert {r["knob"] for r in rows} == CPU_KNOBS and {r["device"] for r in rows} == {"CPU"}
    trained = {r["knob"] for r in rows if r["what is measured"].startswith("training")}
    assert trained == {"loader workers", "targets on device", "ddp", "channels_last", "bf16", "2 threads, idle",
                       "2 threads, one core busy"}
    assert not [r for r in rows if r["notes"].startswith("failed:")]  # DDP, compile (incl. compiled == eager)...
    skipped = [(r["knob"], r["model"]) for r in rows if r["notes"].startswith("skipped")]
    assert skipped == [("compile", "seed autoencoder")]  # --quick compiles the CAN only
    for r in rows:
        if r["notes"].startswith("skipped"):
            continue
        rates = float(r["baseline"]), float(r["with knob"]), float(r["speed-up (x)"])
        assert all(math.isfinite(v) and v > 0 for v in rates), r
        assert math.isclose(rates[2], rates[1] / rates[0], rel_tol=1e-2)
    md = (tmp_path / "knobs.md").read_text()
    assert md.count("\n| CPU |") == len(rows) and "GPU: not measured (no GPU lent)" in md
    assert "| speed-up (x) |" in res.stdout


@pytest.mark.slow
def test_compiled_can_equals_eager_within_tolerance():
    import torch

    from src.models.can import ContextAggregationNet
    from src.bench.knobs import COMPILE_TOLERANCE

    torch.manual_seed(0)
    net, x = ContextAggregationNet(width=4, depth=3).eval(), torch.rand(1, 3, 24, 20)
    with torch.inference_mode():
        eager, compiled = net(x), torch.compile(net)(x)
    assert compiled.shape == eager.shape == (1, 1, 24, 20)
    assert float((compiled - eager).abs().max()) <= COMPILE_TOLERANCE


def test_speed_up_is_the_ratio_of_rates_and_missing_rates_show_as_a_dash():
    assert speedup(4.0, 10.0) == 2.5
    assert speedup(None, 1.0) is None and speedup(0.0, 1.0) is None and speedup(1.0, float("nan")) is None
    assert [format_rate(v) for v in (0.0123456, 1.5, 12.345, 987.6, 12345.6, None)] == [
        "0.0123", "1.50", "12.3", "988", "12346", "-"]
    assert format_speedup(Row("CPU", "bf16", "MP/s", "m", 4.0, 10.0)) == "2.50x"
    assert format_speedup(Row("CPU", "compile", "MP/s", "m", None, None, "failed: no compiler")) == "-"


def test_gpu_bench_json_becomes_gpu_rows_against_fp32_without_knobs():
    report = {"device": "NVIDIA H200", "config": {"crop": 128, "batch": 32},
              "train_images_per_s": {"fp32, no knob": 100.0, "bf16": 250.0, "bf16+channels_last": 300.0}}
    rows = gpu_rows(report)
    assert [(r.device, r.knob, speedup(r.baseline, r.with_knob)) for r in rows] == [
        ("GPU", "bf16", 2.5), ("GPU", "bf16+channels_last", 3.0)]
    assert "| GPU | bf16 | training img/s | Pix2Pix U-Net 128² batch 32 | 100 | 250 | 2.50x |" in to_markdown(rows, "", "")


def test_gpu_only_keeps_the_measured_cpu_rows_and_adds_every_gpu_report(tmp_path):
    import json

    from src.bench.knobs import main

    cpu = [Row("CPU", "bf16", "MP/s", "m", 4.0, 10.0, "note, with a comma"), Row("CPU", "compile", "MP/s", "m", None, None)]
    stem = tmp_path / "knobs"
    (tmp_path / "knobs.csv").write_text(to_csv(cpu + [Row("GPU", "old", "img/s", "x", 1.0, 2.0)]))
    (tmp_path / "knobs.md").write_text(to_markdown(cpu, "measured on a quiet machine", "GPU: old"))
    reports = []
    for batch, rate in ((32, 100.0), (128, 300.0)):
        reports.append(tmp_path / f"gpu-{batch}.json")
        reports[-1].write_text(json.dumps({"device": "NVIDIA H200", "date": "2026-11-30 18:40 UTC", "config": {
            "crop": 128, "batch": batch}, "train_images_per_s": {"fp32, no knob": rate, "bf16": 2 * rate}}))
    assert main(["--gpu-only", "--out", str(stem), "--gpu-json", *map(str, reports)]) == 0
    md = (tmp_path / "knobs.md").read_text()
    assert md.splitlines()[0] == "measured on a quiet machine" and "| old |" not in md
    assert "| CPU | bf16 | MP/s | m | 4.00 | 10.0 | 2.50x | note, with a comma |" in md
    assert "| GPU | bf16 | training img/s | Pix2Pix U-Net 128² batch 32 | 100 | 200 | 2.00x |" in md
    assert "| GPU | bf16 | training img/s | Pix2Pix U-Net 128² batch 128 | 300 | 600 | 2.00x |" in md
    assert "2026-11-30 18:40 UTC" in md.splitlines()[-1]


def test_out_below_a_file_exits_2_with_one_line_before_measuring(tmp_path):
    (tmp_path / "file.txt").write_text("not a folder")
    res = run_module("src.bench.knobs", "--quick", "--out", str(tmp_path / "file.txt" / "knobs"), timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().startswith("error:") and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "is a file, not a folder" in res.stderr and not list(tmp_path.glob("**/*.csv"))
