"""Teach by example (src/training/teach.py): one before/after pair in, a checkpoint and held-out scores out."""
import threading

import numpy as np
import pytest
from PIL import Image

from src.errors import UserError
from src.training.teach import MAX_STEPS, check_pair, holdout_row, teach
from src.filters import get_filter
from src.models import load_model, read_checkpoint
from src.evaluation.metrics import psnr
from src.inference.predict import predict


@pytest.fixture(scope="module")
def pair():
    """A 96 x 128 crop of a photo and its random 3x3 linear filter (gray, no flip symmetry)."""
    import skimage.data

    before = np.ascontiguousarray(skimage.data.astronaut()[100:196, 150:278])
    return before, get_filter("random", seed=1, size=3)(before)


@pytest.fixture(scope="module")
def taught(pair, tmp_path_factory):
    before, after = pair
    seen = []
    ckpt, summary = teach(before, after, "compact", max_steps=30, workdir=tmp_path_factory.mktemp("teach"),
                          progress=seen.append)
    return ckpt, summary, seen


def test_taught_model_beats_the_trivial_baseline_on_the_held_out_stripe(taught):
    _, summary, _ = taught
    assert summary["holdout"] == "bottom 19 of 96 rows"
    assert summary["holdout_psnr"] > summary["baseline_psnr"] + 10
    assert summary["gain_db"] == pytest.approx(summary["holdout_psnr"] - summary["baseline_psnr"])
    assert summary["baseline_psnr"] == max(summary["identity_psnr"], summary["zeros_psnr"])


def test_taught_checkpoint_loads_and_generalises_to_an_unseen_photo(taught):
    import skimage.data

    ckpt, _, _ = taught
    blob = read_checkpoint(ckpt)
    assert blob["filter"] == "pairs" and "holdout_psnr" in blob["metrics"]
    assert "/" not in blob["filter_params"]["in_dir"], "no server folder in the checkpoint"
    photo = skimage.data.coffee()[:80, :120]
    assert psnr(predict(load_model(ckpt), photo), get_filter("random", seed=1, size=3)(photo)) > 30


def test_progress_reports_validation_psnr_and_the_baseline(taught):
    _, summary, seen = taught
    curve = [e for e in seen if e["val_psnr"] is not None]
    assert [e["step"] for e in curve] == [10, 20, 30]
    assert all(e["baseline_psnr"] == summary["baseline_psnr"] for e in seen)


def test_stop_event_ends_training_early_and_keeps_a_checkpoint(pair, tmp_path):
    before, after = pair
    stop = threading.Event()

    def on_progress(event):
        if event["val_psnr"] is not None:
            stop.set()  # after the first validation

    ckpt, summary = teach(before, after, "compact", max_steps=MAX_STEPS, workdir=tmp_path, progress=on_progress, stop=stop)
    assert summary["stopped_by"] == "stop" and summary["steps"] < 20
    assert load_model(ckpt) is not None


def test_the_held_out_stripe_is_the_bottom_fifth():
    assert holdout_row(100) == 80 and holdout_row(512) == 410


def _png(path, array):
    Image.fromarray(array).save(path)
    return path


@pytest.mark.parametrize("case, message", [
    ("sizes", "differ in size: 128x96 vs 120x96"),
    ("not-an-image", "after image: "),
    ("constant", "the after image is constant"),
    ("tiny", "at least 64x64 pixels"),
])
def test_a_bad_pair_gets_one_clear_message(case, message, pair, tmp_path):
    before, after = pair
    b = _png(tmp_path / "b.png", before)
    a = {"sizes": lambda: _png(tmp_path / "a.png", before[:, :120]),
         "constant": lambda: _png(tmp_path / "a.png", np.full_like(before, 7)),
         "tiny": lambda: _png(tmp_path / "a.png", before[:40, :40])}
    if case == "not-an-image":
        (tmp_path / "a.png").write_text("hello")
        a_path = tmp_path / "a.png"
    else:
        a_path = a[case]()
    if case == "tiny":
        b = _png(tmp_path / "b.png", before[:40, :40])
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        check_pair(b, a_path)


@pytest.mark.parametrize("steps", [0, MAX_STEPS + 1, 2.5])
def test_step_budget_outside_the_cap_is_refused(steps, pair, tmp_path):
    with pytest.raises(UserError, match=f"whole number in 1..{MAX_STEPS}"):
        teach(*pair, max_steps=steps, workdir=tmp_path)
    assert not any(tmp_path.iterdir()), "nothing written"


def test_an_unknown_network_is_refused(pair, tmp_path):
    with pytest.raises(UserError, match="unknown model 'unet' for teaching; available: compact, can"):
        teach(*pair, model="unet", workdir=tmp_path)


def test_a_photographic_look_is_taught_to_the_bilateral_grid_at_full_resolution(tmp_path):
    """detail-enhance from one pair: the grid starts at the identity, trains on large crops, and its checkpoint
    predicts any size (the grid from the whole image)."""
    import skimage.data

    before = np.ascontiguousarray(skimage.data.coffee()[:160, :240])
    after = get_filter("detail-enhance")(before)
    ckpt, summary = teach(before, after, "bilateral-grid", max_steps=20, workdir=tmp_path)
    assert summary["steps"] == 20 and np.isfinite(summary["holdout_psnr"])
    assert summary["holdout_psnr"] > summary["identity_psnr"] - 0.5  # starts at the identity, must not fall from it
    net = load_model(ckpt)
    assert read_checkpoint(ckpt)["model"] == "bilateral-grid"
    assert predict(net, skimage.data.astronaut()[:50, :70]).shape == (50, 70, 3)
