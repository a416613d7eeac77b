"""Seeds and spreads (src.experiment.spread): the table's mean ± sd and its argument checks (no training)."""
import pytest

from src.errors import UserError
from src.experiment.spread import main, markdown


def test_the_table_gives_mean_sd_min_and_max_over_seeds():
    rows = [{"filter": "sobel", "model": "can", "seed": s, "psnr": p, "ssim": 0.9, "steps": 600}
            for s, p in enumerate((29.0, 30.0, 31.0))]
    assert "| sobel | can | 3 | 30.00 ± 1.00 | 29.00 – 31.00 | 0.900 ± 0.000 | 600 |" in markdown(rows)


def test_unknown_filters_and_models_are_refused_before_training():
    with pytest.raises(UserError, match="unknown zoo filter 'nope'"):
        main(["--filters", "nope"])
    with pytest.raises(UserError, match="unknown zoo model 'gan'"):
        main(["--models", "gan"])
