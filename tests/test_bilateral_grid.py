"""The bilateral-grid model (HDRNet-style): trivial answer at start, any size, slicing equal to trilinear
interpolation, tiled = whole, checkpoints and ONNX like every network, real training."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from src.errors import NonFiniteOutput, UserError
from src.inference import predict
from src.models import build_model, load_model, save_model
from src.models.bilateral_grid import GRAY, BilateralGridNet, slice_grid
from src.models.networks import check_model_config


def perturbed(out_channels: int = 3, seed: int = 0, **kwargs) -> BilateralGridNet:
    """A network away from its start (every weight moved), so tests see a non-trivial grid and guide."""
    net = BilateralGridNet(out_channels=out_channels, **kwargs).eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def test_it_starts_as_the_identity_for_colour_and_as_bt601_gray_for_one_channel():
    x = torch.rand(2, 3, 9, 11)
    with torch.no_grad():
        assert torch.allclose(BilateralGridNet(out_channels=3).eval()(x), x, atol=1e-6)
        gray = (x * torch.tensor(GRAY)[None, :, None, None]).sum(1, keepdim=True)
        assert torch.allclose(BilateralGridNet(out_channels=1).eval()(x), gray, atol=1e-6)


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (9, 1), (2, 2), (37, 61), (300, 20)])
def test_any_size_keeps_its_size(size):
    with torch.no_grad():
        assert perturbed()(torch.rand(1, 3, *size)).shape == (1, 3, *size)


def test_slicing_equals_trilinear_interpolation_with_edge_values_extended():
    """slice_grid (gathers, exportable) against torch's own 5-D grid_sample on the same coordinates."""
    torch.manual_seed(1)
    grid, guide = torch.randn(2, 12, 8, 5, 7), torch.rand(2, 1, 13, 17)
    h, w = guide.shape[-2:]
    ys = (torch.arange(h) + 0.5) / h * 2 - 1
    xs = (torch.arange(w) + 0.5) / w * 2 - 1
    coords = torch.stack([xs[None, None, :].expand(2, h, w), ys[None, :, None].expand(2, h, w), guide[:, 0] * 2 - 1], -1)
    ref = F.grid_sample(grid, coords[:, None], mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0]
    assert (slice_grid(grid, guide, (0, 0), (h, w)) - ref).abs().max() < 1e-5


@pytest.mark.parametrize("kwargs", [{"cell": 0}, {"cell": 16, "down": 4}, {"cell": 8, "down": 2}, {"width": 8}])
@pytest.mark.parametrize("tile", [1, 7, 64, 100])
def test_tiled_prediction_equals_the_whole_image(tile, kwargs):
    rgb = np.random.default_rng(0).integers(0, 256, (157, 203, 3), dtype=np.uint8)
    net = perturbed(**kwargs)
    assert np.abs(predict(net, rgb, tile=tile) - predict(net, rgb)).max() <= 1e-5


def test_checkpoint_round_trip_restores_the_outputs(tmp_path):
    net = perturbed(out_channels=1, bins=4, cell=16)
    loaded = load_model(save_model(tmp_path / "g.ckpt", net, "bilateral-grid", "sobel"))
    x = torch.rand(1, 3, 31, 45)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert isinstance(build_model("hdrnet", out_channels=3), BilateralGridNet)


@pytest.mark.parametrize("kwargs", [{"grid": 10**6}, {"low_res": 10**5}, {"bins": 0}, {"width": 1000}])
def test_a_checkpoint_asking_for_an_oversized_grid_is_refused_in_one_line(kwargs):
    with pytest.raises(UserError, match="model_kwargs"):
        check_model_config("bilateral-grid", 3, kwargs)


def test_low_res_must_be_the_grid_times_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        BilateralGridNet(grid=16, low_res=100, cell=0)
    with pytest.raises(ValueError, match="power of two"):
        BilateralGridNet(cell=24, down=4)


@pytest.mark.parametrize("size, cells", [((1, 1), (1, 1)), ((16, 17), (1, 2)), ((33, 70), (3, 5))])
def test_cells_of_a_fixed_size_make_a_grid_that_grows_with_the_image(size, cells):
    """With ``cell`` the grid has one cell per ``cell`` pixels (the image padded to whole cells), so a model
    trained on crops sees the same cell size on a whole photo of any resolution."""
    net = BilateralGridNet(cell=16, down=4)
    with torch.no_grad():
        assert net.grid_of(torch.rand(1, 3, *size)).shape[-2:] == cells
    assert net.extent(size) == (cells[0] * 16, cells[1] * 16)


@pytest.mark.parametrize("kwargs, why", [({"cell": 0, "grid": 8, "bins": 4, "low_res": 64}, "antialiased resize"),
                                         ({"cell": 8}, "one cell per 8 px")])
def test_onnx_export_is_refused_in_one_line_that_says_why(tmp_path, kwargs, why):
    """The antialiased resize has no ONNX operator in the exporter used here, and a traced graph would freeze the
    size of a grid of fixed-size cells: a clear refusal, no half file."""
    from src.inference.export import export_onnx

    with pytest.raises(UserError, match=why):
        export_onnx(perturbed(**kwargs), tmp_path / "g.onnx")
    assert not (tmp_path / "g.onnx").exists()


def test_real_training_keeps_it_at_or_above_the_trivial_answer(tmp_path):
    """A tiny Lightning run on a photographic operator: it starts at the identity (the trivial answer) and
    training must not leave it more than 0.5 dB below that."""
    from src.evaluation.evaluate import trivial_psnr
    from src.filters import get_filter
    from src.training.config import TrainConfig
    from src.training.train import train

    res = train(TrainConfig(model="bilateral-grid", model_kwargs={"bins": 4},
                            filter="detail-enhance", crop=64, max_steps=30, steps_per_epoch=10, threads=1,
                            output=str(tmp_path / "g.ckpt"), run_dir=str(tmp_path / "runs"), logger="none",
                            quiet=True))
    assert res["steps"] == 30 and np.isfinite(res["test_psnr"])
    assert res["test_psnr"] > trivial_psnr(get_filter("detail-enhance")) - 0.5
    assert predict(load_model(res["checkpoint"]), np.zeros((3, 5, 3), np.uint8)).shape == (3, 5, 3)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (8, 1), (37, 61), (200, 130)])
@pytest.mark.parametrize("out_channels, kwargs", [(1, {"cell": 0}), (3, {"cell": 0}), (3, {"cell": 16}),
                                                  (3, {"cell": 8, "width": 8, "bins": 4})])  # width 8: the generic loop
def test_the_numba_slice_equals_the_torch_forward(shape, out_channels, kwargs):
    """predict's CPU path (the stream in torch, the grid's last layer and the per-pixel slice in one numba pass)
    against net.forward."""
    from src.inference.grid_runtime import grid_runner

    net = perturbed(out_channels=out_channels, seed=2, **kwargs)
    rgb = np.random.default_rng(3).integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert grid_runner(net) is not None
    fast = predict(net, rgb)
    ref = predict(net, rgb, backend="torch")
    # 2e-5: the guide's bin coordinate is float32 noise in both (each ~2e-5 bins from a float64 guide, the order
    # of sums and the sigmoid differ), and this perturbed grid is steep across bins (measured 0.7-1.1e-5)
    assert fast.shape == ref.shape and np.abs(fast - ref).max() <= 2e-5


def test_the_torch_tiles_equal_the_whole_image_too():
    rgb = np.random.default_rng(4).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    net = perturbed()
    assert np.abs(predict(net, rgb, tile=32, backend="torch") - predict(net, rgb, backend="torch")).max() <= 1e-5


def test_the_bin_statistics_hold_each_bins_mean_colour_and_share_of_the_cell():
    """Two colours in one 8x8 cell, far apart in the guide: each lands in its own bins with its own colour."""
    net = perturbed(seed=5)
    x = torch.zeros(1, 3, 8, 8)
    x[:, :, :, :2] = torch.tensor([0.9, 0.8, 0.7])[None, :, None, None]  # a quarter of the cell, bright
    x[:, :, :, 2:] = torch.tensor([0.1, 0.2, 0.1])[None, :, None, None]
    with torch.no_grad():
        stats = net.bin_stats(x).view(4, net.bins)
    share = stats[3]
    assert float(share.sum()) == pytest.approx(1.0, abs=1e-6)
    means = (stats[:3] * share).sum(1) / share.sum()  # the cell's mean colour, from the bins
    assert torch.allclose(means, x[0].mean(dim=(1, 2)), atol=1e-5)
    with torch.no_grad():
        guide = net.guide(x).sigmoid()[0, 0]
    if abs(float(guide[0, 0] - guide[0, 7])) * net.bins > 2:  # the two colours' bins do not touch
        assert {round(float(v), 4) for v in stats[0][share > 0]} == {0.9, 0.1}


@pytest.mark.parametrize("shape", [(1, 1), (9, 8), (37, 61)])
def test_the_numba_bin_statistics_equal_the_torch_ones(shape):
    from src.kernels.grid import bin_stats
    from src.inference.grid_runtime import NO_GUIDE, guide_weights

    net = perturbed(seed=6)
    rgb = np.random.default_rng(7).integers(0, 256, (*shape, 3), dtype=np.uint8)
    eh, ew = net.extent(shape)
    out = np.empty((eh // net.cell, ew // net.cell, 4 * net.bins), np.float32)
    bin_stats(rgb, *guide_weights(net), net.cell, out, NO_GUIDE)
    with torch.no_grad():
        ref = net.bin_stats(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0].numpy()
    assert np.abs(out.transpose(2, 0, 1) - ref).max() <= 1e-5


def test_the_cpu_runtime_follows_weights_changed_in_place():
    """The runtime keeps a channels-last copy of the stream per network: an in-place change must reach it."""
    rgb = np.random.default_rng(8).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    net = perturbed(seed=9)
    before = predict(net, rgb)
    with torch.no_grad():
        net.splat[0][0].weight.mul_(-1.0)
    after = predict(net, rgb)
    assert np.abs(after - predict(net, rgb, backend="torch")).max() <= 1e-5
    assert np.abs(after - before).max() > 1e-3


@pytest.mark.parametrize("tile", [None, 48])
def test_a_grid_whose_coefficients_overflow_is_refused_before_any_pixel_is_sliced(tile, photo):
    """The numba runtime proves the output finite from the grid (a few KB) instead of scanning every pixel; a grid
    that could overflow float32 is refused as the scan would refuse its NaN."""
    net = perturbed()
    with torch.no_grad():
        net.to_grid.bias.fill_(1e38)
    with pytest.raises(NonFiniteOutput, match="grid's coefficients reach"):
        predict(net, photo, tile=tile)
    with pytest.raises(NonFiniteOutput):  # the torch twin, scanned pixel by pixel, agrees
        predict(net, photo, tile=tile, backend="torch")


def test_an_ordinary_grid_passes_the_bound_and_its_output_is_finite(photo):
    out = predict(perturbed(), photo)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
