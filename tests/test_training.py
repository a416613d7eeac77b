"""Real Lightning training at tiny sizes, and the train / evaluate / predict commands end to end."""
import csv
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from src.dataset import FilterDataModule
from src.filters import get_filter
from src.models import load_model
from src.models.lit import FilterRegressor

from .conftest import run_module


@pytest.mark.parametrize("model, lr", [("compact", 3e-3), ("autoencoder", 3e-3)])
def test_a_few_training_steps_make_the_loss_fall(model, lr):
    pl.seed_everything(0, verbose=False)
    module = FilterRegressor(model, lr=lr)
    data = FilterDataModule(get_filter("sobel"), crop=32, batch_size=8, steps_per_epoch=300)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    x, y = module._pair(batch)

    def loss() -> float:
        # Batch statistics (train mode) on a copy: the autoencoder's BatchNorm running averages lag
        # far behind its weights after 300 steps, and the copy leaves the module's averages untouched.
        import copy

        net = copy.deepcopy(module.net).train()
        with torch.no_grad():
            return module.loss_fn(net(x), y).item()

    before = loss()
    trainer = pl.Trainer(max_steps=300, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(module, datamodule=data)
    assert loss() < 0.75 * before


def test_training_data_are_random_flipped_crops_with_targets_on_demand():
    flt = get_filter("sobel")
    data = FilterDataModule(flt, crop=24, batch_size=4, steps_per_epoch=2)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    assert batch["input"].shape == (4, 3, 24, 24) and "target" not in batch  # computed on the device
    val = next(iter(data.val_dataloader()))
    assert val["input"].shape[0] == 1 and min(val["input"].shape[-2:]) > 24  # whole images


def test_embedded_splits_never_share_an_image():
    from src.dataset.sources import EMBEDDED_SPLITS

    names = [n for split in EMBEDDED_SPLITS.values() for n in split]
    assert len(names) == len(set(names))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A checkpoint made by the real training command (a few steps)."""
    out = tmp_path_factory.mktemp("train")
    res = run_module("src.training.train", "--max-steps", "6", "--steps-per-epoch", "2", "--crop", "32",
                     "--batch-size", "4", "--output", str(out / "sobel.ckpt"), "--run-dir", str(out / "runs"), "--quiet")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "mean" in res.stdout and "zero" in res.stdout  # the test table
    return out / "sobel.ckpt"


def test_train_command_writes_a_loadable_checkpoint_and_logs(trained):
    net = load_model(trained)
    assert net.meta["model"] == "compact" and "test_psnr" in net.meta["metrics"]
    logs = list((trained.parent / "runs").rglob("metrics.csv"))
    assert logs, "CSV logger output"
    lightning_ckpt = next((trained.parent / "runs").rglob("best.ckpt"))
    assert load_model(lightning_ckpt).meta["info"]["source"] == "lightning"


def test_evaluate_command_writes_csv_and_grid(trained, tmp_path):
    res = run_module("src.evaluation.evaluate", "--checkpoint", str(trained), "--figures", str(tmp_path), "--name", "ev")
    assert res.returncode == 0, res.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "ev.csv")))
    assert [r["image"] for r in rows] == ["astronaut", "coffee", "camera", "coins", "mean"]
    assert all(float(r["zero_psnr"]) < 15 for r in rows)  # the trivial baseline is reported
    assert (tmp_path / "ev.png").stat().st_size > 10_000


def test_predict_command_on_a_folder_keeps_sizes(trained, tmp_path, photo):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(photo).save(src / "a.png")
    Image.fromarray(photo[:33, :17, 0]).save(src / "sub" / "b.jpg")
    (src / "bad.png").write_text("not an image")
    res = run_module("src.inference.predict", "--checkpoint", str(trained), "--input", str(src), "--output", str(tmp_path / "out"), "--png16")
    assert res.returncode == 1, "one file failed, the others were written"
    assert "skipped:" in res.stdout and "bad.png" in res.stdout
    a = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    b = np.asarray(Image.open(tmp_path / "out" / "sub" / "b.png"))
    assert a.shape == (301, 457) and b.shape == (33, 17) and a.dtype == np.uint16
    assert not (tmp_path / "out" / "bad.png").exists()


@pytest.mark.parametrize("args, message", [
    (["src.inference.predict", "--checkpoint", "nope.ckpt", "--input", "x", "--output", "y"], "nope.ckpt: no such checkpoint"),
    (["src.training.train", "--filter", "sobell", "--max-steps", "1"], "unknown filter 'sobell'"),
    (["src.training.train", "--data", "/no/such/dir", "--max-steps", "1"], "--data '/no/such/dir': not 'skimage'"),
    (["src.training.train", "--model", "resnet", "--max-steps", "1"], "unknown model 'resnet'"),
    (["src.evaluation.evaluate", "--checkpoint", "setup.py"], "not a readable checkpoint"),
])
def test_bad_command_lines_fail_with_one_line(args, message, tmp_path):
    res = run_module(*args, cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 2
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.stderr


def test_predict_on_a_single_bad_file_writes_nothing(trained, tmp_path):
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    res = run_module("src.inference.predict", "--checkpoint", str(trained), "--input", str(bad), "--output", str(tmp_path / "out"))
    assert res.returncode == 2 and f"{bad}: empty file" in res.stderr  # the one file's own reason
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_evaluate_can_record_its_metrics_in_the_checkpoint(trained, tmp_path):
    import shutil

    ckpt = tmp_path / "copy.ckpt"
    shutil.copy(trained, ckpt)
    res = run_module("src.evaluation.evaluate", "--checkpoint", str(ckpt), "--figures", str(tmp_path), "--name", "ev", "--record")
    assert res.returncode == 0, res.stderr[-2000:]
    mean = list(csv.DictReader(open(tmp_path / "ev.csv")))[-1]
    assert load_model(ckpt).meta["metrics"]["test_psnr"] == pytest.approx(float(mean["psnr"]))


def test_a_run_reports_its_trivial_baseline_and_whether_it_converged(tmp_path):
    res = run_module("src.training.train", "--max-steps", "8", "--steps-per-epoch", "2", "--crop", "32",
                     "--batch-size", "4", "--lr", "1e-12", "--finish", "none", "--output", str(tmp_path / "flat.ckpt"),
                     "--run-dir", str(tmp_path / "runs"), "--quiet")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "(trivial answer 10.89 dB)" in res.stdout  # predicting zeros, for the gray Sobel target
    # a learning rate of 1e-12: four flat validations, converged (and nowhere near the filter)
    assert "converged: the last 3 validations gained +0.000 dB" in res.stdout
    info = load_model(tmp_path / "flat.ckpt").meta["info"]
    assert info["converged"] is True and info["val_gain_last"] == 0.0 and info["failed"] in (True, False)


def test_convergence_compares_the_last_validations_with_the_best_before_them():
    from src.training.callbacks import convergence

    rising = [(i * 10, 20.0 + i) for i in range(6)]
    assert convergence(rising) == {"val_gain_last": 3.0, "converged": False}
    flat = [(0, 20.0), (10, 30.0), (20, 30.05), (30, 29.0), (40, 30.02)]
    assert convergence(flat) == {"val_gain_last": 0.05, "converged": True}
    assert convergence(flat[:3]) == {"val_gain_last": None, "converged": None}  # too short to tell
    assert convergence([(0, float("nan"))] * 5)["converged"] is None


def test_a_score_near_the_trivial_answer_is_a_failed_run():
    from src.evaluation.evaluate import failed
    from src.training.train import run_verdict

    assert failed(11.2, 10.89) and failed(float("nan"), 10.89) and failed(9.0, 10.89) and not failed(11.4, 10.89)
    line = run_verdict({"failed": True, "test_trivial_psnr": 12.2})
    assert line.startswith("FAILED: test PSNR within 0.5 dB of the trivial answer (12.20 dB)")
