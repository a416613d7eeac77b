"""The size and depth sweeps: their run lists, the 45 dB pick, the outputs, and one real tiny run."""
import pytest

from src.errors import UserError
from src.studies.sweep import depth_runs, main, markdown, size_runs, smallest_reaching, write_outputs
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


def test_size_sweep_covers_three_families_and_depth_sweep_two_filters_at_five_depths():
    assert {m for _, _, m, _, _ in size_runs()} == {"compact", "can", "autoencoder"}
    runs = depth_runs()
    assert len(runs) == 10 and {f for f, *_ in runs} == {"sobel", "edge-preserving"}
    assert [a["depth"] for _, _, _, a, _ in runs[:5]] == [3, 4, 5, 6, 7]
    assert "RF 65" in runs[4][-1]


def test_outputs_are_written_and_read_back(tmp_path):
    write_outputs("size", rows(), "45 optimiser steps", tmp_path)
    assert (tmp_path / "sweep-size.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "sweep-size.md").read_text()
    assert "| sobel | compact k5 | 55 | 58.00 |" in md and "compact k5, 55 parameters, 58.00 dB" in md
    back = read_csv(tmp_path / "sweep-size.csv")
    assert back[2]["params"] == 2075 and back[2]["psnr"] == 47.0 and back[2]["receptive_field"] == 17
    write_outputs("depth", [r for r in rows() if "receptive_field" in r], 60, tmp_path)
    assert (tmp_path / "sweep-depth.png").exists()


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
    with pytest.raises(UserError, match="no depth runs on gaussian"):
        main(["depth", "--filters", "gaussian", "--figures", str(tmp_path)])


def test_runs_are_picked_by_label_and_unknown_labels_are_refused(tmp_path):
    assert "compact k5, separable" in [label for *_, label in size_runs()]
    with pytest.raises(UserError, match="no size run is labelled 'compact k9'"):
        main(["size", "--only", "compact k9", "--figures", str(tmp_path)])


def test_depth_at_equal_steps_covers_two_non_local_filters_at_five_depths_without_early_stop():
    from src.studies.sweep import DEPTH_STEPS, DEPTH_STEPS_TRAIN, runs_for

    runs = runs_for("depth-steps")
    assert len(runs) == 10 and {f for f, *_ in runs} == {"edge-preserving", "detail-enhance"}
    assert DEPTH_STEPS >= 3 * 600 and DEPTH_STEPS_TRAIN["patience"] >= DEPTH_STEPS  # every run takes every step


def test_depth_steps_table_gives_mean_sd_over_seeds_and_the_second_half_gain(tmp_path):
    seeded = [{"filter": "edge-preserving", "model": "can", "label": "depth 5 (RF 17)", "params": 2075, "psnr": p,
               "ssim": 0.9, "net_mps": 1.5, "receptive_field": 17, "seed": s, "steps": 2000, "val_gain_2nd_half": g}
              for s, (p, g) in enumerate(((32.0, 0.1), (34.0, 0.3)))]
    write_outputs("depth-steps", seeded, "2000 optimiser steps", tmp_path)
    md = (tmp_path / "sweep-depth-steps.md").read_text()
    assert "| edge-preserving | depth 5 (RF 17) | 2075 | 2 | 33.00 ± 1.41 | 0.900 ± 0.000 | 2000 | 0.20 ± 0.14 |" in md
    assert (tmp_path / "sweep-depth-steps.png").read_bytes()[:4] == b"\x89PNG"


def test_one_real_depth_steps_run_per_seed_records_the_plateau_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["depth-steps", "--limit", "1", "--steps", "40", "--seeds", "0", "1", "--repeats", "1",
                 "--figures", str(tmp_path / "fig")]) == 0
    back = read_csv(tmp_path / "fig" / "sweep-depth-steps.csv")
    assert [r["seed"] for r in back] == [0, 1] and all(r["steps"] == 40 for r in back)
    assert all(r["val_gain_2nd_half"] >= 0 for r in back) and back[0]["psnr"] != back[1]["psnr"]
    assert (tmp_path / "models" / "zoo" / "can-width8-depth3-seed1-edge-preserving.ckpt").exists()


def test_a_size_or_depth_sweep_over_seeds_gives_mean_sd_per_network():
    rows = [{"filter": "sobel", "label": "CAN 4x3", "model": "can", "params": 285, "psnr": p, "ssim": 0.5,
             "steps": 600, "net_mps": 8.0, "seed": s} for s, p in enumerate((12.0, 13.0, 14.0))]
    table = markdown("size", rows, "600 optimiser steps")
    assert "| sobel | CAN 4x3 | 285 | 3 | 13.00 ± 1.00 | 0.500 ± 0.000 | 600 |" in table
    assert "the zoo's recipe" in table and "no early stop" not in table and "val gain" not in table
    assert "| sobel | CAN 4x3 | 285 | 12.00 |" in markdown("size", rows[:1], "600 optimiser steps")  # one seed: per run
