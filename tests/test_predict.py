"""Native-resolution inference: any size in, same size out; tiled equals whole."""
import numpy as np
import pytest
import torch

from src.errors import UserError
from src.filters import get_filter
from src.inference.runtime import compiled_copy
from src.models import CompactNet, SeedAutoencoder, exact_sobel_net
from src.models.can import ContextAggregationNet
from src.testing import predict


def trained_like(net):
    """Randomised non-trivial weights (BatchNorm statistics included), in eval mode."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


NETS = {
    "compact": lambda: trained_like(CompactNet()),
    "compact-rgb-hidden": lambda: trained_like(CompactNet(mix=0, pairs=2, linear=1, hidden=4)),
    "compact-zero-padding": lambda: trained_like(CompactNet(padding="zeros")),
    "autoencoder": lambda: trained_like(SeedAutoencoder()),
}


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (3, 2), (4, 4), (301, 457)])
def test_predict_keeps_odd_sizes(name, shape, rng):
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    out = predict(NETS[name](), rgb)
    assert out.shape == shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("tile", [16, 50, 128])
def test_tiled_prediction_equals_whole_image(name, tile, photo):
    net = NETS[name]()
    whole = predict(net, photo)
    tiled = predict(net, photo, tile=tile)
    assert np.abs(whole - tiled).max() <= 1e-5


@pytest.mark.parametrize("name", ["compact", "compact-rgb-hidden", "compact-zero-padding"])
def test_opencv_backend_equals_torch(name, photo):
    net = NETS[name]()
    assert np.abs(predict(net, photo, backend="opencv") - predict(net, photo, backend="torch")).max() <= 1e-5


def test_exact_net_prediction_equals_the_reference(photo):
    assert np.abs(predict(exact_sobel_net(), photo) - get_filter("sobel")(photo)).max() <= 1e-5


def test_multichannel_networks_return_hwc(photo):
    out = predict(CompactNet(out_channels=3, pairs=2).eval(), photo[:20, :30])
    assert out.shape == (20, 30, 3)


def test_gray_input_is_accepted(photo):
    assert predict(exact_sobel_net(), photo[..., 0]).shape == photo.shape[:2]


@pytest.mark.parametrize("bad, message", [(np.zeros((0, 5, 3), np.uint8), "H, W >= 1"), (np.zeros((4, 4, 7), np.uint8), "channels")])
def test_bad_arrays_are_refused(bad, message):
    with pytest.raises(UserError, match=message):
        predict(exact_sobel_net(), bad)


def test_bad_tile_and_backend_are_refused(photo):
    with pytest.raises(UserError, match="tile"):
        predict(exact_sobel_net(), photo, tile=0)
    with pytest.raises(UserError, match="opencv backend runs CompactNet"):
        predict(SeedAutoencoder().eval(), photo, backend="opencv")


def test_the_readme_import_of_predict_is_callable_in_a_fresh_process_before_and_after_the_module_loads():
    import subprocess
    import sys

    code = ("import numpy as np; from src.inference import predict as a; import src.inference.predict; "
            "from src.inference import predict as b; from src.inference.predict import predict as c; "
            "from src.models import exact_sobel_net; net, rgb = exact_sobel_net(), np.zeros((3, 4, 3), np.uint8); "
            "print(a(net, rgb).shape, b(net, rgb).shape, c(net, rgb).shape)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "(3, 4) (3, 4) (3, 4)", res.stderr


def test_a_compiled_network_predicts_what_the_eager_one_does_at_any_size(rng):
    """``predict(..., compiled=True)`` (``--compile``): one dynamic-size compilation, kept until the net changes."""
    torch.manual_seed(0)
    net = ContextAggregationNet(width=4, depth=3).eval()
    for shape in [(37, 53), (64, 70)]:
        rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        assert np.abs(predict(net, rgb, compiled=True) - predict(net, rgb)).max() <= 1e-5
    first = compiled_copy(net)
    assert compiled_copy(net) is first  # kept: the compilation is paid once
    with torch.no_grad():
        net.head.weight.add_(0.1)
    assert compiled_copy(net) is not first


def _grid(out_channels):
    from tests.test_bilateral_grid import perturbed  # the grid tests' non-trivial network
    return perturbed(out_channels)


OUT_NETS = {**NETS, "compact-3-out": lambda: CompactNet(out_channels=3, pairs=2).eval(),
            "grid": lambda: _grid(3), "grid-gray": lambda: _grid(1)}


@pytest.mark.parametrize("name", OUT_NETS)
@pytest.mark.parametrize("tile", [None, 40])
def test_predict_into_out_returns_out_holding_the_same_result(name, tile, photo):
    net = OUT_NETS[name]()
    expected = predict(net, photo, tile=tile)
    out = np.full(expected.shape, np.nan, np.float32)
    assert predict(net, photo, tile=tile, out=out) is out
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("name", ["compact", "grid", "grid-gray"])
def test_the_fused_runtimes_write_into_out_without_allocating_an_output(name, rng):
    import tracemalloc  # numpy reports its allocations to tracemalloc: a fresh output shows in the peak

    net, rgb = OUT_NETS[name](), rng.integers(0, 256, (600, 500, 3), dtype=np.uint8)
    out = predict(net, rgb)

    def peak(**kwargs) -> int:
        tracemalloc.start()
        try:
            predict(net, rgb, **kwargs)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert peak() >= out.nbytes  # what the test would see if out= were ignored
    assert peak(out=out) < out.nbytes / 2  # what is left: the grid's cell features (a 64th of the pixels x 16)


@pytest.mark.parametrize("bad, message", [
    (lambda s: np.empty(s[:2], np.float64), "float32"), (lambda s: np.empty((s[0], s[1] + 1), np.float32), "shape"),
    (lambda s: np.empty(s[:2][::-1], np.float32).T, "C-contiguous"), (lambda s: [[0.0]], "list"),
    (lambda s: np.empty((*s[:2], 3), np.float32), r"the result is \(\d+, \d+\)")])
def test_a_wrong_out_is_refused_in_one_line(bad, message, photo):
    with pytest.raises(UserError, match=message):
        predict(exact_sobel_net(), photo, out=bad(photo.shape))
