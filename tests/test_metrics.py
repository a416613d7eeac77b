"""Metrics: data range 1, native resolution, borders included."""
import numpy as np
import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from src.evaluation import metrics
from src.evaluation.metrics import border_mask, image_metrics, psnr, ssim


def test_psnr_of_a_known_error():
    assert psnr(np.zeros((8, 8)), np.full((8, 8), 0.01)) == pytest.approx(40.0)
    assert psnr(np.ones((3, 3)), np.ones((3, 3))) == metrics.PSNR_CAP


def test_ssim_in_strips_equals_one_whole_image_call(photo, monkeypatch, rng):
    target = photo[..., 1] / 255.0
    pred = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1)
    whole = float(structural_similarity_index_measure(torch.tensor(pred[None, None], dtype=torch.float64),
                                                      torch.tensor(target[None, None], dtype=torch.float64), data_range=1.0))
    monkeypatch.setattr(metrics, "SSIM_STRIP_PIXELS", 40 * photo.shape[1])  # 8 strips
    assert ssim(pred, target) == pytest.approx(whole, abs=1e-9)


def test_border_ring_and_interior_split_the_image():
    m = border_mask((20, 30), ring=4)
    assert m.sum() == 20 * 30 - 12 * 22
    target = np.zeros((20, 30))
    pred = np.where(m, 0.1, 0.0)  # errors only on the frame
    r = image_metrics(pred, target)
    assert r["border_psnr"] == pytest.approx(20.0) and r["interior_psnr"] == metrics.PSNR_CAP
    assert r["psnr"] < r["interior_psnr"]


def test_zero_prediction_psnr_is_reported(photo):
    target = photo[..., 0] / 255.0
    assert image_metrics(target, target)["zero_psnr"] == pytest.approx(psnr(np.zeros_like(target), target))


def test_psnr_by_size_evaluates_each_size_at_native_resolution(photo):
    from src.dataset import NamedImage
    from src.filters import get_filter
    from src.models import exact_sobel_net
    from src.studies.sizes import psnr_by_size

    rows = psnr_by_size(exact_sobel_net(), get_filter("sobel"), [NamedImage("a", photo)], sizes=((7, 5), (64, 33)))
    assert [r["size"] for r in rows] == ["7x5", "64x33"]
    assert all(r["psnr"] > 99 and r["zero_psnr"] < 30 for r in rows)  # the exact net is exact at any size


def test_edge_sharpness_is_below_one_for_a_blur_and_above_for_added_checkerboard(photo):
    import cv2

    from src.filters import get_filter
    from src.evaluation.metrics import edge_sharpness

    target = get_filter("sobel")(photo)
    assert edge_sharpness(target, target) == pytest.approx(1.0)
    assert edge_sharpness(cv2.GaussianBlur(target, (0, 0), 2.0), target) < 0.7
    checker = (np.indices(target.shape).sum(0) % 2).astype(np.float32)
    assert edge_sharpness(np.clip(target + 0.1 * checker, 0, 1), target) > 1.5


def test_eight_bit_errors_count_what_a_saved_picture_shows():
    from src.evaluation.metrics import eight_bit_errors

    target = (np.arange(256, dtype=np.float32) / 255).reshape(16, 16)
    pred = target.copy()
    pred[:8] += 0.4 / 255  # rounds back to the same 8-bit value
    pred[8:12] -= 0.6 / 255  # 64 values one level lower
    worst, changed = eight_bit_errors(pred, target)
    assert worst == pytest.approx(0.6, abs=1e-4) and changed == pytest.approx(64 / 256)
    assert image_metrics(pred, target)["changed_8bit"] == changed
    assert all(np.isnan(eight_bit_errors(np.full((2, 2), np.nan, np.float32), np.zeros((2, 2), np.float32))))
