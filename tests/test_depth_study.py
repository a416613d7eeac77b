"""Question 7's study on photographs: the CAN at several depths and widths trained with the operators' recipe,
scored on the validation photos, resumed by its runs CSV, and tabled beside the shipped model (a tiny folder)."""
import numpy as np
import pytest

from src.errors import UserError
from src.io.tables import read_csv
from src.studies import depth

from .test_operator_study import photos_root  # noqa: F401 (the fixture: a tiny photos folder)


def test_every_crop_holds_twice_the_largest_receptive_field():
    assert depth.CROP >= 2 * max(depth.receptive_field(v) for v in depth.VARIANTS)


def test_the_study_trains_scores_resumes_and_tables_each_network(photos_root, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setattr(depth, "CROP", 32)  # the tiny photos are 50-90 px
    argv = ["train", "--operators", "sobel", "--variants", "depth 3", "width 8", "--seeds", "0", "--steps", "2",
            "--threads", "1"]
    assert depth.main(argv) == 0
    runs = read_csv(photos_root.parent / "figures/depth-runs.csv")
    assert [(r["variant"], r["steps"], r["receptive_field"]) for r in runs] == [("depth 3", 2, 5), ("width 8", 2, 17)]
    assert all(np.isfinite(r["val_psnr"]) and np.isfinite(r["val_trivial_psnr"]) for r in runs)
    assert depth.main(argv) == 0 and "done" in capsys.readouterr().out  # rows exist: nothing retrained
    assert len(read_csv(photos_root.parent / "figures/depth-runs.csv")) == 2
    assert depth.main(["table", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "no models/sobel.ckpt" in out  # no shipped model here: said, no row invented
    table = (photos_root.parent / "figures/depth.md").read_text()
    assert "| sobel | CAN 24x3 | 5 |" in table and "| sobel | CAN 8x5 | 17 |" in table
    assert (photos_root.parent / "figures/depth.png").read_bytes()[:4] == b"\x89PNG"


def test_a_bad_choice_is_refused_before_any_work(photos_root):  # noqa: F811
    with pytest.raises(UserError, match="steps"):
        depth.main(["train", "--steps", "0"])
    with pytest.raises(SystemExit):
        depth.main(["train", "--variants", "depth 9"])
