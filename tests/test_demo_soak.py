"""The demo's memory soak (``python -m src.demo.soak``): the real server, driven through /teach and /predict."""
import argparse

import pytest

from src.demo import soak

pytestmark = pytest.mark.slow


def test_the_soak_drives_the_real_server_and_reports_its_memory_after_each_job():
    result = soak.soak(jobs=2, predictions=3, steps=5, model="compact", megapixels=0.02)
    assert len(result["rss"]) == 2 and all(r > 100 * 2**20 for r in result["rss"])  # a real server: > 100 MB
    args = argparse.Namespace(jobs=2, predictions=3, steps=5, model="compact", mp=0.02)
    text = soak.report(args, result)
    assert "growth from the first job to the end" in text and "goal <= 300 MB" in text


def test_bad_soak_arguments_are_one_line():
    from src.errors import UserError

    with pytest.raises(UserError, match="--jobs and --steps must be >= 1"):
        soak.main(["--jobs", "0"])
