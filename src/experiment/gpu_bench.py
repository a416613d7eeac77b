"""GPU figures in one run (<= 8 minutes on one GPU): Pix2Pix training speed per speed knob, test PSNR after
2 minutes of training, and the compact Sobel net's inference speed on 4096x4096 images.

    python -m src.experiment.gpu_bench                 # one GPU: writes figures/gpu-bench.{json,md}
    python -m src.experiment.gpu_bench --tiny          # a CPU smoke run of the same code (seconds, for the tests)

1. Pix2Pix training images/s at 128x128 (batch 32, the paper's U-Net and PatchGAN, targets computed on the
   GPU from the batch, pinned memory and loader workers), for: fp32 with no knob, each knob alone (bf16
   autocast, channels_last, cudnn.benchmark, torch.compile), and all of them together.
2. Test PSNR/SSIM after 2 minutes of training with all knobs (the real training entry point).
3. The compact Sobel net (models/sobel.ckpt) on 4096x4096: gigapixels/s of the network on the GPU, and of
   ``predict`` end to end (uint8 upload, the compiled kernel, float download).
4. The fused compact-net kernel (``src.inference.runtime.fused_torch`` through torch.compile, fp32 arithmetic)
   on a batch of 8 x 4096² uint8 images already on the GPU, float32 and uint8 out, against a plain torch
   Sobel (``sobel_magnitude`` on the same pixels) and the HBM bound: the device's copy bandwidth over the
   bytes a pixel must move (3 in + 4 out, or 3 + 1); with its max abs difference from the eager network.

    python -m src.experiment.gpu_bench --fused-only    # section 4 alone (about a minute), into gpu-bench-fused.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from src.dataset import FilterDataModule
from src.filters import get_filter
from src.models.lit_pix2pix import Pix2PixModule
from src.models.pix2pix import unet_depth
from src.experiment.knobs import Throughput  # shared with the CPU knobs table
from src.io.files import atomic_write_bytes
from src.io.tables import markdown_table
from src.io.timing import median_seconds
from src.cli import strict_json

KNOBS = ("bf16", "channels_last", "benchmark", "compile")


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


def psnr_after(cfg: dict, out_dir: Path) -> dict:
    from src.experiment.config import TrainConfig
    from src.experiment.train import train

    res = train(TrainConfig(
        model="pix2pix", crop=cfg["crop"], model_kwargs={"ngf": cfg["ngf"]}, batch_size=cfg["batch"],
        max_time=cfg["seconds"], steps_per_epoch=cfg["steps_per_epoch"],
        accelerator=cfg["accelerator"], num_workers=cfg["workers"], output=str(out_dir / "pix2pix-2min.ckpt"),
        run_dir=str(out_dir / "runs"), quiet=True, logger="none", **cfg["knobs"]))
    return {k: res.get(k) for k in ("test_psnr", "test_ssim", "best_val_psnr", "train_seconds", "epochs")}


def _compact_net(cfg: dict):
    """The device and the shipped compact Sobel net on it (the exact hand-set one if none is shipped)."""
    from src.models import exact_sobel_net, load_model

    device = torch.device("cuda" if cfg["accelerator"] != "cpu" else "cpu")
    ckpt = Path("models/sobel.ckpt")
    return device, (load_model(ckpt) if ckpt.is_file() else exact_sobel_net()).to(device).eval()


def compact_gigapixels(cfg: dict) -> dict:
    from src.inference.predict import predict

    device, net = _compact_net(cfg)
    s = cfg["big"]
    x = torch.rand(1, 3, s, s, device=device)
    rgb = np.random.default_rng(0).integers(0, 256, (s, s, 3), dtype=np.uint8)

    timed = _timer(device)
    with torch.inference_mode():
        t_net = timed(lambda: net(x))
    t_predict = timed(lambda: predict(net, rgb), repeats=5)  # on CUDA: the compiled fused kernel
    return {"size": f"{s}x{s}", "network_gpix_per_s": s * s / t_net / 1e9,
            "predict_gpix_per_s": s * s / t_predict / 1e9}


def fused_gigapixels(cfg: dict) -> dict:
    """Section 4: GP/s of the compiled compact-net kernel vs a plain torch Sobel and the HBM bound."""
    from src.filters.sobel import sobel_magnitude
    from src.inference.runtime import compiled_fused_torch, fused_torch, fused_weights

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run of the same code, tiny sizes")
    ap.add_argument("--skip-compile", action="store_true", help="leave torch.compile out")
    ap.add_argument("--out", default="figures", help="folder for gpu-bench.json and gpu-bench.md")
    ap.add_argument("--work", default="models/gpu-bench", help="folder for the 2-minute checkpoint and logs")
    ap.add_argument("--fused-only", action="store_true", help="only section 4 (the fused kernel), into gpu-bench-fused.json")
    args = ap.parse_args(argv)

    if args.tiny:
        cfg = dict(accelerator="cpu", crop=32, ngf=4, batch=2, warmup=1, measure=2, workers=0, seconds=3,
                   steps_per_epoch=2, big=256, fused_batch=2, knobs={})
        knob_sets = [set(), {"channels_last"}]
    else:
        if not torch.cuda.is_available():
            raise SystemExit("error: no GPU visible; use --tiny for a CPU smoke run")
        cfg = dict(accelerator="gpu", crop=128, ngf=64, batch=32, warmup=15, measure=40, workers=8, seconds=120,
                   steps_per_epoch=200, big=4096, fused_batch=8,
                   knobs=dict(precision="bf16-mixed", channels_last=True, compile=not args.skip_compile))
        knobs = [k for k in KNOBS if not (args.skip_compile and k == "compile")]
        knob_sets = [set()] + [{k} for k in knobs] + [set(knobs)]
        if not args.skip_compile:
            knob_sets.append(set(knobs) - {"compile"})

    report: dict = {"device": torch.cuda.get_device_name() if cfg["accelerator"] != "cpu" else "cpu",
                    "torch": torch.__version__, "config": {k: v for k, v in cfg.items() if k != "knobs"},
                    "train_images_per_s": {}}
    t_start = time.time()
    out = Path(args.out)
    if args.fused_only:
        report["compact_fused"] = fused_gigapixels(cfg)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "gpu-bench-fused.json", strict_json(report, indent=1).encode())
        print("\n".join(fused_lines(report["compact_fused"], report["device"])))
        return 0
    for knobs in knob_sets:
        name = "+".join(k for k in KNOBS if k in knobs) or "fp32, no knob"
        report["train_images_per_s"][name] = ips = train_throughput(cfg, knobs)
        print(f"train {cfg['crop']}x{cfg['crop']} [{name}]: {ips:.1f} img/s  ({time.time() - t_start:.0f} s)", flush=True)
    report["after_training"] = psnr_after(cfg, Path(args.work))
    print(f"after {cfg['seconds']} s of training: {report['after_training']}", flush=True)
    report["compact_inference"] = compact_gigapixels(cfg)
    print(f"compact net on {cfg['big']}^2: {report['compact_inference']}", flush=True)
    report["compact_fused"] = fused_gigapixels(cfg)
    print(f"fused kernel: {report['compact_fused']}", flush=True)
    report["total_seconds"] = round(time.time() - t_start, 1)

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "gpu-bench.json", strict_json(report, indent=1).encode())
    lines = [markdown_table([f"Pix2Pix training, {cfg['crop']}² batch {cfg['batch']}", "img/s"],
                            [(k, f"{v:.1f}") for k, v in report["train_images_per_s"].items()], align="lr")]
    a, c = report["after_training"], report["compact_inference"]
    lines += ["", f"Test PSNR after {cfg['seconds']} s of training: {a['test_psnr']:.2f} dB (SSIM {a['test_ssim']:.4f}).",
              f"Compact net on {c['size']}: {c['network_gpix_per_s']:.2f} GP/s (network), "
              f"{c['predict_gpix_per_s']:.3f} GP/s (predict, uint8 in -> float out). Device: {report['device']}."]
    lines += [""] + fused_lines(report["compact_fused"], report["device"])
    atomic_write_bytes(out / "gpu-bench.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
