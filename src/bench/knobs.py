"""Each framework speed knob, measured as a pair on the same work (``make knobs``): the README's knobs table.

    python -m src.bench.knobs [--quick] [--threads N] [--out figures/knobs] [--gpu-json figures/gpu-bench*.json]
    python -m src.bench.knobs --gpu-only   # no measuring: the committed CPU rows plus the GPU JSONs' rows

CPU rows are measured here. Inference: MP/s of one forward pass over a photo ``(1, 3, H, W)``, median of
repeats after a warm-up (``src.io.timing.median_seconds``). Training: steady-state steps/s of the real
``FilterRegressor`` + ``FilterDataModule`` under ``pl.Trainer`` on the embedded photos, warm-up steps
(worker start, first batches) excluded, median of repeats run alternately. GPU rows come from the JSON
``src/bench/gpu.py`` writes, when it exists. Writes ``OUT.csv`` and ``OUT.md`` and prints the table.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import pytorch_lightning as pl
import torch

from src.bench.knob_table import Row, cpu_rows_of, gpu_reports, to_csv, to_markdown
from src.cli import run_cli, strict_json
from src.dataset import FilterDataModule
from src.dataset.crops import to_tensor
from src.dataset.sources import photo
from src.errors import UserError
from src.evaluation.metrics import psnr
from src.filters import get_filter
from src.inference.predict import predict
from src.io.files import atomic_write_bytes
from src.io.timing import median_seconds
from src.models import build_model, exact_sobel_net, load_model
from src.models.lit import FilterRegressor
from src.training.callbacks import Throughput

FULL = dict(mp=1.0, repeats=3, compile=("seed autoencoder", "CAN w16 d6"), crop=64, batch=32, warmup=10,
            measure=40, train_repeats=3)
QUICK = dict(mp=0.02, repeats=2, compile=("CAN w16 d6",), crop=32, batch=4, warmup=2, measure=4, train_repeats=1)
RESULT = "knobs-result "  # the child process's answer line (DDP runs in one, see ddp_images_per_s)
CL = torch.channels_last


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


# ----------------------------------------------------------------------------------------------- inference
def _networks() -> dict[str, torch.nn.Module]:
    ckpt = Path("models/autoencoder.ckpt")
    ae = load_model(ckpt) if ckpt.is_file() else build_model("autoencoder")
    return {"seed autoencoder": ae.eval(), "CAN w16 d6": build_model("can", width=16, depth=6).eval()}


def inference_rows(cfg: dict[str, Any]) -> list[Row]:
    """Threads, channels_last, no_grad / inference_mode, bf16 autocast, torch.compile, the OpenCV runtime."""
    img = photo(cfg["mp"])
    x = to_tensor(img)[None]
    mp = img.shape[0] * img.shape[1] / 1e6

    def mps(fn: Callable[[], object], context: Callable[[], Any] = torch.inference_mode) -> float:
        with context():
            return mp / median_seconds(fn, cfg["repeats"])

    what, rows, threads, cores = f"inference MP/s ({mp:.2f} MP)", [], torch.get_num_threads(), os.cpu_count() or 1
    for name, net in _networks().items():
        run = lambda net=net: net(x)  # noqa: E731
        rates = []
        try:
            for n in (1, cores):
                torch.set_num_threads(n)
                rates.append(mps(run))
        finally:
            torch.set_num_threads(threads)
        rows.append(Row("CPU", "threads", what, name, *rates, f"torch.set_num_threads(1) vs {cores} (all cores)"))
        net_cl, x_cl = copy.deepcopy(net).to(memory_format=CL), x.contiguous(memory_format=CL)
        rows.append(Row("CPU", "channels_last", what, name, mps(run), mps(lambda: net_cl(x_cl)), "input and weights NHWC"))
        grad = mps(run, torch.enable_grad)
        for knob, context in (("no_grad", torch.no_grad), ("inference_mode", torch.inference_mode)):
            rows.append(Row("CPU", knob, what, name, grad, mps(run, context), "baseline: eval mode, autograd on"))
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = mp / median_seconds(run, cfg["repeats"])
        rows.append(Row("CPU", "bf16", what, name, mps(run), bf16, "torch.autocast('cpu', bfloat16); last layer "
                        f"(before the final clamp/ReLU) {bf16_psnr(net, x):.1f} dB PSNR vs fp32, peak = its fp32 range"))
        rows.append(_compile_row(name, net, x, mps, what) if name in cfg["compile"] else
                    Row("CPU", "compile", what, name, None, None, "skipped with --quick (one compiled net is enough there)"))
    rows.append(_opencv_row(img, mps, what))
    order = ["threads", "channels_last", "no_grad", "inference_mode", "bf16", "compile", "opencv runtime"]
    return sorted(rows, key=lambda r: order.index(r.knob))  # stable: models keep their order within a knob


def bf16_psnr(net: torch.nn.Module, x: torch.Tensor) -> float:
    """PSNR of the last layer's output under bf16 autocast against fp32, peak = the fp32 output's range.

    The last layer, not the clamped output: an untrained network's output is often clamped flat, which
    would hide the rounding error.
    """
    outs: list[torch.Tensor] = []
    hook = list(net.modules())[-1].register_forward_hook(lambda m, i, o: outs.append(o.float()))
    try:
        with torch.inference_mode():
            net(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                net(x)
    finally:
        hook.remove()

    ref, low = outs
    lo, peak = ref.min(), float(ref.max() - ref.min()) or 1.0
    return psnr(((low - lo) / peak).numpy(), ((ref - lo) / peak).numpy())


COMPILE_TOLERANCE = 1e-4  # max |compiled - eager| on outputs in [0, 1]: inductor may reorder float sums, no more


def _compile_row(name: str, net: torch.nn.Module, x: torch.Tensor, mps: Callable, what: str) -> Row:
    try:
        t0 = time.perf_counter()
        compiled = torch.compile(net)
        with torch.inference_mode():
            diff = float((compiled(x) - net(x)).abs().max())
        seconds = time.perf_counter() - t0
    except Exception as exc:  # no C compiler, unsupported op...: the row says so
        return Row("CPU", "compile", what, name, None, None, f"failed: {_one_line(exc)}")
    if not diff <= COMPILE_TOLERANCE:  # a fast wrong answer is no speed-up
        return Row("CPU", "compile", what, name, None, None, f"failed: output differs from eager by {diff:.2g}")
    return Row("CPU", "compile", what, name, mps(lambda: net(x)), mps(lambda: compiled(x)),
               f"torch.compile (inductor), max |compiled - eager| {diff:.1g}; first call {seconds:.0f} s, not timed")


def _opencv_row(img: Any, mps: Callable, what: str) -> Row:
    ckpt = Path("models/sobel.ckpt")
    net = load_model(ckpt) if ckpt.is_file() else exact_sobel_net()
    return Row("CPU", "opencv runtime", what, "compact (Sobel)", mps(lambda: predict(net, img, backend="torch")),
               mps(lambda: predict(net, img, backend="opencv")), "predict(backend='opencv') vs 'torch'; uint8 in, float out")


# ------------------------------------------------------------------------------------------------ training
class ChannelsLast(pl.Callback):
    """NHWC weights and inputs for ``FilterRegressor`` (train.py's ``--channels-last`` covers Pix2Pix only)."""
    def on_fit_start(self, trainer, pl_module):
        pl_module.to(memory_format=CL)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        batch["input"] = batch["input"].contiguous(memory_format=CL)  # the dict training_step receives


@dataclasses.dataclass
class Case:
    """One training configuration: compact or seed autoencoder on the embedded photos, CPU."""

    model: str = "compact"
    filter: str = "sobel"
    loader_targets: bool = False  # True: OpenCV targets in the loader even when the filter has a torch twin
    workers: int = 0
    devices: int = 1
    precision: str = "32-true"
    channels_last: bool = False
    crop: int = 64
    batch: int = 32
    warmup: int = 10
    measure: int = 60


def train_images_per_s(case: Case) -> float | None:
    """Training images/s of this process (None on DDP ranks other than 0)."""
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    pl.seed_everything(0, verbose=False)
    flt = get_filter(case.filter)
    steps = case.warmup + case.measure
    data = FilterDataModule(dataclasses.replace(flt, torch_fn=None) if case.loader_targets else flt, "skimage",
                            crop=case.crop, batch_size=case.batch, num_workers=case.workers,
                            steps_per_epoch=steps * case.devices)  # DDP's sampler gives each rank 1/devices of it
    timer = Throughput(case.warmup, case.measure)
    trainer = pl.Trainer(accelerator="cpu", devices=case.devices, strategy="ddp" if case.devices > 1 else "auto",
                         max_steps=steps, limit_val_batches=0, precision=case.precision, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[timer] + ([ChannelsLast()] if case.channels_last else []))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(FilterRegressor(case.model, {}, case.filter), datamodule=data)
    return float(timer.value) if trainer.is_global_zero else None


def ddp_images_per_s(case: Case, timeout: float) -> float:
    """Global training images/s with ``case.devices`` gloo processes, run in a child process: Lightning's
    DDP launcher re-runs the command line for the other ranks, so it must be this one measurement alone."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
               PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "src.bench.knobs", "--train-case", json.dumps(dataclasses.asdict(case))]
    res = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    for line in res.stdout.splitlines():
        if line.startswith(RESULT):
            return float(json.loads(line[len(RESULT):])) * case.devices
    errors = [ln for ln in res.stderr.splitlines() if "Error" in ln] or res.stderr.strip().splitlines() or ["no output"]
    raise RuntimeError(f"exit {res.returncode}: {errors[-1][:160]}")


def training_rows(cfg: dict[str, Any]) -> list[Row]:
    """Loader workers, targets on the model's device, DDP, channels_last, bf16-mixed; pairs run alternately."""
    size = dict(crop=cfg["crop"], batch=cfg["batch"], warmup=cfg["warmup"], measure=cfg["measure"])
    what, b = f"training steps/s ({cfg['crop']}² crops, batch {cfg['batch']})", cfg["batch"]

    def pair(base: Case, knob: Case) -> tuple[float, float]:
        runs = [(train_images_per_s(base), train_images_per_s(knob)) for _ in range(cfg["train_repeats"])]
        return statistics.median(r[0] for r in runs) / b, statistics.median(r[1] for r in runs) / b

    sobel, ae, bilateral = Case(**size), Case(model="autoencoder", **size), Case(filter="bilateral", **size)
    note = f"median of {cfg['train_repeats']}; {cfg['warmup']} warm-up steps untimed"
    rows = [
        Row("CPU", "loader workers", what, "compact (bilateral)", *pair(bilateral, dataclasses.replace(bilateral, workers=2)),
            f"num_workers 0 vs 2; bilateral has no torch twin: cv2 targets in the loader; {note}"),
        Row("CPU", "targets on device", what, "compact (Sobel)", *pair(dataclasses.replace(sobel, loader_targets=True), sobel),
            f"Sobel's torch twin in training_step vs cv2 in the loader (0 workers); {note}"),
    ]
    one = statistics.median(train_images_per_s(sobel) for _ in range(cfg["train_repeats"]))
    try:
        two, ddp_note = ddp_images_per_s(dataclasses.replace(sobel, devices=2), timeout=300), ""
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        two, ddp_note = None, f"failed: {_one_line(exc)}; "
    rows.append(Row("CPU", "ddp", f"training samples/s ({cfg['crop']}² crops)", "compact (Sobel)", one, two,
                    f"{ddp_note}2 gloo processes x batch {b} (global batch {2 * b}, 1 torch thread each) vs 1 process "
                    f"x batch {b} ({torch.get_num_threads()} threads); DDP: one run; {cfg['warmup']} warm-up steps untimed"))
    rows.append(Row("CPU", "channels_last", what, "seed autoencoder", *pair(ae, dataclasses.replace(ae, channels_last=True)),
                    f"weights and inputs NHWC (callback); {note}"))
    rows.append(Row("CPU", "bf16", what, "seed autoencoder", *pair(ae, dataclasses.replace(ae, precision="bf16-mixed")),
                    f"Lightning precision bf16-mixed vs 32-true; {note}"))
    return rows


def threads_rows(cfg: dict[str, Any]) -> list[Row]:
    """Training steps/s at 1 vs 2 torch threads, idle and while another process keeps one core at 100 %.

    The measurement behind the training default (``MODEL_DEFAULTS[...]["threads"]`` in
    ``src/training/train.py``): OpenMP threads wait for each other, so a thread that shares its core
    with a busy process stalls the whole step.
    """
    size = dict(crop=cfg["crop"], batch=cfg["batch"], warmup=cfg["warmup"], measure=cfg["measure"])
    what, b, before = f"training steps/s ({cfg['crop']}² crops, batch {cfg['batch']})", cfg["batch"], torch.get_num_threads()

    def at(case: Case, n: int) -> float:
        torch.set_num_threads(n)
        return train_images_per_s(case) / b

    rows = []
    for case, name in ((Case(**size), "compact (Sobel)"), (Case(model="autoencoder", **size), "seed autoencoder")):
        for busy in (False, True):
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                runs = [(at(case, 1), at(case, 2)) for _ in range(cfg["train_repeats"])]
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
                torch.set_num_threads(before)
            rows.append(Row("CPU", "2 threads, one core busy" if busy else "2 threads, idle", what, name,
                            statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
                            "torch.set_num_threads(1) vs (2)" + (" while `python -c 'while True: pass'` runs"
                                                                 if busy else "") +
                            f"; median of {cfg['train_repeats']}, alternating; {cfg['warmup']} warm-up steps untimed"))
    return rows


def _out_stem(out: str) -> Path:
    stem = Path(out)
    stem = stem.with_suffix("") if stem.suffix in (".csv", ".md") else stem
    for parent in stem.parents:  # fail now, not after minutes of measuring
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"--out {out}: {parent} is a file, not a folder")
            break
    return stem


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.bench.knobs", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny images and step counts (seconds; for the tests)")
    ap.add_argument("--out", default="figures/knobs", help="writes OUT.csv and OUT.md")
    ap.add_argument("--gpu-json", nargs="*", default=None,
                    help="GPU rows from src/bench/gpu.py's JSON files (default: figures/gpu-bench*.json)")
    ap.add_argument("--gpu-only", action="store_true",
                    help="measure nothing: OUT's CPU rows (from OUT.csv) again, with the GPU rows of --gpu-json")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for every row but the threads row (default: torch's, one per core)")
    ap.add_argument("--only", choices=("inference", "training", "threads"), default=None,
                    help="measure one group of rows (default: all)")
    ap.add_argument("--train-case", help=argparse.SUPPRESS)  # one training measurement as JSON (the DDP child)
    args = ap.parse_args(argv)
    if args.train_case:
        value = train_images_per_s(Case(**json.loads(args.train_case)))
        if value is not None:
            print(RESULT + strict_json(value), flush=True)
        return 0

    stem = _out_stem(args.out)
    cfg = QUICK if args.quick else FULL
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    t0, load = time.time(), os.getloadavg()[0]
    groups = {"inference": inference_rows, "training": training_rows, "threads": threads_rows}
    rows, header = [], None
    if args.gpu_only:  # the CPU rows and their header line as measured, the GPU rows read afresh
        rows, header = cpu_rows_of(stem)
    for name, measure in groups.items():
        if not args.gpu_only and args.only in (None, name):
            rows += measure(cfg)
            print(f"{name} rows measured ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    gpu, gpu_line = gpu_reports(args.gpu_json)
    rows += gpu
    header = header or (
        f"Speed knobs, baseline vs knob on the same work{' (--quick sizes)' if args.quick else ''}: torch "
        f"{torch.__version__}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads outside the "
        f"threads rows, load average {load:.1f} at the start, {time.time() - t0:.0f} s in all. Rates: higher "
        "is faster; speed-up = with knob / baseline. Other processes on the same cores make these timings noisy.")
    md = to_markdown(rows, header, gpu_line)
    atomic_write_bytes(stem.with_name(stem.name + ".csv"), to_csv(rows).encode())
    atomic_write_bytes(stem.with_name(stem.name + ".md"), md.encode())
    print(md, end="")
    return 0


if __name__ == "__main__":
    run_cli(main)
