"""GPU figures in one prepared run (<= 8 minutes on one GPU), written with the date and the device:

    python -m src.bench.gpu                 # one GPU: writes figures/gpu-bench.{json,md}
    python -m src.bench.gpu --tiny          # a CPU smoke run of the same code (seconds, for the tests)
    python -m src.bench.gpu --only knobs --batch 128 --stem gpu-bench-b128   # some sections, other settings
    python -m src.bench.gpu --only can pix2pix --seed 1 --stem gpu-bench-seed1
    python -m src.bench.gpu --summarize     # no GPU: figures/gpu-bench*.json -> figures/gpu-runs.{csv,md}

1. Pix2Pix training images/s at 128x128 (batch 32, the paper's U-Net and PatchGAN, Sobel targets computed on
   the GPU from the batch, pinned memory and loader workers): fp32 with no knob, each knob alone (bf16
   autocast, channels_last, cudnn.benchmark) and the three together; the rows of ``make knobs``' GPU part.
2. ``main.ipynb``'s ``gpu`` profile of Pix2Pix (``GPU_PROFILE``) trained for a fixed time through the real
   training entry point; test-split PSNR/SSIM at native resolution and the all-zeros PSNR beside it.
3. The paper's CAN (width 24, depth 9, receptive field 257) on detail-enhance for a fixed number of steps
   (``CAN_RUN``); test PSNR/SSIM and the identity's PSNR beside it.
4. The compact Sobel net (models/sobel.ckpt) on 4096x4096: gigapixels/s of the network on the GPU, and of
   ``predict`` end to end (uint8 upload, the compiled kernel, float download), with each part timed alone.
5. The fused compact-net kernel (``src.inference.runtime.fused_torch`` through torch.compile, fp32 arithmetic)
   on a batch of 8 x 4096² uint8 images already on the GPU, float32 and uint8 out, against a plain torch
   Sobel (``sobel_magnitude`` on the same pixels) and the HBM bound: the device's copy bandwidth over the
   bytes a pixel must move (3 in + 4 out, or 3 + 1); with its max abs difference from the eager network.
6. torch.compile in training (its compilation takes minutes, so it runs last): Pix2Pix images/s with all
   four knobs, against section 1's three.

Each section runs in turn while the time left (``--budget`` seconds) covers its estimate; a section that
fails or is skipped is written down as such, and the JSON is rewritten after every section, so a run cut
short still leaves its figures.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from src.bench.knob_table import gpu_report_files
from src.cli import strict_json
from src.dataset import FilterDataModule
from src.evaluation.evaluate import trivial_psnr
from src.filters import get_filter
from src.filters.sobel import sobel_magnitude
from src.inference.predict import predict
from src.inference.runtime import compiled_fused_torch, fused_torch, fused_weights
from src.io.files import atomic_write_bytes
from src.io.tables import markdown_table, mean_sd, write_csv
from src.io.timing import median_seconds
from src.models import exact_sobel_net, load_model
from src.models.lit_pix2pix import Pix2PixModule
from src.models.pix2pix import unet_depth
from src.training.callbacks import Throughput  # shared with the CPU knobs table
from src.training.config import TrainConfig
from src.training.train import train

KNOBS = ("bf16", "channels_last", "benchmark", "compile")
# main.ipynb's `gpu` profile (the paper's 128x128 U-Net, ngf 64) in TrainConfig's words; `make train-pix2pix`
GPU_PROFILE = dict(crop=128, model_kwargs={"ngf": 64}, batch_size=32, lr=2e-4, max_steps=2 * 20000,
                   steps_per_epoch=500, precision="bf16-mixed", channels_last=True)
# The paper's CAN (Chen et al. 2017): 24 channels, 9 layers, on a non-local operator; a step budget
CAN_RUN = dict(model="can", filter="detail-enhance", model_kwargs={"width": 24, "depth": 9}, crop=128,
               batch_size=16, lr=1e-3, max_steps=4000, steps_per_epoch=250, lr_patience=4, patience=1000)
# Rough seconds per section on an H200 (start-up included), to skip what no longer fits the budget
ESTIMATES = {"knobs": 90, "pix2pix": 170, "can": 120, "compact": 45, "fused": 75, "compile": 150}


def train_throughput(cfg: dict, knobs: set[str]) -> float:
    pl.seed_everything(0, verbose=False)
    module = Pix2PixModule({"depth": unet_depth(cfg["crop"]), "ngf": cfg["ngf"]},
                           channels_last="channels_last" in knobs, compile="compile" in knobs)
    n = cfg["warmup"] + cfg["measure"]
    data = FilterDataModule(get_filter("sobel"), crop=cfg["crop"], batch_size=cfg["batch"], steps_per_epoch=n,
                            num_workers=cfg["workers"], pin_memory=cfg["accelerator"] != "cpu")
    timer = Throughput(cfg["warmup"], cfg["measure"])
    trainer = pl.Trainer(accelerator=cfg["accelerator"], devices=1, max_steps=2 * n, limit_val_batches=0,
                         precision="bf16-mixed" if "bf16" in knobs else "32-true", benchmark="benchmark" in knobs,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[timer])
    trainer.fit(module, datamodule=data)
    return float(timer.value)


def timed_training(cfg: dict, out_dir: Path, settings: dict, name: str) -> dict:
    """One run of the real training entry point (``settings`` over ``cfg``'s device), its test scores and
    the do-nothing PSNR beside them (all zeros for a gray target, the input for an RGB one)."""
    res = train(TrainConfig(**settings, accelerator=cfg["accelerator"], num_workers=cfg["workers"],
                            output=str(out_dir / f"{name}.ckpt"), run_dir=str(out_dir / "runs"), quiet=True,
                            logger="none"))
    keys = ("test_psnr", "test_ssim", "best_val_psnr", "steps", "max_steps", "stopped_by", "train_seconds", "params")
    report = {k: res.get(k) for k in keys}
    report["trivial_psnr"] = trivial_psnr(get_filter(settings.get("filter", "sobel")))
    report["settings"] = dict(settings)
    return report


def pix2pix_timed(cfg: dict, out_dir: Path) -> dict:
    """Section 2: main.ipynb's gpu profile for ``cfg["seconds"]`` of training."""
    settings = dict(model="pix2pix", filter="sobel", **cfg["pix2pix"], max_time=cfg["seconds"])
    return timed_training(cfg, out_dir, settings, "pix2pix-timed")


def can_steps(cfg: dict, out_dir: Path) -> dict:
    """Section 3: the paper's CAN on detail-enhance for a step budget (a time cap only as a guard)."""
    return timed_training(cfg, out_dir, dict(cfg["can"], max_time=cfg["can_cap"]), "can-24x9")


def _compact_net(cfg: dict):
    """The device and the shipped compact Sobel net on it (the exact hand-set one if none is shipped)."""
    device = torch.device("cuda" if cfg["accelerator"] != "cpu" else "cpu")
    ckpt = Path("models/sobel.ckpt")
    return device, (load_model(ckpt) if ckpt.is_file() else exact_sobel_net()).to(device).eval()


def compact_gigapixels(cfg: dict) -> dict:
    device, net = _compact_net(cfg)
    s = cfg["big"]
    x = torch.rand(1, 3, s, s, device=device)
    rgb = np.random.default_rng(0).integers(0, 256, (s, s, 3), dtype=np.uint8)

    timed = _timer(device)
    with torch.inference_mode():
        t_net = timed(lambda: net(x))
    t_predict = timed(lambda: predict(net, rgb), repeats=5)  # on CUDA: the compiled fused kernel
    return {"size": f"{s}x{s}", "network_gpix_per_s": s * s / t_net / 1e9,
            "predict_gpix_per_s": s * s / t_predict / 1e9, "predict_ms": 1e3 * t_predict,
            "predict_parts_ms": predict_parts(net, rgb, device, timed)}


def predict_parts(net, rgb: np.ndarray, device: torch.device, timed) -> dict:
    """Where ``predict``'s time goes on the device (ms each): the upload from pageable and from pinned
    memory, the fused kernel on an image already there, the float32 download, and the NaN scan."""
    weights = fused_weights(net)
    fn = compiled_fused_torch() if device.type == "cuda" else fused_torch
    host = torch.from_numpy(rgb)
    pinned = host.pin_memory() if device.type == "cuda" else host
    with torch.inference_mode():
        x = host.to(device)[None]
        y = fn(x, **weights)
        out = y.cpu().numpy()
        parts = {"upload": timed(lambda: host.to(device)), "upload_pinned": timed(lambda: pinned.to(device)),
                 "kernel": timed(lambda: fn(x, **weights)), "download": timed(lambda: y.cpu()),
                 "nan_scan": timed(lambda: np.isfinite(out).all())}
    return {k: round(1e3 * v, 3) for k, v in parts.items()}


def fused_gigapixels(cfg: dict) -> dict:
    """Section 4: GP/s of the compiled compact-net kernel vs a plain torch Sobel and the HBM bound."""
    device, net = _compact_net(cfg)
    b, s = cfg["fused_batch"], cfg["big"]
    x = torch.randint(0, 256, (b, s, s, 3), dtype=torch.uint8, device=device)
    weights = fused_weights(net)
    t0 = time.perf_counter()
    # Tiny mode (the CPU smoke test) runs the same function eagerly: compiling on a CPU takes ~1 min.
    fn = compiled_fused_torch() if device.type == "cuda" else fused_torch
    with torch.inference_mode():
        fn(x, **weights)
        fn(x, **weights, out_dtype=torch.uint8)
    compile_s = time.perf_counter() - t0
    timed = _timer(device)
    with torch.inference_mode():
        t_f32 = timed(lambda: fn(x, **weights))
        t_u8 = timed(lambda: fn(x, **weights, out_dtype=torch.uint8))
        t_sobel = timed(lambda: sobel_magnitude(x.permute(0, 3, 1, 2).float() / 255))
        big = torch.empty(2**30 if device.type == "cuda" else 2**24, dtype=torch.uint8, device=device)
        t_copy = timed(lambda: big.clone())
        cudnn_tf32 = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False  # the reference in plain fp32
        ref = net(x[:1].permute(0, 3, 1, 2).float() / 255)
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
        err = float((fn(x[:1], **weights) - ref).abs().max())
    pixels = b * s * s
    bandwidth = 2 * big.numel() / t_copy
    return {"batch": f"{b}x{s}x{s}", "compile_s": round(compile_s, 1), "copy_bandwidth_gbs": bandwidth / 1e9,
            "fused_fp32_out_gpix_per_s": pixels / t_f32 / 1e9, "fused_uint8_out_gpix_per_s": pixels / t_u8 / 1e9,
            "torch_sobel_gpix_per_s": pixels / t_sobel / 1e9, "bound_fp32_out_gpix_per_s": bandwidth / 7 / 1e9,
            "bound_uint8_out_gpix_per_s": bandwidth / 4 / 1e9, "max_abs_err_vs_eager": err,
            "arithmetic": "fp32", "compiled": device.type == "cuda"}


def _timer(device: torch.device):
    sync = torch.cuda.synchronize if device.type == "cuda" else None

    def timed(fn, repeats: int = 10) -> float:
        return median_seconds(fn, repeats, sync=sync)
    return timed


def fused_lines(f: dict, device: str) -> list[str]:
    return [f"Fused compact-net kernel on {f['batch']} uint8 ({f['arithmetic']} arithmetic, compiled: {f['compiled']}, "
            f"first calls {f['compile_s']} s): {f['fused_fp32_out_gpix_per_s']:.3g} GP/s float32 out "
            f"(HBM bound {f['bound_fp32_out_gpix_per_s']:.3g}), {f['fused_uint8_out_gpix_per_s']:.3g} GP/s uint8 out "
            f"(bound {f['bound_uint8_out_gpix_per_s']:.3g}); plain torch Sobel {f['torch_sobel_gpix_per_s']:.3g} GP/s; "
            f"copy bandwidth {f['copy_bandwidth_gbs']:.3g} GB/s; max abs difference from the eager net "
            f"{f['max_abs_err_vs_eager']:.1e}. Device: {device}."]


def run_name(key: str, settings: dict) -> str:
    """``Pix2Pix ngf 64`` or ``CAN 24×9``: the network of a training section, from its settings."""
    kw = settings["model_kwargs"]
    return f"Pix2Pix ngf {kw['ngf']}" if key == "pix2pix" else f"CAN {kw['width']}×{kw['depth']}"


def md_lines(report: dict) -> list[str]:
    """``figures/gpu-bench.md``: what ran, on what, when, and every figure with what it is measured against."""
    cfg, lines = report["config"], [f"Run {report['date']} on {report['device']} (torch {report['torch']}), "
                                     f"{report['total_seconds']:.0f} s: `make gpu-bench`.", ""]
    ips = report["train_images_per_s"]
    if ips:
        base = ips.get("fp32, no knob")
        lines += [markdown_table([f"Pix2Pix training, {cfg['crop']}² batch {cfg['batch']}", "img/s", "× fp32"],
                                 [(k, f"{v:.1f}", f"{v / base:.2f}x" if base else "") for k, v in ips.items()],
                                 align="lrr"), ""]
    for key in ("pix2pix", "can"):
        r = report.get(key)
        if r:
            s = r["settings"]
            title = (f"Pix2Pix, main.ipynb's `gpu` profile (ngf {s['model_kwargs']['ngf']}, " if key == "pix2pix" else
                     f"{run_name(key, s)} on {s['filter']} (") + f"{s['crop']}² crops, batch {s['batch_size']})"
            steps = (f"{r['steps'] // 2} batches (a generator and a discriminator step each)" if key == "pix2pix"
                     else f"{r['steps']} optimiser steps")
            lines.append(f"{title}: test PSNR {r['test_psnr']:.2f} dB, SSIM {r['test_ssim']:.4f} "
                         f"(do-nothing answer {r['trivial_psnr']:.2f} dB) after {steps} in "
                         f"{r['train_seconds']:.0f} s ({r['stopped_by']}; {r['params']} parameters).")
    c = report.get("compact")
    if c:
        lines.append(f"Compact net on {c['size']}: {c['network_gpix_per_s']:.2f} GP/s (network), "
                     f"{c['predict_gpix_per_s']:.3f} GP/s (predict, uint8 in -> float out).")
        if c.get("predict_parts_ms"):
            lines.append(f"predict's {c['predict_ms']:.1f} ms, by part (ms): " +
                         ", ".join(f"{k} {v:.2f}" for k, v in c["predict_parts_ms"].items()) + ".")
    if report.get("fused"):
        lines += fused_lines(report["fused"], report["device"])
    for name, why in report["not_run"].items():
        lines.append(f"Not measured: {name} ({why}).")
    return lines


def write_report(report: dict, out: Path, stem: str = "gpu-bench") -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / f"{stem}.json", strict_json(report, indent=1).encode())
    atomic_write_bytes(out / f"{stem}.md", ("\n".join(md_lines(report)) + "\n").encode())


def summarize(figures: Path) -> str:
    """Sections 2 and 3 of every ``gpu-bench*.json`` in ``figures``: one row per run, mean ± sd per model."""
    runs = []
    for f in gpu_report_files(figures):
        report = json.loads(f.read_text())
        for key in ("pix2pix", "can"):
            r = report.get(key)
            if r:
                s = r["settings"]
                name = run_name(key, s) + (", gpu profile" if key == "pix2pix" else "")
                budget = f"{s['max_time']:g} s" if key == "pix2pix" else f"{s['max_steps']} steps"
                runs.append({"model": name, "filter": s["filter"], "budget": budget, "seed": s.get("seed", 0),
                             "steps": r["steps"], "train_s": r["train_seconds"], "psnr": r["test_psnr"],
                             "ssim": r["test_ssim"], "trivial_psnr": r["trivial_psnr"], "device": report["device"],
                             "date": report["date"], "source": f.name})
    if not runs:
        raise SystemExit(f"error: no Pix2Pix or CAN run in {figures}/gpu-bench*.json")
    write_csv(figures / "gpu-runs.csv", runs)
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["filter"], r["budget"]), []).append(r)
    table = [(m, flt, budget, len(rs), mean_sd([r["psnr"] for r in rs], 2),
              " / ".join(f"{r['psnr']:.2f}" for r in rs), mean_sd([r["ssim"] for r in rs], 3),
              " / ".join(str(r["steps"]) for r in rs), f"{rs[0]['trivial_psnr']:.2f}")
             for (m, flt, budget), rs in groups.items()]
    md = markdown_table(["model", "filter", "budget", "seeds", "test PSNR (dB)", "per seed (dB)", "SSIM",
                         "optimiser steps", "do-nothing PSNR"], table, align="lllrrrrrr")
    devices = sorted({f"{r['device']} ({r['date'][:10]})" for r in runs})
    text = (md + "\n\nTest split at native resolution; do-nothing = all zeros (Sobel) or the input (detail-enhance). "
            f"Runs of `make gpu-bench` on {', '.join(devices)}, from {', '.join(sorted({r['source'] for r in runs}))}; "
            "`python -m src.bench.gpu --summarize` makes this table.\n")
    atomic_write_bytes(figures / "gpu-runs.md", text.encode())
    return text


@dataclass(frozen=True)
class GpuBench:
    """What one ``make gpu-bench`` run measures and where it writes (the command line's options, typed)."""
    tiny: bool = False
    skip_compile: bool = False
    budget: float = 480  # seconds
    out: Path = Path("figures")
    work: Path = Path("models/gpu-bench")
    only: tuple[str, ...] | None = None  # None: every section
    batch: int | None = None  # None: the sizes' own (32 on a GPU)
    workers: int | None = None  # None: the sizes' own (8 on a GPU)
    seed: int = 0
    stem: str = "gpu-bench"


def bench_config(bench: GpuBench) -> tuple[dict, list[set[str]], dict[str, int]]:
    """The sizes of every section, the knob sets of section 1 and the seconds each section is budgeted."""
    if bench.tiny:
        cfg = dict(accelerator="cpu", crop=32, ngf=4, batch=2, warmup=1, measure=2, workers=0, seconds=3, big=256,
                   fused_batch=2, can_cap=20,
                   pix2pix=dict(GPU_PROFILE, crop=32, model_kwargs={"ngf": 4}, batch_size=2, steps_per_epoch=2,
                                precision=None, channels_last=False),
                   can=dict(CAN_RUN, model_kwargs={"width": 4, "depth": 3}, crop=32, batch_size=2, max_steps=6,
                            steps_per_epoch=3))
        knob_sets, estimates = [set(), {"channels_last"}], dict.fromkeys(ESTIMATES, 0)
    else:
        if not torch.cuda.is_available():
            raise SystemExit("error: no GPU visible; use --tiny for a CPU smoke run")
        cfg = dict(accelerator="gpu", crop=128, ngf=64, batch=32, warmup=15, measure=40, workers=8, seconds=120,
                   big=4096, fused_batch=8, can_cap=150, pix2pix=dict(GPU_PROFILE), can=dict(CAN_RUN))
        knob_sets = [set(), {"bf16"}, {"channels_last"}, {"benchmark"}, {"bf16", "channels_last", "benchmark"}]
        estimates = ESTIMATES
    cfg.update({k: v for k, v in (("batch", bench.batch), ("workers", bench.workers)) if v is not None})
    cfg["pix2pix"]["seed"] = cfg["can"]["seed"] = bench.seed
    return cfg, knob_sets, estimates


def _run_section(report: dict, name: str, section: Callable[[], dict | None], t_start: float) -> bool:
    """One section into ``report`` (its figures, or why it failed); False if it failed."""
    try:
        value = section()
        if value is not None:
            report[name] = value
        print(f"[{name}] done at {time.time() - t_start:.0f} s: {value if value is not None else ''}", flush=True)
        return True
    except Exception as e:  # one broken section must not cost the others' figures
        traceback.print_exc()
        report["not_run"][name] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        return False


def run(bench: GpuBench) -> tuple[dict, int]:
    """Every section the budget covers, in turn: the report and how many sections failed. The report is
    rewritten to ``OUT/STEM.{json,md}`` after every section, so a run cut short still leaves its figures."""
    cfg, knob_sets, estimates = bench_config(bench)
    compile_sets = [] if bench.skip_compile or bench.tiny else [set(KNOBS)]
    device = torch.cuda.get_device_name() if cfg["accelerator"] != "cpu" else "cpu"
    report: dict = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    "device": device, "torch": torch.__version__,
                    "config": dict(cfg), "train_images_per_s": {}, "not_run": {}}
    t_start = time.time()

    def throughput_rows(sets):
        for knobs in sets:
            name = "+".join(k for k in KNOBS if k in knobs) or "fp32, no knob"
            report["train_images_per_s"][name] = ips = train_throughput(cfg, knobs)
            print(f"train {cfg['crop']}x{cfg['crop']} [{name}]: {ips:.1f} img/s  ({time.time() - t_start:.0f} s)",
                  flush=True)

    sections = [("knobs", lambda: throughput_rows(knob_sets)), ("pix2pix", lambda: pix2pix_timed(cfg, bench.work)),
                ("can", lambda: can_steps(cfg, bench.work)), ("compact", lambda: compact_gigapixels(cfg)),
                ("fused", lambda: fused_gigapixels(cfg))]
    if compile_sets:
        sections.append(("compile", lambda: throughput_rows(compile_sets)))
    failed = 0
    for name, section in sections:
        if bench.only and name not in bench.only:
            continue
        left = bench.budget - (time.time() - t_start)
        if left < estimates[name]:
            report["not_run"][name] = f"skipped: {left:.0f} s of the {bench.budget:.0f} s budget left, needs ~{estimates[name]} s"
        elif not _run_section(report, name, section, t_start):
            failed += 1
        report["total_seconds"] = round(time.time() - t_start, 1)
        write_report(report, bench.out, bench.stem)
    return report, failed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run of the same code, tiny sizes")
    ap.add_argument("--skip-compile", action="store_true", help="leave torch.compile out")
    ap.add_argument("--budget", type=float, default=480, help="seconds; a section whose estimate no longer fits is skipped")
    ap.add_argument("--out", default="figures", help="folder for gpu-bench.json and gpu-bench.md")
    ap.add_argument("--work", default="models/gpu-bench", help="folder for the trained checkpoints and logs")
    ap.add_argument("--only", nargs="+", choices=list(ESTIMATES), help="run only these sections")
    ap.add_argument("--batch", type=int, default=None, help="Pix2Pix batch of the throughput rows (default 32)")
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default 8 on a GPU)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the two training runs (sections 2 and 3)")
    ap.add_argument("--summarize", action="store_true", help="no GPU: OUT/gpu-bench*.json -> OUT/gpu-runs.{csv,md}")
    ap.add_argument("--stem", default="gpu-bench", help="output file names: OUT/STEM.json and OUT/STEM.md")
    args = ap.parse_args(argv)
    if args.summarize:
        print(summarize(Path(args.out)), end="")
        return 0
    bench = GpuBench(tiny=args.tiny, skip_compile=args.skip_compile, budget=args.budget, out=Path(args.out),
                     work=Path(args.work), only=tuple(args.only) if args.only else None, batch=args.batch,
                     workers=args.workers, seed=args.seed, stem=args.stem)
    report, failed = run(bench)
    print("\n".join(md_lines(report)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
