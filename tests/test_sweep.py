"""The size sweep: its run list, the 45 dB pick, the outputs, and one real tiny run (question 7's depth study on
photographs: tests/test_depth_study.py)."""
import pytest

from src.errors import UserError
from src.studies.sweep import main, markdown, size_runs, smallest_reaching, write_outputs
from src.io.tables import read_csv


def rows():
    return [
        {"filter": "sobel", "model": "compact", "label": "compact k3", "params": 23, "psnr": 38.0, "ssim": 0.99, "net_mps": 90.0},
        {"filter": "sobel", "model": "compact", "label": "compact k5", "params": 55, "psnr": 58.0, "ssim": 0.999, "net_mps": 80.0},
        {"filter": "sobel", "model": "can", "label": "CAN 8x5", "params": 2075, "psnr": 47.0, "ssim": 0.998, "net_mps": 5.0,
         "receptive_field": 17},
    ]


def test_smallest_model_reaching_the_target_is_the_fewest_parameters_above_it():
    assert smallest_reaching(rows())["label"] == "compact k5"
    assert smallest_reaching(rows(), target=60.0) is None


def test_size_sweep_covers_three_families():
    assert {m for _, _, m, _, _ in size_runs()} == {"compact", "can", "autoencoder"}


def test_outputs_are_written_and_read_back(tmp_path):
    write_outputs("size", rows(), "45 optimiser steps", tmp_path)
    assert (tmp_path / "sweep-size.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "sweep-size.md").read_text()
    assert "| sobel | compact k5 | 55 | 58.00 |" in md and "compact k5, 55 parameters, 58.00 dB" in md
    back = read_csv(tmp_path / "sweep-size.csv")
    assert back[2]["params"] == 2075 and back[2]["psnr"] == 47.0 and back[2]["receptive_field"] == 17


def test_budget_must_be_positive_and_figures_a_folder(tmp_path):
    with pytest.raises(UserError, match="--steps must be at least 1"):
        main(["size", "--steps", "0"])
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        main(["size", "--figures", str(tmp_path / "f")])


def test_one_real_sweep_run_trains_and_measures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # checkpoints go to ./models/zoo
    assert main(["size", "--limit", "1", "--steps", "130", "--repeats", "1", "--figures", str(tmp_path / "fig")]) == 0
    (row,) = read_csv(tmp_path / "fig" / "sweep-size.csv")
    assert row["label"] == "compact k3" and row["params"] == 23 and row["psnr"] > 15.0
    assert (tmp_path / "models" / "zoo" / "compact-kernel_size3-sobel.ckpt").exists()


def test_shards_merge_into_one_sweep_and_unknown_filters_are_refused(tmp_path):
    (a, b) = [r for r in rows() if r["model"] == "compact"]
    write_outputs("size", [a], "45 optimiser steps", tmp_path, "shard-a")
    write_outputs("size", [b], "45 optimiser steps", tmp_path, "shard-b")
    assert main(["size", "--merge", str(tmp_path / "shard-a.csv"), str(tmp_path / "shard-b.csv"),
                 "--figures", str(tmp_path)]) == 0
    assert [r["label"] for r in read_csv(tmp_path / "sweep-size.csv")] == ["compact k3", "compact k5"]
    assert (tmp_path / "sweep-size.png").exists()
    with pytest.raises(UserError, match="no size runs on gaussian"):
        main(["size", "--filters", "gaussian", "--figures", str(tmp_path)])


def test_runs_are_picked_by_label_and_unknown_labels_are_refused(tmp_path):
    assert "compact k5, separable" in [label for *_, label in size_runs()]
    with pytest.raises(UserError, match="no size run is labelled 'compact k9'"):
        main(["size", "--only", "compact k9", "--figures", str(tmp_path)])


def test_a_size_sweep_over_seeds_gives_mean_sd_per_network():
    rows = [{"filter": "sobel", "label": "CAN 4x3", "model": "can", "params": 285, "psnr": p, "ssim": 0.5,
             "steps": 600, "net_mps": 8.0, "seed": s} for s, p in enumerate((12.0, 13.0, 14.0))]
    table = markdown("size", rows, "600 optimiser steps")
    assert "| sobel | CAN 4x3 | 285 | 3 | 13.00 ± 1.00 | 0.500 ± 0.000 | 600 |" in table
    assert "the zoo's recipe" in table
    assert "| sobel | CAN 4x3 | 285 | 12.00 |" in markdown("size", rows[:1], "600 optimiser steps")  # one seed: per run
