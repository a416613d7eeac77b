"""`make figures`: each figure group writes real PNGs; missing inputs are skipped with the command to run."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from src.errors import UserError
from src.reports.figures import main
from src.evaluation.metrics import error_by_distance

FIGURES = Path(__file__).resolve().parents[1] / "figures"


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_error_by_distance_bins_pixels_by_their_nearest_edge():
    pred = np.zeros((7, 9))
    pred[0, :] = 1.0  # error only on the top row
    e = error_by_distance([(pred, np.zeros((7, 9)))], max_d=3)
    assert e[0] == pytest.approx(9 / 28) and e[1:].tolist() == [0.0, 0.0, 0.0]


def test_figures_from_checkpoints_and_embedded_data(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--only", "examples", "grids", "border", "tiles"]) == 0
    for name in ("sobel_examples", "zoo_examples", "eval-sobel", "eval-autoencoder", "border_error", "tiles"):
        assert is_png(tmp_path / f"{name}.png"), name
    assert "mean" in (tmp_path / "eval-sobel.csv").read_text()
    assert "4 figure groups written, 0 skipped" in capsys.readouterr().out


def test_figures_of_long_runs_are_replotted_from_their_csv(tmp_path):
    for name in ("curves-compact.csv", "curves-autoencoder.csv", "curves-compact-zero-padding.csv"):
        shutil.copy(FIGURES / name, tmp_path / name)
    (tmp_path / "zoo.csv").write_text("filter,model,net_mps,ref_mps\nsobel,compact,80,100\nsobel,can,5,100\n"
                                      "stylization,can,3,1.5\n")
    assert main(["--out", str(tmp_path), "--only", "curves", "speed"]) == 0
    assert is_png(tmp_path / "curves.png") and is_png(tmp_path / "speed.png")


def test_missing_inputs_are_skipped_with_the_command_that_makes_them(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--only", "sweeps", "speed"]) == 0
    out = capsys.readouterr().out
    assert "python -m src.studies.sweep size" in out and "make zoo" in out and "0 figure groups written" in out


def test_out_must_be_a_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        main(["--out", str(tmp_path / "f")])
