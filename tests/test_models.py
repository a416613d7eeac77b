"""Networks, the hand-built exact Sobel net, and checkpoints."""
import numpy as np
import pytest
import torch

from src.errors import UserError
from src.filters import get_filter
from src.models import CompactNet, SeedAutoencoder, build_model, count_parameters, exact_sobel_net, load_model, save_model


@pytest.mark.parametrize("net", [CompactNet(), SeedAutoencoder(), CompactNet(mix=0, pairs=2, linear=1, hidden=8)],
                         ids=["compact", "autoencoder", "compact-wide"])
@pytest.mark.parametrize("size", [(5, 5), (17, 31), (64, 64), (33, 8)])
def test_networks_keep_the_input_size(net, size):
    out = net.eval()(torch.rand(2, 3, *size))
    assert out.shape == (2, 1, *size)


def test_seed_autoencoder_is_layer_for_layer_the_seed():
    net = SeedAutoencoder()
    convs = [(m.__class__.__name__, m.in_channels, m.out_channels, m.kernel_size, m.padding)
             for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs == [("Conv2d", 3, 16, (3, 3), (0, 0)), ("Conv2d", 16, 32, (3, 3), (0, 0)),
                     ("ConvTranspose2d", 32, 16, (3, 3), (0, 0)), ("ConvTranspose2d", 16, 1, (3, 3), (0, 0))]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 4


def test_compact_net_is_within_the_parameter_budget():
    assert count_parameters(CompactNet()) <= 5000
    assert count_parameters(build_model("compact")) == 55


def test_hand_built_compact_net_computes_the_sobel_target(photo):
    net = exact_sobel_net()
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        out = net(x)[0, 0].numpy()
    assert np.abs(out - get_filter("sobel")(photo)).max() <= 1e-5


def test_compact_net_trains_without_nan_on_flat_images():
    net = CompactNet()
    loss = net(torch.full((1, 3, 8, 8), 0.5)).mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_checkpoint_round_trip_restores_outputs_and_metadata(tmp_path):
    net = CompactNet(kernel_size=7, pairs=2).eval()
    path = save_model(tmp_path / "m.ckpt", net, "compact", "sobel", {"ksize": 5}, metrics={"test_psnr": 51.5})
    loaded = load_model(path)
    x = torch.rand(1, 3, 20, 21)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert loaded.meta["filter_params"] == {"ksize": 5} and loaded.meta["metrics"]["test_psnr"] == 51.5
    assert not loaded.training
    assert not list(tmp_path.glob("*.part")), "atomic write leaves no temp file"


def test_checkpoints_load_with_weights_only(tmp_path):
    path = save_model(tmp_path / "m.ckpt", SeedAutoencoder(), "autoencoder", "sobel", info={"torch": torch.__version__})
    blob = torch.load(path, weights_only=True)
    assert blob["model"] == "autoencoder"


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no such checkpoint"):
        load_model(tmp_path / "none.ckpt")


def test_garbage_file_is_not_a_checkpoint(tmp_path):
    p = tmp_path / "junk.ckpt"
    p.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="junk.ckpt: not a readable checkpoint"):
        load_model(p)


def test_foreign_torch_file_is_refused(tmp_path):
    p = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, p)
    with pytest.raises(UserError, match="not a checkpoint written by this project"):
        load_model(p)


def test_weights_of_another_shape_are_refused(tmp_path):
    path = save_model(tmp_path / "m.ckpt", CompactNet(), "compact", "sobel")
    blob = torch.load(path, weights_only=True)
    blob["model_kwargs"]["kernel_size"] = 7
    torch.save(blob, path)
    with pytest.raises(UserError, match="weights do not fit a 'compact' network"):
        load_model(path)


def test_unknown_model_name_lists_the_available_ones():
    with pytest.raises(UserError, match="available: autoencoder, bilateral-grid, can, compact"):
        build_model("unet9000")


def test_separable_compact_net_correlates_with_column_times_row_kernels():
    net = CompactNet(separable=True).eval()
    x = torch.rand(1, 3, 9, 12)
    kernels = net.bank_kernels()
    assert count_parameters(net) == 25 and all(np.linalg.matrix_rank(k[0].detach().double().numpy(), tol=1e-6) == 1 for k in kernels)
    from src.filters.functional import pad_reflect101

    with torch.no_grad():
        direct = torch.nn.functional.conv2d(pad_reflect101(net._mix(x), 2), kernels)
        energy = torch.sqrt(direct[:, :1] ** 2 + direct[:, 1:] ** 2)
        assert torch.allclose(net(x), net.head(energy).clamp(0, 1), atol=1e-6)


def test_symmetric_compact_net_keeps_its_factors_exactly_mirrored_while_training():
    torch.manual_seed(0)
    net = CompactNet(separable=True, symmetric=True, pairs=1, linear=1)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    for _ in range(3):  # the stored weights drift freely; the factors the forward uses may not
        opt.zero_grad()
        net(torch.rand(2, 3, 12, 12)).square().mean().backward()
        opt.step()
    cols, rows = net.bank_factors()
    col = cols[:, 0, :, 0].detach()
    row = rows[:, 0, 0, :].detach()
    assert torch.equal(row[0], -row[0].flip(0)) and float(row[0, 2]) == 0.0  # u: odd along rows (d/dx)
    assert torch.equal(col[0], col[0].flip(0))
    assert torch.equal(col[1], -col[1].flip(0)) and torch.equal(row[1], row[1].flip(0))  # v: d/dy
    assert torch.equal(col[2], col[2].flip(0)) and torch.equal(row[2], row[2].flip(0))  # linear: even
    assert not torch.equal(net.bank_rows.weight[0, 0, 0], -net.bank_rows.weight[0, 0, 0].flip(0))


def test_symmetric_compact_net_can_hold_the_exact_sobel_kernels():
    exact = exact_sobel_net()
    net = CompactNet(separable=True, symmetric=True).eval()
    kx = exact.bank.weight[0, 0].detach().double().numpy()
    u, s, vt = np.linalg.svd(kx)
    col, row = u[:, 0] * np.sqrt(s[0]), vt[0] * np.sqrt(s[0])
    with torch.no_grad():
        net.mix.weight.copy_(exact.mix.weight)
        for o, (c, r) in enumerate([(col, row), (row, col)]):  # ky is kx transposed
            net.bank.weight[o, 0, :, 0] = torch.from_numpy(c).float()
            net.bank_rows.weight[o, 0, 0, :] = torch.from_numpy(r).float()
        net.head.weight.fill_(1.0)
        net.head.bias.zero_()
    x = torch.rand(1, 3, 16, 20)
    with torch.no_grad():
        assert torch.allclose(net(x), exact(x), atol=1e-6)


def test_symmetric_needs_separable():
    with pytest.raises(ValueError, match="symmetric=True needs separable=True"):
        CompactNet(symmetric=True)


def test_separable_checkpoint_round_trip(tmp_path):
    net = CompactNet(separable=True).eval()
    loaded = load_model(save_model(tmp_path / "s.ckpt", net, "compact", "sobel"))
    x = torch.rand(1, 3, 8, 9)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_every_network_option_has_a_checkpoint_bound():
    """A checkpoint's model_kwargs are checked against LIMITS before anything is built: every constructor
    option must be listed there, or checkpoints using it could not be loaded."""
    import inspect

    from src.models.networks import LIMITS, MODELS

    for name, cls in MODELS.items():
        options = set(inspect.signature(cls).parameters) - {"out_channels", "self"}
        assert options <= set(LIMITS[name]), (name, options - set(LIMITS[name]))
