"""What does the adversarial term add? L1 alone vs GAN + L1, everything else equal.

    python -m src.studies.ablation_gan [--arms l1 gan gan-l10] [--seeds 0 1 2] [--batches 600]

Every arm trains the same Pix2Pix U-Net through the same ``Pix2PixModule``: the same optimiser (Adam 2e-4,
beta1 0.5) and LR schedule (constant, then linearly to 0), the same data and crops (a function of seed and
step), batch size and number of generator steps; the discriminator trains in every arm. Only the
generator's loss differs (``ARMS``): ``l1`` is ``100 * L1`` (``--gan-weight 0``), ``gan`` the paper's
``GAN + 100 * L1``, ``gan-l10`` is ``GAN + 10 * L1``. Each run's best-validation generator is scored on
the test split at native resolution: PSNR, SSIM, gradient PSNR (the prediction's x and y differences against
the target's: edges where the target has them, noise counted against) and edge sharpness (mean gradient
magnitude of the prediction over the target's: 1 = as sharp as the target, noise included), beside the PSNR of
predicting all zeros.

Writes ``figures/ablation-gan.csv`` (one row per run), ``.md`` (mean +- sd per arm) and ``.png`` (one test
image, seed 0 of each arm), after every run. Runs are resumable: a run whose ``last.ckpt`` exists is
continued (a finished one is only re-scored), so an interrupted study picks up where it stopped.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from src.cli import run_cli
from src.dataset import load_split
from src.errors import UserError
from src.evaluation.metrics import edge_sharpness, gradient_psnr
from src.io.files import atomic_write_bytes
from src.io.plots import pyplot, save_figure
from src.io.tables import markdown_table, mean_sd, write_csv
from src.training.config import TrainConfig
from src.training.train import train

# The generator's loss per arm: Pix2PixModule's gan_weight * GAN + lambda_l1 * L1. Nothing else may differ.
ARMS: dict[str, dict[str, float]] = {
    "l1": {"gan_weight": 0.0, "lambda_l1": 100.0},
    "gan": {"gan_weight": 1.0, "lambda_l1": 100.0},
    "gan-l10": {"gan_weight": 1.0, "lambda_l1": 10.0},
}
LOSS_KEYS = ("gan_weight", "lambda_l1")
LABELS = {"l1": "100·L1 only", "gan": "GAN + 100·L1", "gan-l10": "GAN + 10·L1"}


@dataclass(frozen=True)
class Ablation:
    """The study: which arms and seeds, and the run settings every arm shares."""

    arms: tuple[str, ...] = ("l1", "gan")
    seeds: tuple[int, ...] = (0, 1, 2)
    batches: int = 600  # training batches per run (the same for every arm)
    crop: int = 128
    ngf: int = 16
    batch_size: int = 8
    steps_per_epoch: int = 100  # batches between validations
    threads: int = 1
    work: str = "models/runs/ablation-gan"  # run checkpoints (git-ignored)
    out: str = "figures"  # folder for ablation-gan.{csv,md,png}

    def checked(self) -> "Ablation":
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise UserError(f"unknown arm {unknown[0]!r}; available: {', '.join(ARMS)}")
        if self.batches < 1:
            raise UserError(f"--batches must be at least 1, got {self.batches}")
        return self


def train_config(arm: str, seed: int, study: Ablation) -> TrainConfig:
    """The training run of one arm and seed; arms differ only in ``ARMS[arm]`` (the generator's loss)."""
    return TrainConfig(
        model="pix2pix", filter="sobel", data="skimage", crop=study.crop, model_kwargs={"ngf": study.ngf},
        batch_size=study.batch_size, max_steps=2 * study.batches,  # a discriminator and a generator step per batch
        steps_per_epoch=min(study.steps_per_epoch, study.batches), seed=seed, threads=study.threads,
        output=str(run_checkpoint(study.work, arm, seed)), run_dir=str(Path(study.work) / "runs"), logger="none",
        test=False, quiet=True, resume=lightning_checkpoint(study.work, arm, seed).is_file(), **ARMS[arm])


def run_checkpoint(work: str | Path, arm: str, seed: int) -> Path:
    return Path(work) / f"{arm}-seed{seed}.ckpt"


def lightning_checkpoint(work: str | Path, arm: str, seed: int) -> Path:
    """The run's resumable Lightning checkpoint (it records the module's hyper-parameters and run settings)."""
    return Path(work) / "runs" / f"{arm}-seed{seed}" / "checkpoints" / "last.ckpt"


def run_one(arm: str, seed: int, study: Ablation, test_images: list) -> tuple[dict[str, Any], list[dict]]:
    """Train (or continue, or reuse) one run and score it on the test split."""
    from src.evaluation.evaluate import evaluate_images  # start-up: torch only when called
    from src.filters import get_filter  # start-up: torch only when called
    from src.models import load_model  # start-up: torch only when called

    result = train(train_config(arm, seed, study))
    net = load_model(result["checkpoint"])
    rows, mean = evaluate_images(net, get_filter("sobel"), test_images, keep=True)
    sharpness = [edge_sharpness(r["_arrays"][2], r["_arrays"][1]) for r in rows]
    gradients = [gradient_psnr(r["_arrays"][2], r["_arrays"][1]) for r in rows]
    row = {"arm": arm, "seed": seed, **ARMS[arm], "batches": study.batches, "psnr": mean["psnr"], "ssim": mean["ssim"],
           "gradient_psnr": float(np.mean(gradients)), "sharpness": float(np.mean(sharpness)),
           "zero_psnr": mean["zero_psnr"], "steps": result["steps"]}
    print(f"{arm:>8} seed {seed}: test PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.4f}, gradient PSNR "
          f"{row['gradient_psnr']:.2f} dB, sharpness {row['sharpness']:.3f} "
          f"({result['train_seconds']:.0f} s of training in this call)")
    return row, rows


def markdown(rows: list[dict], study: Ablation) -> str:
    table = []
    for arm in ARMS:
        runs = [r for r in rows if r["arm"] == arm]
        if runs:
            table.append((arm, LABELS[arm], len(runs), mean_sd([r["psnr"] for r in runs], 2),
                          mean_sd([r["ssim"] for r in runs], 3), mean_sd([r["gradient_psnr"] for r in runs], 2),
                          mean_sd([r["sharpness"] for r in runs], 3), f"{runs[0]['zero_psnr']:.2f}"))
    lines = [markdown_table(["arm", "generator loss", "seeds", "test PSNR (dB)", "SSIM", "gradient PSNR (dB)",
                             "edge sharpness", "zero PSNR (dB)"], table, align="llrrrrrr")]
    lines += ["", f"Mean ± sd over seeds; each run: Pix2Pix U-Net ngf {study.ngf}, {study.crop}² crops, batch "
              f"{study.batch_size}, {study.batches} batches (one D and one G step each), Adam 2e-4 β1 0.5, LR "
              "constant then linearly to 0, the same for every arm; best-validation generator; test split at "
              "native resolution. Gradient PSNR = PSNR of ∇prediction against ∇target (x and y differences; "
              "noise and misplaced edges lower it). Edge sharpness = mean |∇prediction| / mean |∇target| (1 = as "
              "sharp as the target; noise raises it too). Zero PSNR = predicting all zeros."]
    return "\n".join(lines) + "\n"


def picture(path: Path, panels_by_arm: dict[str, tuple[dict, dict]]) -> None:
    """One test image: input | target | each arm's prediction (seed 0), titled with its PSNR and sharpness."""
    plt = pyplot()
    first = next(iter(panels_by_arm.values()))[0]
    rgb, target, _ = first["_arrays"]
    panels = [(rgb, None, "input"), (target, "gray", "Sobel target")]
    for arm, (image_row, run) in panels_by_arm.items():
        panels.append((image_row["_arrays"][2], "gray", f"{LABELS[arm]}: {image_row['psnr']:.1f} dB"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.5 * len(panels), 3.8))
    for ax, (img, cmap, title) in zip(axes, panels):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path, dpi=70)


def write_outputs(rows: list[dict], panels: dict, study: Ablation) -> None:
    out = Path(study.out)
    write_csv(out / "ablation-gan.csv", rows)
    atomic_write_bytes(out / "ablation-gan.md", markdown(rows, study).encode())
    if panels:
        picture(out / "ablation-gan.png", panels)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m src.studies.ablation_gan", description=__doc__.splitlines()[0])
    d = Ablation()
    ap.add_argument("--arms", nargs="+", default=list(d.arms), help=f"subset of {list(ARMS)}")
    ap.add_argument("--seeds", nargs="+", type=int, default=list(d.seeds))
    ap.add_argument("--batches", type=int, default=d.batches, help="training batches per run (the same for every arm)")
    ap.add_argument("--crop", type=int, default=d.crop)
    ap.add_argument("--ngf", type=int, default=d.ngf)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch, help="batches between validations")
    ap.add_argument("--threads", type=int, default=d.threads)
    ap.add_argument("--work", default=d.work, help="run checkpoints (git-ignored)")
    ap.add_argument("--out", default=d.out, help="folder for ablation-gan.{csv,md,png}")
    return ap


def run(study: Ablation) -> list[dict]:
    """Every arm at every seed, seed-major (an interrupted study still has every arm at the seeds it finished);
    the outputs are rewritten after each run."""
    study = study.checked()
    test_images = load_split("skimage", "test")
    rows: list[dict] = []
    panels: dict[str, tuple[dict, dict]] = {}
    for seed in study.seeds:
        for arm in study.arms:
            row, image_rows = run_one(arm, seed, study, test_images)
            rows.append(row)
            if seed == study.seeds[0]:
                panels[arm] = (image_rows[0], row)
            write_outputs(rows, panels, study)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    study = Ablation(**{f.name: tuple(args[f.name]) if f.name in ("arms", "seeds") else args[f.name]
                        for f in dataclasses.fields(Ablation)})
    print(markdown(run(study), study))
    return 0


if __name__ == "__main__":
    run_cli(main)
