"""Seeds and spreads (src.studies.spread): the table's mean ± sd and its argument checks (no training)."""
import pytest

from src.errors import UserError
from src.studies.spread import main, markdown


def test_the_table_gives_mean_sd_min_and_max_over_seeds():
    rows = [{"filter": "sobel", "model": "can", "seed": s, "psnr": p, "ssim": 0.9, "steps": 600}
            for s, p in enumerate((29.0, 30.0, 31.0))]
    assert "| sobel | can | 3 | 30.00 ± 1.00 | 29.00 – 31.00 | 0.900 ± 0.000 | 600 |  |" in markdown(rows)
    rows[0]["trivial_psnr"] = 10.89
    assert "| 600 | 10.89 |" in markdown(rows)
    rows[0]["steps"] = 850  # a run the validation plateau stopped early
    assert "| 0.900 ± 0.000 | 600 – 850 | 10.89 |" in markdown(rows)


def test_unknown_filters_and_models_are_refused_before_training():
    with pytest.raises(UserError, match="unknown zoo filter 'nope'"):
        main(["--filters", "nope"])
    with pytest.raises(UserError, match="unknown zoo model 'gan'"):
        main(["--models", "gan"])


def test_rows_are_tabled_in_the_zoo_order_whatever_order_they_ran_in():
    rows = [{"filter": f, "model": "can", "seed": 0, "psnr": 20.0, "ssim": 0.5, "steps": 600}
            for f in ("edge-preserving", "sobel", "random(seed=0,size=3)")]
    md = markdown(rows)
    assert md.index("random(seed=0,size=3)") < md.index("| sobel") < md.index("edge-preserving")


def test_resume_keeps_the_recorded_runs_and_trains_only_the_missing_ones(tmp_path):
    from src.io.tables import read_csv, write_csv

    done = [{"filter": "sobel", "model": "can", "seed": s, "psnr": 12.0 + s, "ssim": 0.3, "steps": 600, "train_s": 50.0}
            for s in (0, 1)]
    write_csv(tmp_path / "spread.csv", done)
    # every requested run is recorded: nothing trains, and the table is written from the recorded runs
    assert main(["--resume", "--filters", "sobel", "--models", "can", "--seeds", "0", "1",
                 "--figures", str(tmp_path)]) == 0
    back = read_csv(tmp_path / "spread.csv")
    assert [{k: v for k, v in r.items() if k != "trivial_psnr"} for r in back] == done
    assert back[0]["trivial_psnr"] == pytest.approx(10.885, abs=0.01)  # all zeros on the Sobel test split
    md = (tmp_path / "spread.md").read_text()
    assert "| sobel | can | 2 | 12.50 ± 0.71 |" in md and "| 600 | 10.89 |" in md
