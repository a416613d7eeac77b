"""The compact net's fused runtimes equal its torch forward: CPU row bands (OpenCV) and the torch function
that CUDA compiles, at odd sizes down to 1x1, borders included."""
import numpy as np
import pytest
import torch

from src.models import CompactNet, exact_sobel_net, load_model

from .conftest import ROOT
from src.inference.runtime import compact_plan, fused_runner, fused_torch, fused_weights


def with_head(net, weight, bias):
    with torch.no_grad():
        net.head.weight.fill_(weight)
        net.head.bias.fill_(bias)
    return net.eval()


NETS = {
    "compact": lambda: with_head(CompactNet(), 1.3, 0.01),
    "compact-negative-head": lambda: with_head(CompactNet(), -0.7, 0.6),
    "compact-separable": lambda: with_head(CompactNet(separable=True), 2.0, 0.0),
    "compact-symmetric": lambda: with_head(CompactNet(separable=True, symmetric=True, pairs=2, linear=1), 0.8, -0.1),
    "compact-zero-padding": lambda: CompactNet(padding="zeros").eval(),
    "compact-rgb-hidden": lambda: CompactNet(mix=0, pairs=2, linear=1, hidden=4).eval(),
    "compact-linear-only": lambda: with_head(CompactNet(pairs=0, linear=1, kernel_size=3), -1.5, 0.5),
    "compact-3-outputs": lambda: CompactNet(out_channels=3, pairs=2, kernel_size=7).eval(),
    "exact-sobel": exact_sobel_net,
    "shipped-sobel": lambda: load_model("models/sobel.ckpt"),
}
SHAPES = [(1, 1), (1, 7), (9, 1), (3, 2), (4, 4), (37, 61)]


def torch_forward(net, rgb):
    with torch.no_grad():
        return net(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0].numpy()


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("shape", SHAPES)
def test_fused_cpu_runtime_equals_the_torch_forward(name, shape, rng):
    torch.manual_seed(0)
    net = NETS[name]()
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    ref = torch_forward(net, rgb)
    for band_pixels in (0, 7, 200):  # whole image; bands of a row or a few rows, on two threads
        out = fused_runner(net, threads=2, band_pixels=band_pixels)(rgb)
        assert out.shape == ref.shape and out.dtype == np.float32
        assert np.abs(out - ref).max() <= 1e-5, band_pixels


@pytest.mark.parametrize("name", NETS)
def test_fused_cpu_runtime_equals_the_torch_forward_on_a_photo(name, photo):
    net = NETS[name]()
    assert np.abs(fused_runner(net, threads=2)(photo) - torch_forward(net, photo)).max() <= 1e-5


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("shape", [*SHAPES, (70, 5), (65, 130)])
def test_numba_one_pass_runtime_equals_the_torch_forward(name, shape, rng):
    from src.inference.runtime import numba_runner

    torch.manual_seed(0)
    net = NETS[name]()
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    ref = np.clip(torch_forward(net, rgb), 0, 1)
    for threads, band_rows in ((1, None), (2, 1), (2, 3)):  # one run of bands; bands of 1 or 3 rows on 2 threads
        out = numba_runner(net, threads=threads, band_rows=band_rows)(rgb)
        assert out.shape == ref.shape and out.dtype == np.float32
        assert np.abs(out - ref).max() <= 1e-6, (threads, band_rows)


@pytest.mark.parametrize("dtype, scale", [(np.uint8, 255), (np.uint16, 65535)])
def test_numba_runtime_writes_rounded_integers_when_asked(dtype, scale, photo):
    from src.inference.runtime import numba_runner

    net = load_model("models/sobel.ckpt")
    exact = numba_runner(net)(photo)
    out = numba_runner(net, out_dtype=dtype)(photo)
    assert out.dtype == dtype
    # half-way cases may round either way after float32 rounding of y * scale
    assert np.abs(out.astype(np.int64) - np.floor(exact * scale + 0.5)).max() <= 1


def test_default_net_shape_takes_the_fused_row_and_others_the_general_path():
    from src.kernels.compact import flat_args

    def fused(net):
        return flat_args(compact_plan(net))["pair_fold"]

    # the parity tests above run both paths: these say which nets go down which
    assert fused(load_model("models/sobel.ckpt")) and fused(NETS["compact-separable"]())
    assert not any(fused(NETS[n]()) for n in ("compact", "compact-symmetric", "compact-rgb-hidden",
                                               "compact-linear-only", "compact-3-outputs"))


def test_numba_runtime_refuses_an_output_type_it_cannot_write():
    from src.inference.runtime import numba_runner

    with pytest.raises(ValueError, match="float32, uint8 or uint16"):
        numba_runner(exact_sobel_net(), out_dtype=np.int32)


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("shape", [(1, 1), (2, 9), (23, 17)])
def test_fused_torch_function_equals_the_torch_forward(name, shape, rng):
    torch.manual_seed(0)
    net = NETS[name]()
    rgb = rng.integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    x = torch.from_numpy(rgb)
    with torch.no_grad():
        ref = net(x.permute(0, 3, 1, 2).float() / 255)
        out = fused_torch(x, **fused_weights(net))
        out8 = fused_torch(x, **fused_weights(net), out_dtype=torch.uint8)
    assert out.shape == ref.shape and (out - ref).abs().max() <= 1e-5
    assert out8.dtype == torch.uint8 and torch.equal(out8, (out * 255).round().to(torch.uint8))


def test_rank_one_kernels_run_as_separable_passes_and_others_as_full_kernels():
    kinds = lambda net: {k[0] for row in compact_plan(net).kernels for k in row}  # noqa: E731
    assert kinds(exact_sobel_net()) == {"sep"}
    assert kinds(CompactNet(separable=True).eval()) == {"sep"}
    assert kinds(load_model("models/sobel.ckpt")) == {"sep"}  # the shipped net is the separable kind
    torch.manual_seed(0)
    dense = CompactNet().eval()  # random 5x5 kernels: full rank
    assert kinds(dense) == {"full"}
    with pytest.raises(ValueError, match="rank-1"):
        compact_plan(dense, separable=True)


def test_training_mode_and_other_networks_are_left_to_torch():
    from src.models import SeedAutoencoder

    assert fused_runner(CompactNet()) is None  # training mode: eps in the magnitude, straight-through clamp
    assert fused_runner(SeedAutoencoder().eval()) is None and fused_weights(SeedAutoencoder().eval()) is None


def test_bench_writes_its_table_with_every_runtime_and_the_bound(tmp_path):
    from .conftest import run_module

    res = run_module("src.bench.speed", "--sizes", "0.01", "--repeats", "1", "--no-compile", "--copy-mb", "8",
                     "--out", str(tmp_path / "b"))
    assert res.returncode == 0, res.stderr[-2000:]
    md = (tmp_path / "b.md").read_text()
    assert "Memory-bandwidth bound" in md and "x copy of the same bytes" in md
    for name in ("OpenCV Sobel pipeline", "copy of the same bytes", "predict (default: numba one pass)",
                 "out= one array", "uint8 out",
                 "backend=opencv: fused row bands", "in turn", "2-thread pool", "same OpenCV steps", "torch eager",
                 "sepFilter2D"):
        assert name in md
    rows = (tmp_path / "b.csv").read_text().splitlines()
    assert len(rows) == 1 + 12 and "copy_fraction" in rows[0]
    # every shipped checkpoint, with its MP/s
    assert all(f"`models/{p.name}`" in md for p in (ROOT / "models").glob("*.ckpt"))


def test_cuda_runner_is_for_cuda_networks_only():
    from src.inference.runtime import cuda_runner

    assert cuda_runner(exact_sobel_net()) is None


def test_runtime_follows_weights_changed_in_place(rng):
    net = exact_sobel_net()
    rgb = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    before = fused_runner(net)(rgb)
    with torch.no_grad():
        net.head.weight.mul_(0.5)
    after = fused_runner(net)(rgb)
    assert np.abs(after - torch_forward(net, rgb)).max() <= 1e-5 and np.abs(after - before).max() > 1e-3


def test_symmetric_net_hands_opencv_exactly_mirrored_factors():
    """OpenCV's separable filters take their faster symmetric path only when kernel[i] == +-kernel[-1-i]
    exactly; the runtime must pass the factors on without breaking that in the float32 cast."""
    for net in (CompactNet(separable=True, symmetric=True, pairs=2, linear=1).eval(), load_model("models/sobel.ckpt")):
        plan = compact_plan(net)
        parities = []
        for response in plan.kernels:
            for kind, row, col in response:
                assert kind == "sep" and row.dtype == col.dtype == np.float32
                for v in (row, col):
                    even, odd = np.array_equal(v, v[::-1]), np.array_equal(v, -v[::-1])
                    assert even or odd, v
                    parities.append("even" if even else "odd")
        assert "odd" in parities and "even" in parities


def test_large_images_share_their_bands_out_to_a_pool_with_the_same_result(rng, monkeypatch):
    import src.inference.runtime as runtime

    net = load_model("models/sobel.ckpt")
    rgb = rng.integers(0, 256, (301, 203, 3), dtype=np.uint8)
    in_turn = fused_runner(net, threads=1, band_pixels=2000)(rgb)
    monkeypatch.setattr(runtime, "POOL_PIXELS", 1000)  # "large" from 1000 pixels: this image takes the pool
    seen = []
    monkeypatch.setattr(runtime, "_pool", lambda n: seen.append(n) or runtime.ThreadPoolExecutor(n))
    pooled = fused_runner(net, band_pixels=2000)(rgb)
    assert seen == [min(2, runtime_cores())] or (seen == [] and runtime_cores() == 1)
    # OpenCV may split a step differently inside a pool thread (float order): equal to rounding, not bit for bit
    assert np.abs(pooled - in_turn).max() <= 1e-6
    assert np.abs(pooled - torch_forward(net, rgb)).max() <= 1e-5


def runtime_cores():
    from src.threads import available_cores

    return available_cores()


def test_fused_runtime_vouches_for_a_finite_output_only_when_its_weights_bound_it(rng):
    """predict skips its NaN scan for the fused runtime only when uint8 pixels through these weights cannot
    overflow; unbounded weights (here a NaN) still get the scan and its one-line refusal."""
    from src.errors import UserError
    from src.inference.predict import predict

    assert fused_runner(load_model("models/sobel.ckpt")).finite
    net = with_head(CompactNet(separable=True, symmetric=True), 1.0, 0.0)
    with torch.no_grad():
        net.bank.weight[0, 0, 0, 0] = float("nan")
    assert not fused_runner(net).finite
    with pytest.raises(UserError, match="NaN or infinite"):
        predict(net, rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
