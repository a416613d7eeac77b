"""The Sobel target: OpenCV reference and torch twin agree everywhere, borders included."""
import numpy as np
import pytest
import torch

from src.errors import UserError
from src.filters import available, get_filter, sobel_kernels, sobel_magnitude, sobel_magnitude_cv
from src.filters.functional import max_gradient_magnitude, pad_reflect101

ODD_SIZES = [(1, 1), (1, 9), (2, 3), (5, 5), (17, 31), (301, 457)]
PARAMS = [{}, {"blur": False}, {"ksize": 5}, {"ksize": 1}, {"blur_ksize": 5}, {"normalize": "max"}]


def torch_target(rgb: np.ndarray, **params) -> np.ndarray:
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    return sobel_magnitude(x, **params)[0, 0].numpy()


@pytest.mark.parametrize("shape", ODD_SIZES)
@pytest.mark.parametrize("params", PARAMS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "default")
def test_torch_matches_opencv_on_random_images(shape, params, rng):
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    diff = np.abs(torch_target(rgb, **params) - sobel_magnitude_cv(rgb, **params))
    assert diff.max() <= 1e-5


def test_torch_matches_opencv_on_a_real_photo_border_rows_included(photo):
    ref = sobel_magnitude_cv(photo)
    out = torch_target(photo)
    assert np.abs(out - ref).max() <= 1e-5
    for edge in (out[0], out[-1], out[:, 0], out[:, -1]):  # the border rule is part of the target
        assert edge.max() > 0


def test_torch_version_is_batched():
    x = torch.rand(3, 3, 11, 13)
    out = sobel_magnitude(x)
    assert out.shape == (3, 1, 11, 13)
    single = torch.cat([sobel_magnitude(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(out, single, atol=1e-6)


def test_default_pipeline_is_gray_blur_sobel_magnitude_clip(photo):
    import cv2

    img = photo.astype(np.float32) / 255
    gray = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
    blurred = cv2.sepFilter2D(gray, cv2.CV_32F, np.array([0.25, 0.5, 0.25]), np.array([0.25, 0.5, 0.25]))
    gx = cv2.filter2D(blurred, cv2.CV_32F, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32))
    gy = cv2.filter2D(blurred, cv2.CV_32F, np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float32))
    expected = np.clip(np.sqrt(gx**2 + gy**2), 0, 1)
    assert np.abs(get_filter("sobel")(photo) - expected).max() <= 1e-5


def test_output_is_float32_in_unit_range(photo):
    out = get_filter("sobel")(photo)
    assert out.dtype == np.float32 and out.shape == photo.shape[:2]
    assert out.min() >= 0 and out.max() <= 1
    assert (out == 1).any(), "strong edges clip at 1 with the default normalisation"


def test_max_normalisation_never_clips_and_reaches_its_bound(rng):
    kx, ky = sobel_kernels(3, blur=False)
    bound = max_gradient_magnitude(kx, ky)
    # the magnitude is convex, so its maximum over [0, 1]^9 is at one of the 512 binary patterns
    patterns = ((np.arange(512)[:, None] >> np.arange(9)) & 1).astype(np.float64)
    mags = np.sqrt((patterns @ kx.ravel()) ** 2 + (patterns @ ky.ravel()) ** 2)
    assert bound == pytest.approx(mags.max(), abs=1e-12)
    assert bound == pytest.approx(np.sqrt(20))
    rgb = (rng.integers(0, 2, (64, 64, 3)) * 255).astype(np.uint8)
    out = get_filter("sobel", normalize="max")(rgb)
    assert out.max() < 1.0


def test_reflect101_padding_handles_sizes_smaller_than_the_pad():
    x = torch.arange(3.0).view(1, 1, 1, 3)
    assert pad_reflect101(x, 0, 2)[0, 0, 0].tolist() == [2, 1, 0, 1, 2, 1, 0]
    assert pad_reflect101(torch.ones(1, 1, 1, 1), 2).shape == (1, 1, 5, 5)


def test_registry_lists_sobel_and_rejects_unknown_names():
    assert "sobel" in available()
    with pytest.raises(UserError, match="unknown filter 'sobl'; available: .*sobel"):
        get_filter("sobl")


@pytest.mark.parametrize("params, message", [({"ksize": 4}, "ksize"), ({"normalize": "l2"}, "normalize"),
                                             ({"blur_ksize": 2}, "blur_ksize"), ({"sigma": 1}, "sigma")])
def test_bad_filter_parameters_are_named(params, message):
    with pytest.raises(UserError, match=message):
        get_filter("sobel", **params)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 4), np.uint8), r"shape \(H, W, 3\)"),
    (np.zeros((4, 4, 4), np.uint8), r"shape \(H, W, 3\)"),
    (np.zeros((4, 4, 3), np.float32), "dtype uint8"),
    (np.zeros((0, 4, 3), np.uint8), ">= 1"),
])
def test_filter_input_is_checked(bad, message):
    with pytest.raises(UserError, match=message):
        get_filter("sobel")(bad)


def test_filter_key_names_its_parameters():
    assert get_filter("sobel").key == "sobel"
    assert get_filter("sobel", ksize=5).key == "sobel(ksize=5)"
