"""The expensive operators learned from photographs: each photo's target stored once (a crop is cut from the
whole image's target), and the study that trains, ships and tables a model per operator, on a tiny photos folder."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from src.dataset.streaming import StreamingCrops, open_splits
from src.download.prepare import read_target
from src.filters import get_filter
from src.io.tables import read_csv
from src.studies import operators

SPLIT_SIZES = {"train": [(70, 90), (64, 80)], "val": [(50, 66)], "test": [(40, 52), (52, 40)]}


@pytest.fixture
def photos_root(tmp_path, monkeypatch):
    """data/raw/photos/{train,val,test} of small smooth colour pictures, under a data root of the test's own."""
    rng = np.random.default_rng(0)
    for split, sizes in SPLIT_SIZES.items():
        (tmp_path / "data/raw/photos" / split).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)
            cv2.imwrite(str(tmp_path / "data/raw/photos" / split / f"p{i}.png"), img)
    monkeypatch.setenv("LEARN_FILTERS_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # the study writes models/operators and figures/ where it runs
    return tmp_path / "data"


def stored(root, name="guided"):
    return sorted((root / "processed/photos/native" / name).rglob("target/*.png"))


def test_an_operator_without_a_torch_twin_has_its_photo_targets_stored_once(photos_root):
    flt = get_filter("guided")
    splits = open_splits("photos", flt, cache_mb=0, say=lambda line: None)
    assert len(stored(photos_root)) == 5
    f = splits["train"].files[0]
    rgb = cv2.cvtColor(cv2.imread(f.path), cv2.COLOR_BGR2RGB)
    assert np.abs(read_target(f.target) - flt(rgb)).max() <= 0.5 / 65535 + 1e-7  # 16-bit PNG of the whole image
    before = {p: p.stat().st_mtime_ns for p in stored(photos_root)}
    open_splits("photos", flt, cache_mb=0, say=lambda line: None)
    assert {p: p.stat().st_mtime_ns for p in stored(photos_root)} == before  # a second run reuses them


def test_an_edited_photo_or_other_parameters_rebuild_the_targets(photos_root):
    open_splits("photos", get_filter("guided"), cache_mb=0, say=lambda line: None)
    photo = photos_root / "raw/photos/train/p0.png"
    cv2.imwrite(str(photo), np.zeros((70, 90, 3), np.uint8))
    os.utime(photo, ns=(1, 1))
    splits = open_splits("photos", get_filter("guided"), cache_mb=0, say=lambda line: None)
    assert read_target(splits["train"].files[0].target).max() == 0.0
    open_splits("photos", get_filter("guided", radius=2), cache_mb=0, say=lambda line: None)
    assert stored(photos_root, "guided(radius=2)")


def test_a_training_crop_is_cut_from_the_whole_images_target(photos_root):
    flt = get_filter("guided")
    splits = open_splits("photos", flt, cache_mb=0, say=lambda line: None)
    item = StreamingCrops(splits["train"], crop=32, length=4, filter=flt, seed=0)[0]
    targets = [read_target(f.target) for f in splits["train"].files]
    t = item["target"].numpy().transpose(1, 2, 0)
    found = any(np.array_equal(t, np.ascontiguousarray(w[y:y + 32, x:x + 32][::fy, ::fx]))
                for w in targets for y in range(w.shape[0] - 31) for x in range(w.shape[1] - 31)
                for fy in (1, -1) for fx in (1, -1))
    assert found


def test_the_study_trains_ships_and_tables_each_operator_and_resumes(photos_root, capsys):
    rows = operators.run_training([("guided", 0)], steps=3, threads=1)
    assert len(rows) == 1 and rows[0]["steps"] == 3 and (photos_root.parent / "models/operators/guided.ckpt").exists()
    assert operators.run_training([("guided", 0)], steps=3, threads=1) == []  # its row exists: skipped
    assert "done" in capsys.readouterr().out
    table = operators.make_table(["guided", "l0-smooth"], repeats=1, threads=1, figures=photos_root.parent / "figures")
    assert [r["filter"] for r in table] == ["guided"]  # l0-smooth has no checkpoint: said, not invented
    row = read_csv(photos_root.parent / "figures/operators.csv")[0]
    assert np.isfinite(row["psnr"]) and row["net_mps_4"] > 0 and row["op_mps_4"] > 0
    assert row["seeds_psnr"] and "goal" in row
    md = (photos_root.parent / "figures/operators.md").read_text()
    assert "make operators" in md and "guided" in md


def test_an_operator_whose_model_changes_is_trained_again_and_tabled_with_its_model(photos_root, monkeypatch):
    """The runs ledger keys a run by operator, model and seed: a grid's row does not stand for guided upsampling."""
    operators.run_training([("guided", 0)], steps=2, threads=1)  # the grid (rows before the column are the grid's)
    monkeypatch.setitem(operators.OPERATOR_MODELS, "guided", "guided-upsampling")
    monkeypatch.setitem(operators.OPERATOR_ARGS, "guided", {"width": 8, "depth": 4})
    rows = operators.run_training([("guided", 0)], steps=2, threads=1)
    assert [r["model"] for r in rows] == ["guided-upsampling"]
    figures = photos_root.parent / "figures"
    [row] = operators.make_table(["guided"], repeats=1, threads=1, figures=figures)
    assert row["model"] == "guided-upsampling" and row["seeds"] == 1
    assert "guided: guided-upsampling, width=8, depth=4" in (figures / "operators.md").read_text()
    assert operators.checkpoint_path(get_filter("guided"), 0, "bilateral-grid") == Path("runs/operators/guided-s0.ckpt")


@pytest.mark.parametrize("row, expected", [
    ({"filter": "l0-smooth", "psnr": 33.0, "gain": 5.0, "ratio_4": 12.0}, "met"),
    ({"filter": "l0-smooth", "psnr": 29.0, "gain": 5.0, "ratio_4": 12.0}, "missed: 1.00 dB under 30"),
    ({"filter": "detail-enhance", "psnr": 31.0, "gain": 6.0, "ratio_4": 4.0}, "missed: speed 4.0x < 10x"),
    ({"filter": "stylization", "psnr": 20.0, "gain": 4.0, "ratio_4": 50.0}, "missed by 2.00 dB (goal: +6 dB)"),
    ({"filter": "oil-painting", "psnr": 20.0, "gain": 0.2, "ratio_4": 50.0}, "failed: within 0.5 dB"),
])
def test_each_row_says_which_goal_it_meets_or_misses_and_by_how_much(row, expected):
    assert operators.verdict(row).startswith(expected)


def test_a_bad_shard_is_one_line():
    from src.errors import UserError

    with pytest.raises(UserError, match="--shard must be I/N"):
        operators.main(["train", "--shard", "2/2"])


def test_a_grid_fitted_to_one_photos_target_beats_returning_the_input():
    """The ceiling study's fit (no network): on a blurred-noise picture and the guided filter it must move
    well above the trivial answer, or the bound it reports would be no bound."""
    from src.evaluation.metrics import psnr
    from src.studies.grid_ceiling import fit_grid

    rng = np.random.default_rng(1)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8), (0, 0), 1)
    target = get_filter("guided", radius=4, eps=50.0)(rgb)
    pred = fit_grid(rgb, target, cell=8, bins=8, steps=60)
    assert psnr(pred, target) > psnr(rgb.astype(np.float32) / 255, target) + 3


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "models" / "operators").glob("*.ckpt"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_each_shipped_operator_model_is_its_filters_model_and_tiles_equal_the_whole(path):
    from src.inference import predict
    from src.models import load_model, read_checkpoint

    blob = read_checkpoint(path)  # weights_only=True, bounds and finiteness checked
    assert blob["model"] == operators.model_of(path.stem) and get_filter(blob["filter"]).key == path.stem
    net = load_model(path)
    rgb = cv2.GaussianBlur(np.random.default_rng(2).integers(0, 256, (75, 101, 3), dtype=np.uint8), (0, 0), 1)
    assert np.abs(predict(net, rgb, tile=32) - predict(net, rgb)).max() <= 1e-5


def test_every_operator_of_the_goals_ships_a_model():
    assert {p.stem for p in SHIPPED} >= {*operators.FIVE, *operators.STYLES}


def test_the_size_study_trains_each_width_resumes_and_tables_it(photos_root, capsys):
    """Question 5 on an expensive operator (src/studies/grid_size.py): the stream's width, nothing else changed."""
    from src.studies import grid_size

    args = ["train", "--widths", "4", "--seeds", "0", "1", "--steps", "3", "--threads", "1"]
    assert grid_size.main(args) == 0
    runs = read_csv(photos_root.parent / "figures/grid-size-runs.csv")
    assert [(int(r["width"]), int(r["seed"])) for r in runs] == [(4, 0), (4, 1)]
    assert all(np.isfinite(float(r["val_psnr"])) and 0 <= float(r["changed_8bit"]) <= 1 for r in runs)
    capsys.readouterr()
    assert grid_size.main(args) == 0 and capsys.readouterr().out.count(": done") == 2  # rows exist: skipped
    assert grid_size.main(["table", "--repeats", "1"]) == 0
    md = (photos_root.parent / "figures/grid-size.md").read_text()
    assert "| 4 |" in md and " ± " in md and "python -m src.studies.grid_size table" in md


def test_the_size_study_reuses_the_shipped_width_and_says_where_it_comes_from(photos_root):
    from src.errors import UserError
    from src.studies import grid_size

    with pytest.raises(UserError, match="run `make operators`"):
        grid_size.main(["train", "--widths", "16", "--seeds", "0"])
