"""The GAN ablation (src.studies.ablation_gan): its arms differ only in the generator's loss."""
import csv

import pytest
import torch

from src.studies.ablation_gan import ARMS, LOSS_KEYS, lightning_checkpoint, main

TINY = ["--crop", "32", "--ngf", "4", "--batch-size", "2", "--batches", "2", "--seeds", "0"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ablation")
    assert main([*TINY, "--arms", *ARMS, "--work", str(tmp / "work"), "--out", str(tmp / "figures")]) == 0
    return tmp


def recorded_settings(work, arm: str) -> dict:
    """What the run's Lightning checkpoint recorded: the module's hyper-parameters and the run's settings."""
    blob = torch.load(lightning_checkpoint(work, arm, 0), map_location="cpu", weights_only=True)
    return {**{f"hparam {k}": v for k, v in blob["hyper_parameters"].items()},
            **{f"run {k}": v for k, v in blob["run_config"].items()}}


def differing(a: dict, b: dict) -> set[str]:
    return {k.split(" ", 1)[1] for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def test_l1_and_gan_arms_record_settings_that_differ_only_in_the_gan_weight(study):
    l1, gan = (recorded_settings(study / "work", arm) for arm in ("l1", "gan"))
    assert l1["hparam beta1"] == gan["hparam beta1"] == 0.5 and l1["hparam lr"] == gan["hparam lr"]
    assert differing(l1, gan) == {"gan_weight"}


def test_every_pair_of_arms_differs_only_in_the_loss_weights(study):
    settings = {arm: recorded_settings(study / "work", arm) for arm in ARMS}
    for a in ARMS:
        for b in ARMS:
            assert differing(settings[a], settings[b]) <= set(LOSS_KEYS), (a, b)


def test_the_study_writes_a_row_per_run_and_a_mean_sd_table_with_the_zero_baseline(study):
    rows = list(csv.DictReader(open(study / "figures" / "ablation-gan.csv")))
    assert [r["arm"] for r in rows] == list(ARMS)
    for r in rows:
        assert float(r["psnr"]) > 0 and float(r["sharpness"]) >= 0 and int(r["steps"]) == 4  # D + G per batch
        assert 0 < float(r["gradient_psnr"]) < 100
    table = (study / "figures" / "ablation-gan.md").read_text()
    assert "| l1 | 100·L1 only | 1 |" in table and "zero PSNR" in table
    assert (study / "figures" / "ablation-gan.png").stat().st_size > 0


def test_an_unknown_arm_is_refused_in_one_line(tmp_path):
    from .conftest import run_module

    res = run_module("src.studies.ablation_gan", "--arms", "wgan", "--work", str(tmp_path), "--out", str(tmp_path))
    assert res.returncode == 2 and res.stderr.strip() == "error: unknown arm 'wgan'; available: l1, gan, gan-l10"
