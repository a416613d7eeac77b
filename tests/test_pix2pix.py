"""Pix2Pix: U-Net and PatchGAN shapes, one GAN step, any-size and tiled inference, checkpoints, training.

main.ipynb, which drives it, is specified in test_notebooks.py; `make gpu-bench` in test_gpu_bench.py."""
import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from src.errors import UserError
from src.evaluation.metrics import psnr
from src.filters import get_filter
from src.models import CompactNet, build_model, exact_sobel_net, load_model, save_model
from src.models.layers import run_any_size
from src.models.lit_pix2pix import Pix2PixModule, linear_decay
from src.models.pix2pix import PatchDiscriminator, UNetGenerator, unet_depth
from src.testing import predict

from .conftest import run_module


@pytest.mark.parametrize("depth, size", [(5, (32, 32)), (5, (64, 96)), (6, (128, 64)), (7, (128, 128))])
@pytest.mark.parametrize("out_channels", [1, 3])
def test_generator_keeps_multiples_of_its_size_and_channels(depth, size, out_channels):
    g = UNetGenerator(out_channels=out_channels, depth=depth, ngf=4).eval()
    y = g(torch.rand(2, 3, *size))
    assert y.shape == (2, out_channels, *size) and 0 <= y.min() and y.max() <= 1


def test_generator_depth_follows_the_training_size():
    assert unet_depth(128) == 7 and unet_depth(256) == 8
    assert UNetGenerator().size_multiple == 128 and UNetGenerator(depth=8).min_size == 256


@pytest.mark.parametrize("depth, dropouts", [(5, 1), (7, 2), (8, 3)])
def test_dropout_sits_in_the_innermost_decoder_blocks(depth, dropouts):
    g = UNetGenerator(depth=depth, ngf=4)
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in g.modules()) == dropouts


def test_a_group_norm_generator_answers_the_same_in_train_and_eval_mode_and_alone_or_in_a_batch(tmp_path):
    """BatchNorm's eval mode (running statistics of 8-crop batches) collapsed the photos generator; GroupNorm
    normalises each image by itself, so training sees what inference runs."""
    torch.manual_seed(0)
    g = UNetGenerator(depth=5, ngf=8, dropout=0.0, norm="group")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        train_mode = g.train()(x)
        eval_mode = g.eval()(x)
        alone = g(x[1:2])
    assert torch.allclose(train_mode, eval_mode, atol=1e-6) and torch.allclose(alone, eval_mode[1:2], atol=1e-6)
    loaded = load_model(save_model(tmp_path / "gn.ckpt", g, "pix2pix", "sobel"))
    assert loaded.config["norm"] == "group" and torch.allclose(loaded(x), eval_mode, atol=1e-6)


def test_an_unknown_norm_is_refused():
    with pytest.raises(ValueError, match="norm 'batch' or 'group'"):
        UNetGenerator(norm="instance")


def test_generator_refuses_sizes_off_its_multiple_with_a_clear_error():
    with pytest.raises(ValueError, match="multiples of 32"):
        UNetGenerator(depth=5, ngf=4)(torch.rand(1, 3, 33, 32))


@pytest.mark.parametrize("size, patches", [(64, (6, 6)), (256, (30, 30)), ((32, 96), (2, 10))])
def test_patch_discriminator_gives_one_logit_per_patch(size, patches):
    h, w = (size, size) if isinstance(size, int) else size
    d = PatchDiscriminator(out_channels=3, ndf=8)
    assert d(torch.rand(2, 3, h, w), torch.rand(2, 3, h, w)).shape == (2, 1, *patches)


def test_one_manual_optimisation_step_updates_both_networks():
    from src.dataset import FilterDataModule

    pl.seed_everything(0, verbose=False)
    module = Pix2PixModule({"depth": 5, "ngf": 8}, disc_kwargs={"ndf": 8}, total_steps=1)
    g0 = [p.detach().clone() for p in module.net.parameters()]
    d0 = [p.detach().clone() for p in module.disc.parameters()]
    data = FilterDataModule(get_filter("sobel"), crop=32, batch_size=2, steps_per_epoch=1)
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 2  # one batch: one G step and one D step
    assert sum(not torch.equal(a, b) for a, b in zip(g0, module.net.parameters())) == len(g0)
    assert sum(not torch.equal(a, b) for a, b in zip(d0, module.disc.parameters())) == len(d0)
    assert all(p.requires_grad for p in module.disc.parameters())


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    f = linear_decay(10, constant_fraction=0.5)
    assert [round(f(s), 2) for s in (0, 4, 5, 6, 8, 10, 12)] == [1, 1, 1, 0.8, 0.4, 0, 0]
    assert linear_decay(None)(10**6) == 1


def test_predict_pads_to_the_generators_multiple_and_crops_back():
    seen = []

    class Spy(torch.nn.Module):
        size_multiple, min_size = 32, 32

        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return x[:, :1]

    x = torch.rand(1, 3, 37, 70)
    y = run_any_size(Spy(), x)
    assert seen == [(64, 96)] and torch.equal(y, x[:, :1])  # the original pixels come back, in place


def test_a_context_margin_puts_reflected_pixels_on_every_side_even_at_an_exact_multiple():
    from src.filters.functional import pad_reflect101

    seen = []

    class Spy(torch.nn.Module):
        size_multiple, min_size, context_margin = 32, 32, 3

        def forward(self, x):
            seen.append(x)
            return x[:, :1]

    x = torch.rand(1, 3, 64, 37)
    y = run_any_size(Spy(), x)
    assert tuple(seen[0].shape[-2:]) == (96, 64) and torch.equal(y, x[:, :1])
    top, left = (96 - 64 + 1) // 2, (64 - 37 + 1) // 2  # 16 and 14 pixels: more than the margin, centred
    assert torch.equal(seen[0][..., top - 3 : top + 67, left - 3 : left + 40], pad_reflect101(x, 3))
    assert UNetGenerator(depth=5, ngf=4).context_margin == 16


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (301, 457)])
def test_predict_keeps_odd_sizes_including_ones_below_the_minimum(shape, rng):
    g = UNetGenerator(depth=5, ngf=4).eval()
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert predict(g, rgb).shape == shape


def test_blended_tiles_cross_fade_to_the_whole_image_for_a_local_network(photo):
    net = exact_sobel_net()
    net.blend_tiles = True  # force the U-Net's tiling path on a network whose answer we know
    whole, tiled = predict(net, photo), predict(net, photo, tile=96)
    assert tiled.shape == whole.shape and psnr(tiled, whole) > 60


def test_tiled_pix2pix_prediction_is_close_to_the_whole_image(trained_pix2pix, photo):
    net = load_model(trained_pix2pix)
    target = get_filter("sobel")(photo)
    whole, tiled = predict(net, photo), predict(net, photo, tile=128)
    assert tiled.shape == whole.shape == photo.shape[:2]
    assert abs(psnr(tiled, target) - psnr(whole, target)) < 1.5  # dB: tiling costs (almost) nothing


def test_pix2pix_and_compact_checkpoints_load_through_the_same_call(tmp_path, photo):
    g = UNetGenerator(depth=5, ngf=4).eval()
    save_model(tmp_path / "p.ckpt", g, "pix2pix", "sobel")
    save_model(tmp_path / "c.ckpt", exact_sobel_net(), "compact", "sobel")
    p, c = load_model(tmp_path / "p.ckpt"), load_model(tmp_path / "c.ckpt")
    assert isinstance(p, UNetGenerator) and isinstance(c, CompactNet)
    assert np.array_equal(predict(p, photo), predict(g, photo))
    assert predict(c, photo).shape == photo.shape[:2]


def test_a_wrong_channel_checkpoint_is_a_clear_error(tmp_path):
    save_model(tmp_path / "rgb.ckpt", build_model("pix2pix", out_channels=3, depth=5, ngf=4), "pix2pix", "sobel")
    blob = torch.load(tmp_path / "rgb.ckpt", weights_only=True)
    blob["out_channels"] = 1  # the file claims a 1-channel network, its weights are for 3
    torch.save(blob, tmp_path / "bad.ckpt")
    with pytest.raises(UserError, match="weights do not fit a 'pix2pix' network"):
        load_model(tmp_path / "bad.ckpt")


@pytest.fixture(scope="module")
def trained_pix2pix(tmp_path_factory):
    """A Pix2Pix checkpoint from the real training command (a short CPU run at 64x64)."""
    out = tmp_path_factory.mktemp("pix2pix")
    res = run_module("src.training.train", "--model", "pix2pix", "--crop", "64", "--batch-size", "4",
                     "--model-arg", "ngf=8", "--lr", "1e-3", "--steps-per-epoch", "20", "--max-steps", "120",
                     "--output", str(out / "p.ckpt"), "--run-dir", str(out / "runs"), "--quiet")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "mean" in res.stdout
    return out / "p.ckpt"


def test_train_command_trains_pix2pix_into_a_loadable_checkpoint(trained_pix2pix):
    net = load_model(trained_pix2pix)
    assert isinstance(net, UNetGenerator) and net.depth == 6  # depth from --crop 64
    assert net.meta["model"] == "pix2pix" and "test_psnr" in net.meta["metrics"]
    lightning_ckpt = next((trained_pix2pix.parent / "runs").rglob("best.ckpt"))
    assert isinstance(load_model(lightning_ckpt), UNetGenerator)  # the generator, without the discriminator
    logged = (next((trained_pix2pix.parent / "runs").rglob("metrics.csv"))).read_text().splitlines()[0]
    assert all(k in logged for k in ("g_loss", "d_loss", "val_psnr", "val_ssim"))


def test_train_command_trains_the_l1_only_unet(tmp_path):
    res = run_module("src.training.train", "--model", "unet", "--crop", "32", "--batch-size", "2",
                     "--model-arg", "ngf=4", "--max-steps", "2", "--steps-per-epoch", "2", "--no-test",
                     "--output", str(tmp_path / "u.ckpt"), "--run-dir", str(tmp_path / "runs"), "--quiet")
    assert res.returncode == 0, res.stderr[-2000:]
    assert load_model(tmp_path / "u.ckpt").meta["model"] == "unet"


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="needs torch.distributed with the gloo backend")
@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes_runs_two_steps(tmp_path):
    res = run_module("src.training.train", "--model", "pix2pix", "--accelerator", "cpu", "--devices", "2",
                     "--strategy", "ddp", "--crop", "32", "--batch-size", "2", "--model-arg", "ngf=4",
                     "--max-steps", "4", "--steps-per-epoch", "2", "--no-test", "--logger", "none",
                     "--output", str(tmp_path / "ddp.ckpt"), "--run-dir", str(tmp_path / "runs"), "--quiet",
                     timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    assert '"epochs"' in res.stdout and res.stdout.count('"checkpoint"') == 1  # rank 0 alone reports
    assert isinstance(load_model(tmp_path / "ddp.ckpt"), UNetGenerator)
