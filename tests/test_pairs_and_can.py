"""Learning from before/after folders, the context-aggregation network, and kernel recovery."""
import numpy as np
import pytest
import torch

from src.io.images import write_png
from src.dataset.pairs import PairsDataModule
from src.filters.pairs import load_pairs, match_pairs
from src.errors import UserError
from src.filters import get_filter
from src.models import ContextAggregationNet, build_model, load_model, save_model
from src.inference.predict import predict
from tests.conftest import run_module


def make_pairs(root, rng, names=("a", "b", "c", "d"), size=(37, 41), gray=True):
    """``root/in`` holds random photos as JPEG-free PNGs, ``root/out`` their inverted gray (or colour) versions."""
    for name in names:
        rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        write_png(root / "in" / f"{name}.png", rgb.astype(np.float32) / 255)
        out = 255 - rgb.mean(axis=2).astype(np.uint8) if gray else 255 - rgb
        write_png(root / "out" / f"{name}.png", out.astype(np.float32) / 255)
    return root / "in", root / "out"


def test_pairs_are_matched_by_name_and_define_a_filter_on_their_inputs(tmp_path, rng):
    src, dst = make_pairs(tmp_path, rng)
    assert [name for name, _, _ in match_pairs(src, dst)] == ["a", "b", "c", "d"]
    inputs, _, channels = load_pairs(str(src), str(dst))
    flt = get_filter("pairs", in_dir=str(src), out_dir=str(dst))
    assert channels == 1 and flt.out_channels == 1 and flt.key == "pairs-out"
    out = flt(inputs[0].rgb)
    assert out.shape == inputs[0].rgb.shape[:2] and out.dtype == np.float32
    np.testing.assert_allclose(out, 1 - inputs[0].rgb.mean(axis=2).astype(np.uint8) / 255, atol=1 / 255 + 1e-6)
    with pytest.raises(UserError, match="knows only the 4 example inputs"):
        flt(np.zeros((5, 5, 3), np.uint8))


def test_colour_outputs_are_learned_as_three_channels(tmp_path, rng):
    src, dst = make_pairs(tmp_path, rng, gray=False)
    assert get_filter("pairs", in_dir=str(src), out_dir=str(dst)).out_channels == 3


def test_missing_partners_and_size_mismatches_are_listed_in_one_error(tmp_path, rng):
    src, dst = make_pairs(tmp_path, rng)
    (dst / "a.png").unlink()
    write_png(dst / "zz.png", np.zeros((4, 4), np.float32))
    with pytest.raises(UserError, match=r"1 input\(s\) without an output .*\(a\); 1 output\(s\) without an input .*\(zz\)"):
        match_pairs(src, dst)
    (dst / "zz.png").unlink()
    write_png(dst / "a.png", np.zeros((10, 12), np.float32))
    with pytest.raises(UserError, match=r"1 pair\(s\) refused: a: input 41x37 vs output 12x10"):
        load_pairs(str(src), str(dst))


def test_pairs_data_module_crops_input_and_target_at_the_same_place(tmp_path, rng):
    src, dst = make_pairs(tmp_path, rng, names=tuple("abcdefgh"))
    flt = get_filter("pairs", in_dir=str(src), out_dir=str(dst))
    data = PairsDataModule(flt, crop=16, batch_size=4, steps_per_epoch=2)
    data.setup("fit")
    assert all(data.splits[s] for s in ("train", "val", "test"))
    batch = next(iter(data.train_dataloader()))
    x, y = batch["input"], batch["target"]
    assert x.shape == (4, 3, 16, 16) and y.shape == (4, 1, 16, 16)
    gray8 = (x * 255).round().mean(1, keepdim=True).floor()  # what make_pairs wrote, from the crop itself
    assert torch.allclose(y, 1 - gray8 / 255, atol=1 / 255 + 1e-5)


def test_train_command_refuses_bad_pair_folders_before_training(tmp_path, rng):
    src, dst = make_pairs(tmp_path, rng)
    (src / "b.png").unlink()
    res = run_module("src.training.train", "--pairs", str(src), str(dst), "--max-steps", "1", timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"error: --pairs: 1 output(s) without an input in {src} (b)"]


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (5, 5), (37, 70)])
@pytest.mark.parametrize("out_channels", [1, 3])
def test_can_keeps_any_input_size(shape, out_channels, rng):
    net = build_model("can", out_channels=out_channels, width=8, depth=5).eval()
    out = predict(net, rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
    assert out.shape == (shape if out_channels == 1 else (*shape, 3))


def test_can_receptive_field_grows_exponentially_with_depth():
    assert [ContextAggregationNet(depth=d).receptive_radius for d in (4, 5, 6, 7, 8)] == [4, 8, 16, 32, 64]


def test_can_tiled_prediction_equals_the_whole_image(rng):
    torch.manual_seed(0)
    net = build_model("can", out_channels=3, width=8, depth=5, residual=False).eval()
    rgb = rng.integers(0, 256, (45, 53, 3), dtype=np.uint8)
    np.testing.assert_allclose(predict(net, rgb, tile=16), predict(net, rgb), atol=1e-5)


def test_can_prediction_in_channels_last_layout_equals_the_plain_forward(rng):
    torch.manual_seed(1)
    net = build_model("can", out_channels=3, width=8, depth=5, residual=False).eval()
    rgb = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    with torch.no_grad():
        plain = net(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(predict(net, rgb), plain, atol=1e-5)
    x = torch.rand(1, 3, 9, 9, requires_grad=True)
    net(x).sum().backward()  # predict left the network trainable (no inference-mode tensors inside)
    assert x.grad is not None


def test_can_checkpoint_round_trip(tmp_path):
    net = build_model("can", out_channels=3, width=8, depth=4).eval()
    save_model(tmp_path / "can.ckpt", net, "can", "stylization")
    back = load_model(tmp_path / "can.ckpt")
    x = torch.rand(1, 3, 9, 11)
    assert back.config == net.config and torch.allclose(back(x), net(x))


def test_short_training_recovers_the_random_kernel():
    from src.evaluation.kernels import cosine_similarity, effective_kernel

    torch.manual_seed(0)
    flt = get_filter("random", seed=0, size=3)
    net = build_model("compact", pairs=0, linear=1, kernel_size=3)
    opt = torch.optim.Adam(net.parameters(), lr=3e-2)
    for _ in range(600):  # white-noise crops: every kernel direction is excited equally
        x = torch.rand(8, 3, 16, 16)
        loss = torch.nn.functional.mse_loss(net(x), flt.torch(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert cosine_similarity(effective_kernel(net, 3), flt.extra["rgb_kernel"]) >= 0.999


def test_shipped_gpu_can_scores_here_what_it_recorded_on_the_gpu():
    """models/can-detail-enhance-gpu.ckpt (the paper's CAN 24×9, trained by `make gpu-bench` on an H200) gives on
    this CPU the test score its training recorded there, far above returning the input."""
    from src.dataset.sources import load_split
    from src.evaluation.evaluate import checkpoint_filter, evaluate_images
    from src.studies.zoo import trivial_psnr

    from .conftest import ROOT

    net = load_model(ROOT / "models" / "can-detail-enhance-gpu.ckpt")
    assert (net.meta["filter"], net.meta["info"]["steps"]) == ("detail-enhance", 4000)
    flt = checkpoint_filter(net)
    _, mean = evaluate_images(net, flt, load_split("skimage", "test"))
    assert mean["psnr"] == pytest.approx(net.meta["metrics"]["test_psnr"], abs=1e-3)
    assert mean["psnr"] > trivial_psnr(flt) + 10
