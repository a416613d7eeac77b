"""Guided upsampling (the deep guided filter): a CAN at low resolution, a colour guided filter's affine maps applied
at full resolution on the bilateral grid's slice."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from src.errors import UserError
from src.inference.grid_runtime import grid_runner
from src.models import build_model, load_model
from src.models.checkpoint import save_model
from src.models.guided import GuidedUpsamplingNet, guided_fit
from src.models.networks import check_model_config
from src.testing import predict


def perturbed(out_channels: int = 3, seed: int = 0, **kwargs) -> GuidedUpsamplingNet:
    """A network away from its start (every weight moved), so the tests see a non-trivial low-resolution output."""
    net = GuidedUpsamplingNet(out_channels=out_channels, **kwargs).eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.low.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def test_the_fit_recovers_an_affine_colour_map_exactly():
    """A target that is one affine map of the guide everywhere: the guided filter returns that map (eps ~ 0)."""
    torch.manual_seed(0)
    guide = torch.rand(2, 3, 20, 24)
    M, v = torch.randn(2, 3), torch.randn(2)
    target = torch.einsum("ci,bihw->bchw", M, guide) + v[None, :, None, None]
    coeffs = guided_fit(guide.double(), target.double(), 2, torch.tensor(1e-12, dtype=torch.float64))
    assert coeffs.shape == (2, 2, 4, 20, 24)
    assert torch.allclose(coeffs[:, :, :3], M[None, :, :, None, None].double().expand_as(coeffs[:, :, :3]), atol=1e-6)
    assert torch.allclose(coeffs[:, :, 3], v[None, :, None, None].double().expand_as(coeffs[:, :, 3]), atol=1e-6)


def test_a_colour_network_starts_near_the_identity_on_a_smooth_image_and_a_gray_one_at_zeros():
    smooth = F.interpolate(torch.rand(1, 3, 6, 8), size=(48, 64), mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert (GuidedUpsamplingNet(out_channels=3).eval()(smooth) - smooth).abs().max() < 0.05
        assert GuidedUpsamplingNet(out_channels=1).eval()(smooth).abs().max() == 0


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (8, 1), (37, 61), (200, 130)])
@pytest.mark.parametrize("out_channels, kwargs", [(3, {}), (1, {}), (3, {"scale": 8, "radius": 2}), (3, {"scale": 1})])
def test_the_numba_slice_equals_the_torch_forward_and_tiles_equal_the_whole(shape, out_channels, kwargs):
    net = perturbed(out_channels, seed=1, **kwargs)
    rgb = np.random.default_rng(2).integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert grid_runner(net) is not None
    fast, ref = predict(net, rgb), predict(net, rgb, backend="torch")
    # 1e-4: the 3x3 solve divides by covariances of at least eps (1e-3 here), so float32 rounding in the low
    # resolution (box sums in numba, channels-last convolutions) can grow ~1e3x; measured up to 2.2e-5
    assert fast.shape == ref.shape == (shape if out_channels == 1 else (*shape, 3)) and np.abs(fast - ref).max() <= 1e-4
    for tile in (1, 16, 50):
        assert np.abs(predict(net, rgb, tile=tile) - fast).max() <= 1e-5


def test_checkpoint_round_trip_restores_the_outputs_and_the_alias_builds_it(tmp_path):
    net = perturbed(out_channels=3, scale=2, width=8, depth=4)
    loaded = load_model(save_model(tmp_path / "d.ckpt", net, "guided-upsampling", "l0-smooth"))
    x = torch.rand(1, 3, 19, 23)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert isinstance(build_model("dgf", out_channels=3), GuidedUpsamplingNet)


@pytest.mark.parametrize("kwargs", [{"scale": 10**6}, {"width": 10**4}, {"depth": 100}, {"eps": 0.0}, {"radius": 99}])
def test_a_checkpoint_asking_for_an_oversized_network_is_refused_in_one_line(kwargs):
    with pytest.raises(UserError, match="model_kwargs"):
        check_model_config("guided-upsampling", 3, kwargs)


def test_real_training_moves_it_off_the_trivial_answer(tmp_path):
    """A tiny Lightning run on a photographic operator (100 steps: ~8 s): from near the identity to more than
    1 dB over returning the input (measured 24.10 against 21.22 dB)."""
    from src.evaluation.evaluate import trivial_psnr
    from src.filters import get_filter
    from src.training.config import TrainConfig
    from src.training.train import train

    res = train(TrainConfig(model="guided-upsampling", model_kwargs={"width": 8, "depth": 4}, filter="detail-enhance",
                            crop=64, max_steps=100, steps_per_epoch=10, threads=1, output=str(tmp_path / "d.ckpt"),
                            run_dir=str(tmp_path / "runs"), logger="none", quiet=True))
    assert res["steps"] == 100 and np.isfinite(res["test_psnr"])
    assert res["test_psnr"] > trivial_psnr(get_filter("detail-enhance")) + 1.0
    assert predict(load_model(res["checkpoint"]), np.zeros((3, 5, 3), np.uint8)).shape == (3, 5, 3)


def test_onnx_export_is_refused_in_one_line_that_says_why(tmp_path):
    from src.inference.export import export_onnx

    with pytest.raises(UserError, match="traced ONNX graph"):
        export_onnx(perturbed(), tmp_path / "d.onnx")
    assert not (tmp_path / "d.onnx").exists()
