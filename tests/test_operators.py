"""The expensive operators (issue "Expensive operators"): each is its library call, takes any size, has settable and
checked parameters, and without OpenCV's contrib modules is refused in one line."""
import cv2
import numpy as np
import pytest
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

from src.errors import UserError
from src.filters import available, get_filter
from src.filters.operators import OPERATORS

NAMES = [name for name, _ in OPERATORS]
CONTRIB = [n for n in NAMES if n not in ("tv-denoise", "nl-means")]
TINY = [(1, 1), (1, 7), (7, 1), (2, 2), (3, 3)]


def on_bgr(fn):
    """An OpenCV call on the BGR image, as RGB float in [0, 1]."""
    return lambda rgb: fn(np.ascontiguousarray(rgb[..., ::-1]))[..., ::-1] / 255.0


# The issue's table, called directly: RGB uint8 in, RGB float out.
LIBRARY = {
    "l0-smooth": on_bgr(lambda bgr: cv2.ximgproc.l0Smooth(bgr, None, 0.02, 2.0)),
    "tv-denoise": lambda rgb: denoise_tv_chambolle(rgb / 255.0, weight=0.1, channel_axis=-1),
    "nl-means": lambda rgb: denoise_nl_means(rgb / 255.0, h=0.05, fast_mode=True, channel_axis=-1),
    "rolling-guidance": on_bgr(lambda bgr: cv2.ximgproc.rollingGuidanceFilter(bgr, None, -1, 25, 3, 4)),
    "oil-painting": on_bgr(lambda bgr: cv2.xphoto.oilPainting(bgr, 7, 1)),
    "guided": on_bgr(lambda bgr: cv2.ximgproc.guidedFilter(bgr, bgr, 8, 100)),
    "anisotropic-diffusion": on_bgr(lambda bgr: cv2.ximgproc.anisotropicDiffusion(bgr, 0.1, 20, 10)),
}


@pytest.fixture(scope="module")
def small_photo(photo):
    """The astronaut, area-resized to 128 x 96: a real photo, small enough to keep this file fast."""
    return cv2.resize(photo, (128, 96), interpolation=cv2.INTER_AREA)


def test_operators_lists_each_registered_operator_in_the_issues_order_with_a_one_line_description():
    assert NAMES == ["l0-smooth", "tv-denoise", "nl-means", "rolling-guidance", "oil-painting", "guided",
                     "anisotropic-diffusion"]
    names = available()
    for name in NAMES:
        assert names[name] and "\n" not in names[name]


@pytest.mark.parametrize("name", NAMES)
def test_each_operator_equals_its_library_call(name, small_photo):
    out, expected = get_filter(name)(small_photo), LIBRARY[name](small_photo)
    assert out.shape == small_photo.shape and out.dtype == np.float32
    if name == "anisotropic-diffusion":
        # The library's multi-step call reads uninitialised memory at the border from its second step on;
        # the operator runs it one step at a time, which agrees from `iters` (10) pixels inside.
        out, expected = out[10:-10, 10:-10], expected[10:-10, 10:-10]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_every_operator_handles_tiny_images(name, rng):
    flt = get_filter(name)
    assert flt.out_channels == 3
    for size in TINY:
        out = flt(rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        assert out.shape == (*size, 3) and out.dtype == np.float32, (size, out.shape, out.dtype)
        assert np.isfinite(out).all() and 0.0 <= out.min() and out.max() <= 1.0, size


@pytest.mark.parametrize("name", NAMES)
def test_a_constant_image_of_any_size_comes_back_unchanged(name):
    flt = get_filter(name)
    for size in [*TINY, (5, 6), (12, 9)]:
        rgb = np.empty((*size, 3), np.uint8)
        rgb[:] = (200, 90, 30)
        np.testing.assert_allclose(flt(rgb), rgb / 255.0, rtol=0, atol=1e-6, err_msg=str(size))


@pytest.mark.parametrize("name,params", [
    ("l0-smooth", {"lam": 0.2}), ("tv-denoise", {"weight": 0.5}), ("nl-means", {"h": 0.2}),
    ("rolling-guidance", {"sigma_color": 80}), ("oil-painting", {"size": 2}), ("guided", {"eps": 2000}),
    ("anisotropic-diffusion", {"iters": 3}),
])
def test_operator_parameters_change_the_output(name, params, small_photo):
    default, changed = get_filter(name), get_filter(name, **params)
    assert np.abs(changed(small_photo) - default(small_photo)).mean() > 1e-3
    assert changed.key != default.key == name


def test_a_set_parameter_is_named_in_the_filter_key():
    assert get_filter("l0-smooth", lam=0.05).key == "l0-smooth(lam=0.05)"
    assert get_filter("l0-smooth", lam=0.02).key == "l0-smooth"


@pytest.mark.parametrize("name,params,message", [
    ("l0-smooth", {"lam": 0}, "lam must be a positive number, got 0"),
    ("l0-smooth", {"kappa": 1.0}, "kappa must be a number > 1, got 1.0"),
    ("tv-denoise", {"weight": -0.1}, "weight must be a positive number"),
    ("nl-means", {"h": 0}, "h must be a positive number"),
    ("rolling-guidance", {"d": 0}, r"d must be -1 \(from sigma_space\) or a positive integer, got 0"),
    ("rolling-guidance", {"iters": 0}, "iters must be an integer >= 1, got 0"),
    ("oil-painting", {"size": 2.5}, "size must be an integer >= 1, got 2.5"),
    ("oil-painting", {"dyn_ratio": 128}, "dyn_ratio must be an integer from 1 to 127, got 128"),
    ("guided", {"radius": 0}, "radius must be an integer >= 1"),
    ("guided", {"eps": 0}, "eps must be a positive number"),
    ("anisotropic-diffusion", {"alpha": 0}, "alpha must be a positive number"),
    ("anisotropic-diffusion", {"iters": True}, "iters must be an integer >= 1, got True"),
    ("l0-smooth", {"lamda": 0.1}, "unexpected keyword argument 'lamda'"),
])
def test_an_invalid_parameter_is_refused_in_one_line(name, params, message):
    with pytest.raises(UserError, match=message) as info:
        get_filter(name, **params)
    assert "\n" not in str(info.value) and name in str(info.value)


@pytest.mark.parametrize("name", CONTRIB)
def test_a_missing_contrib_build_is_refused_in_one_line(name, monkeypatch):
    monkeypatch.delattr(cv2, "ximgproc", raising=False)  # the plain opencv-python-headless build has neither
    monkeypatch.delattr(cv2, "xphoto", raising=False)
    with pytest.raises(UserError, match=f"^{name} needs OpenCV's contrib module cv2.x.*: install "
                                        "opencv-contrib-python-headless in place of opencv-python-headless$"):
        get_filter(name)


@pytest.mark.parametrize("name", ["tv-denoise", "nl-means"])
def test_the_scikit_image_operators_need_no_contrib_build(name, monkeypatch):
    monkeypatch.delattr(cv2, "ximgproc", raising=False)
    monkeypatch.delattr(cv2, "xphoto", raising=False)
    assert get_filter(name)(np.zeros((2, 3, 3), np.uint8)).shape == (2, 3, 3)
