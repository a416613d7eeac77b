"""The operator zoo, the random filters and user filters: every one is a well-behaved target."""
import numpy as np
import pytest
import torch

from src.errors import UserError
from src.filters import available, get_filter, user_filter
from src.filters.random_filters import random_chain, random_kernel

ZOO = ["sobel", "scharr", "laplacian", "canny", "gaussian", "box", "median", "bilateral", "unsharp", "emboss",
       "stylization", "detail-enhance", "edge-preserving", "pencil-sketch", "random", "random-nonlinear"]
COLOUR = {"gaussian", "box", "median", "bilateral", "unsharp", "stylization", "detail-enhance", "edge-preserving"}
ODD_SIZES = [(1, 1), (2, 3), (5, 5), (17, 31)]


def images(rng, photo):
    yield from (rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in ODD_SIZES)
    yield np.ascontiguousarray(photo[:121, :97])  # a real photo, odd size


def torch_target(flt, rgb):
    out = flt.torch(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0].numpy()
    return out[0] if out.shape[0] == 1 else out.transpose(1, 2, 0)


def test_available_lists_the_whole_zoo_with_one_line_descriptions():
    names = available()
    for name in ZOO + ["pairs"]:
        assert name in names and names[name] and "\n" not in names[name]


@pytest.mark.parametrize("name", ZOO)
def test_filter_gives_float32_in_unit_range_of_the_input_size_and_is_deterministic(name, rng, photo):
    flt = get_filter(name)
    assert flt.out_channels == (3 if name in COLOUR else 1)
    for rgb in images(rng, photo):
        out = flt(rgb)
        expected = rgb.shape[:2] if flt.out_channels == 1 else rgb.shape
        assert out.shape == expected and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
        # OpenCV's float SIMD paths depend on buffer alignment: repeat calls agree to the last bit or so.
        np.testing.assert_allclose(flt(rgb.copy()), out, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in ZOO if get_filter(n).torch_fn is not None])
def test_torch_twin_matches_opencv(name, rng, photo):
    flt = get_filter(name)
    for rgb in images(rng, photo):
        assert np.abs(torch_target(flt, rgb) - flt(rgb)).max() <= 1e-5


def test_photo_operators_keep_rgb_order(photo):
    rgb = np.ascontiguousarray(photo[:64, :64])
    rgb[..., 1:] = 0  # pure red in, red out
    for name in ("stylization", "edge-preserving", "detail-enhance"):
        out = get_filter(name)(rgb)
        assert out[..., 0].mean() > 4 * max(out[..., 1].mean(), out[..., 2].mean())


def test_unknown_filter_lists_the_available_ones():
    with pytest.raises(UserError, match="unknown filter 'sobelx'; available: .*stylization"):
        get_filter("sobelx")


@pytest.mark.parametrize("name,params,message", [
    ("gaussian", {"ksize": 4}, "odd"), ("laplacian", {"ksize": 5}, "1 or 3"), ("median", {"ksize": 1}, "odd"),
    ("random", {"size": 4}, "3 or 5"), ("random", {"seed": -1}, "non-negative"), ("canny", {"low": 300}, "low <= high"),
    ("stylization", {"sigma_s": 0}, "positive"), ("box", {"width": 3}, "unexpected keyword"),
])
def test_bad_parameters_are_refused_with_a_reason(name, params, message):
    with pytest.raises(UserError, match=message):
        get_filter(name, **params)


def test_random_filter_same_seed_same_filter_different_seed_different_filter(photo):
    a, b, c = get_filter("random", seed=7), get_filter("random", seed=7), get_filter("random", seed=8)
    assert np.array_equal(a.extra["kernel"], b.extra["kernel"])
    np.testing.assert_allclose(a(photo), b(photo), rtol=0, atol=1e-6)
    assert not np.array_equal(a.extra["kernel"], c.extra["kernel"])
    assert np.abs(a(photo) - c(photo)).max() > 0.05
    assert get_filter("random", seed=7, size=5).extra["kernel"].shape == (5, 5)


def test_random_kernel_is_the_same_on_every_machine():
    # Integer draws from PCG64: numpy keeps this stream fixed across platforms and versions.
    np.testing.assert_array_equal(random_kernel(1, 3), [[-0.05, 0.02, 0.51], [0.91, -0.93, -0.72], [0.65, 0.9, -0.5]])


def test_random_filter_scaling_maps_its_extreme_inputs_to_exactly_0_and_1():
    k = random_kernel(3, 5)
    flt = get_filter("random", seed=3, size=5)
    brightest = np.zeros((5, 5, 3), np.uint8)
    brightest[k > 0] = 255  # gray 1 under every positive weight, 0 under every negative one
    assert flt(brightest)[2, 2] == pytest.approx(1.0, abs=1e-6)
    assert flt(255 - brightest)[2, 2] == pytest.approx(0.0, abs=1e-6)


def test_random_nonlinear_chains_two_or_three_operators_reproducibly(photo):
    chains = [random_chain(s) for s in range(20)]
    assert all(2 <= len(c) <= 3 for c in chains)
    assert len({str(c) for c in chains}) > 10
    a, b = get_filter("random-nonlinear", seed=5), get_filter("random-nonlinear", seed=5)
    assert a.extra["chain"] == b.extra["chain"]
    np.testing.assert_allclose(a(photo), b(photo), rtol=0, atol=1e-6)
    assert " -> " in a.description


@user_filter("test-posterize", "four levels per channel")
def posterize(rgb, levels=4):
    step = 256 // levels
    return (rgb // step) * step


def test_decorated_callable_is_a_filter_with_params():
    assert available()["test-posterize"] == "four levels per channel"
    flt = get_filter("test-posterize", levels=2)
    out = flt(np.full((3, 5, 3), 200, np.uint8))
    assert flt.out_channels == 3 and out.dtype == np.float32 and np.allclose(out, 128 / 255)


def test_module_function_spec_imports_and_registers_the_callable(tmp_path, monkeypatch):
    (tmp_path / "my_filters_for_test.py").write_text(
        "import numpy as np\ndef invert_gray(rgb):\n    return 1.0 - rgb.mean(axis=2) / 255.0\n")
    monkeypatch.chdir(tmp_path)
    flt = get_filter("my_filters_for_test:invert_gray")
    assert flt.out_channels == 1 and flt(np.zeros((4, 3, 3), np.uint8)).tolist() == np.ones((4, 3)).tolist()


@pytest.mark.parametrize("case,body,message", [
    (1, "return rgb[:2]", r"returned shape \(2, 17, 3\)"),
    (2, "return rgb.astype(np.int32)", "returned dtype int32"),
    (3, "return rgb.astype(np.float32)", r"returned values in \[0, 240\]; expected float values in \[0, 1\]"),
    (4, "return [1, 2]", "returned list"),
    (5, "raise RuntimeError('boom')", "raised RuntimeError: boom"),
])
def test_user_callable_with_a_bad_output_is_reported_with_what_it_returned(case, body, message, tmp_path, monkeypatch):
    (tmp_path / f"bad_filter_{case}.py").write_text(f"import numpy as np\ndef f(rgb):\n    {body}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=message):
        get_filter(f"bad_filter_{case}:f")


def test_bad_module_function_specs_are_one_line_errors():
    with pytest.raises(UserError, match="cannot import module"):
        get_filter("no_such_module_xyz:f")
    with pytest.raises(UserError, match="no callable 'nope'"):
        get_filter("src.filters.zoo:nope")
