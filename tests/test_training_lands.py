"""Training that lands every time: step budgets, the L-BFGS finish, determinism, resume after a kill or Ctrl-C."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from src.training.config import TrainConfig
from src.training.train import train
from src.models import read_checkpoint

from .conftest import ROOT, run_module

# A tiny run: 4 validations of 10 steps, the finish from step 20 (crops 32 px, batches of 8).
TINY = ["--max-steps", "40", "--steps-per-epoch", "10", "--finish-after", "20", "--crop", "32", "--batch-size", "8",
        "--logger", "none", "--no-test", "--quiet"]
TINY_CONFIG = dict(max_steps=40, steps_per_epoch=10, finish_after=20, crop=32, batch_size=8, logger="none", test=False,
                   quiet=True)


def tiny_config(tmp: Path, name: str = "m", **changes) -> TrainConfig:
    return TrainConfig(**(TINY_CONFIG | dict(output=str(tmp / f"{name}.ckpt"), run_dir=str(tmp / "runs")) | changes))


def weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def assert_identical(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs"


def test_same_command_and_seed_give_bit_identical_weights(tmp_path):
    train(tiny_config(tmp_path, name="a"))
    train(tiny_config(tmp_path, name="b"))
    assert_identical(tmp_path / "a.ckpt", tmp_path / "b.ckpt")
    train(tiny_config(tmp_path, name="c", seed=1))
    assert not all(torch.equal(x, y) for x, y in zip(weights(tmp_path / "a.ckpt").values(), weights(tmp_path / "c.ckpt").values()))


def test_the_budget_is_steps_and_the_finish_is_a_logged_stage(tmp_path):
    res = train(tiny_config(tmp_path, logger="csv"))
    assert res["steps"] == 40 and res["stopped_by"] == "step budget" and res["finish_start"] == 20
    info = read_checkpoint(tmp_path / "m.ckpt")["info"]
    assert info["steps"] == 40 and info["finish"] == "lbfgs" and info["stopped_by"] == "step budget"
    import csv

    rows = [r for r in csv.DictReader(open(next((tmp_path / "runs").rglob("metrics.csv")))) if r.get("stage")]
    assert [float(r["stage"]) for r in rows] == [0.0, 0.0, 1.0, 1.0]  # two Adam validations, two of the finish


def test_the_lbfgs_finish_beats_adam_alone_at_equal_steps(tmp_path):
    adam = train(tiny_config(tmp_path, name="adam", finish="none", max_steps=60))
    lbfgs = train(tiny_config(tmp_path, name="lbfgs", max_steps=60))
    assert lbfgs["best_val_psnr"] > adam["best_val_psnr"] + 10, (lbfgs["best_val_psnr"], adam["best_val_psnr"])


def test_a_time_cap_that_cuts_the_run_says_so(tmp_path):
    res = run_module("src.training.train", *TINY[2:], "--max-steps", "100000", "--max-time", "2",
                     "--output", str(tmp_path / "m.ckpt"), "--run-dir", str(tmp_path / "runs"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "stopped by the time cap (2 s) after" in res.stdout and "of 100000 steps" in res.stdout
    assert read_checkpoint(tmp_path / "m.ckpt")["info"]["stopped_by"] == "time cap"


def test_a_diverging_run_stops_in_one_line_and_writes_no_checkpoint(tmp_path):
    res = run_module("src.training.train", *TINY, "--finish", "none", "--lr", "1e30",
                     "--output", str(tmp_path / "m.ckpt"), "--run-dir", str(tmp_path / "runs"))
    assert res.returncode == 2
    assert "training diverged at step" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "m.ckpt").exists()


# -- resume ---------------------------------------------------------------------------------------------
# Long enough to be interrupted: 12 validations of 10 steps on 48-px crops.
RESUMABLE = ["--max-steps", "120", "--steps-per-epoch", "10", "--finish-after", "60", "--crop", "48",
             "--batch-size", "16", "--logger", "none", "--no-test", "--quiet"]


# Every model kind resumes: Pix2Pix has two optimisers, an LR schedule per step and dropout, the
# autoencoder BatchNorm statistics, the CAN adaptive BatchNorm.
KINDS = {"compact": [], "autoencoder": ["--model", "autoencoder"],
         "can": ["--model", "can", "--model-arg", "width=4", "--model-arg", "depth=3"],
         "pix2pix": ["--model", "pix2pix", "--model-arg", "ngf=4", "--crop", "32"]}


def start(tmp: Path, name: str, *extra: str, kind: str = "compact") -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "src.training.train", *RESUMABLE, *KINDS[kind], "--output", str(tmp / f"{name}.ckpt"),
           "--run-dir", str(tmp / "runs"), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_new_checkpoint(path: Path, proc: subprocess.Popen, after: float = 0.0, timeout: float = 240) -> float:
    """Wait until ``path`` is (re)written after ``after`` (mtime); returns its mtime."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.exists() and path.stat().st_mtime > after:
            return path.stat().st_mtime
        assert proc.poll() is None, "the run ended before it could be interrupted: " + proc.stderr.read()[-2000:]
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint at {path} within {timeout} s")


def finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run's checkpoint, per model kind (made once)."""
    made: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in made:
            tmp = tmp_path_factory.mktemp(f"ref-{kind}")
            finish(start(tmp, "ref", kind=kind))
            made[kind] = tmp / "ref.ckpt"
        return made[kind]

    return get


@pytest.fixture
def uninterrupted(reference) -> Path:
    return reference("compact")


def test_a_run_killed_twice_resumes_to_the_uninterrupted_weights(tmp_path, uninterrupted):
    last = tmp_path / "runs" / "k" / "checkpoints" / "last.ckpt"
    proc = start(tmp_path, "k")
    first = wait_for_new_checkpoint(last, proc)
    proc.kill()  # right after a checkpoint write
    proc.wait()
    proc = start(tmp_path, "k", "--resume")
    second = wait_for_new_checkpoint(last, proc, after=first)
    time.sleep(max(0.05, (second - first) / 2))  # about half an epoch later: mid-epoch
    proc.kill()
    assert proc.wait() == -signal.SIGKILL
    assert not (tmp_path / "k.ckpt").exists()  # no output before the run is done
    finish(start(tmp_path, "k", "--resume"))
    assert_identical(tmp_path / "k.ckpt", uninterrupted)
    assert not list(last.parent.glob(".*.part"))  # temp files of the killed saves were swept


@pytest.mark.parametrize("kind", list(KINDS))
def test_ctrl_c_saves_a_resumable_checkpoint_that_resumes_to_the_same_weights(tmp_path, reference, kind):
    last = tmp_path / "runs" / "c" / "checkpoints" / "last.ckpt"
    proc = start(tmp_path, "c", kind=kind)
    first = wait_for_new_checkpoint(last, proc)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    message = err.strip().splitlines()[-1]
    assert message.startswith("interrupted at step") and "--resume" in message, err[-2000:]
    assert "Traceback" not in err and last.stat().st_mtime > first
    finish(start(tmp_path, "c", "--resume", kind=kind))
    assert_identical(tmp_path / "c.ckpt", reference(kind))


def test_resume_without_a_checkpoint_fails_in_one_line(tmp_path):
    res = run_module("src.training.train", *TINY, "--resume", "--output", str(tmp_path / "m.ckpt"),
                     "--run-dir", str(tmp_path / "runs"))
    assert res.returncode == 2 and "--resume: no checkpoint to resume from at" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_resume_refuses_another_runs_checkpoint_and_overwrites_nothing(tmp_path):
    train(tiny_config(tmp_path))
    last = tmp_path / "runs" / "m" / "checkpoints" / "last.ckpt"
    before = (last.read_bytes(), (tmp_path / "m.ckpt").read_bytes())
    res = run_module("src.training.train", *TINY, "--resume", "--model-arg", "kernel_size=7", "--seed", "3",
                     "--output", str(tmp_path / "m.ckpt"), "--run-dir", str(tmp_path / "runs"))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "is from a different run: model_kwargs {} there, {'kernel_size': 7} here; seed 0 there, 3 here" in res.stderr
    assert (last.read_bytes(), (tmp_path / "m.ckpt").read_bytes()) == before


def test_resume_refuses_a_corrupt_checkpoint_naming_it(tmp_path):
    last = tmp_path / "runs" / "m" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"PK\x03\x04 truncated")
    res = run_module("src.training.train", *TINY, "--resume", "--output", str(tmp_path / "m.ckpt"),
                     "--run-dir", str(tmp_path / "runs"))
    assert res.returncode == 2 and f"--resume: {last} is corrupt or not a checkpoint" in res.stderr
    assert last.read_bytes() == b"PK\x03\x04 truncated"


def test_default_threads_follow_the_cores_this_process_may_use():
    code = "from src.threads import available_cores; print(available_cores())"
    res = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0 and res.stdout.strip() == "1", res.stderr


def test_a_checkpoint_saved_before_the_gan_weight_existed_still_resumes_as_gan_weight_one(tmp_path):
    from src.errors import UserError
    from src.training.config import TrainConfig
    from src.training.train import resume_state

    settings = TrainConfig(model="pix2pix", crop=32).resolved().run_settings()
    last = tmp_path / "last.ckpt"
    torch.save({"run_config": {k: v for k, v in settings.items() if k != "gan_weight"}}, last)
    resume_state(last, settings)  # no error: such runs trained with the full GAN term
    with pytest.raises(UserError, match="gan_weight 1.0 there, 0.0 here"):
        resume_state(last, settings | {"gan_weight": 0.0})
