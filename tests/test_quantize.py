"""Smaller copies of a network: fp16 / bf16 storage, int8 weight-only, int8 dynamic and int8 static."""
import csv

import numpy as np
import pytest
import torch
import torch.ao.nn.quantized as nnq

from src.cli import run_cli
from src.models import CompactNet, SeedAutoencoder, exact_sobel_net, save_model
from src.evaluation.metrics import psnr
from src.inference.predict import predict
from src.studies.quantize import main
from src.models.precision import cast_state, dynamic_int8, int8_weight_state, quantize_weights_int8, quantized_layers, serialized_size, static_int8, tensor_bytes, with_state

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated")


def torch_predict(net, rgb):
    return predict(net, rgb, backend="torch")


@pytest.fixture(scope="module")
def calibration(photo):
    """Eight 64x64 crops of the photo, (8, 3, 64, 64) in [0, 1]: enough to set the observers."""
    x = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    return torch.stack([x[:, y : y + 64, c : c + 64] for y in (0, 120, 230) for c in (0, 200, 390)][:8])


def autoencoder():
    """A seed autoencoder with random weights and an output well inside (0, 1), so errors show."""
    torch.manual_seed(0)
    net = SeedAutoencoder()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        net.batch_norm4.bias.fill_(0.5)
    return net.eval()


def test_fp16_copy_of_exact_sobel_matches_fp32_and_stores_smaller(photo):
    net = exact_sobel_net()
    half = cast_state(net, torch.float16)
    out = torch_predict(with_state(net, half), photo)
    assert np.abs(out - torch_predict(net, photo)).max() < 5e-4  # measured 8.4e-5
    assert serialized_size(half) < serialized_size(net.state_dict())
    assert tensor_bytes(half) == tensor_bytes(net.state_dict()) // 2


def test_int8_weight_only_is_close_on_a_photo_and_stores_smaller(photo):
    net = exact_sobel_net()
    assert psnr(torch_predict(quantize_weights_int8(net), photo), torch_predict(net, photo)) > 50  # measured 57.1 dB
    assert tensor_bytes(int8_weight_state(net)) < tensor_bytes(net.state_dict())
    # the file shrinks once the weights outweigh the zip container's per-tensor overhead (not at 55 parameters)
    ae = autoencoder()
    assert serialized_size(int8_weight_state(ae)) < 0.5 * serialized_size(ae.state_dict())


def test_int8_weight_only_keeps_integer_weights_with_a_scale_per_output_channel():
    state = int8_weight_state(autoencoder())
    assert state["conv2.weight"].dtype == torch.int8 and state["conv2.weight_scale"].shape == (32,)
    assert state["trans_conv1.weight"].dtype == torch.int8 and state["trans_conv1.weight_scale"].shape == (16,)
    assert state["conv2.bias"].dtype == torch.float32


def test_static_int8_compact_net_runs_its_convs_in_int8(photo, calibration):
    net = exact_sobel_net()
    qnet = static_int8(net, calibration)
    assert all(isinstance(qnet.get_submodule(f"{n}.module"), nnq.Conv2d) for n in ("mix", "bank", "head"))
    assert quantized_layers(qnet) == 3
    out = torch_predict(qnet, photo)
    assert out.shape == photo.shape[:2]
    assert psnr(out, torch_predict(net, photo)) > 33  # measured 39.3 dB: 7-bit activations on the gradients


def test_static_int8_autoencoder_is_close_to_fp32_transposed_convs_included(photo, calibration):
    net = autoencoder()
    qnet = static_int8(net, calibration)
    assert isinstance(qnet.trans_conv1.module, nnq.ConvTranspose2d) and isinstance(qnet.conv1.module, nnq.Conv2d)
    assert quantized_layers(qnet) == 4
    # measured 46.1 dB on fbgemm; the x86 engine's int8 ConvTranspose2d gave 20.8 dB
    assert psnr(torch_predict(qnet, photo), torch_predict(net, photo)) > 35


def test_static_int8_needs_rgb_calibration_batches():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        static_int8(exact_sobel_net(), torch.rand(3, 16, 16))


@pytest.mark.parametrize("net", [CompactNet(), SeedAutoencoder()], ids=["compact", "autoencoder"])
def test_dynamic_int8_quantises_no_convolution(net):
    assert quantized_layers(dynamic_int8(net.eval())) == 0


def test_dynamic_int8_count_is_real_for_linear_layers():
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    assert quantized_layers(dynamic_int8(net)) == 2


def test_cli_missing_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["--checkpoint", str(tmp_path / "none.ckpt"), "--out", str(tmp_path / "q")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.strip() == f"error: {tmp_path / 'none.ckpt'}: no such checkpoint"
    assert not (tmp_path / "q.csv").exists()


def test_cli_writes_csv_and_markdown_table(tmp_path, capsys):
    path = save_model(tmp_path / "sobel.ckpt", exact_sobel_net(), "compact", "sobel")
    assert main(["--checkpoint", str(path), "--calibration-crops", "4", "--out", str(tmp_path / "q")]) == 0
    rows = list(csv.DictReader((tmp_path / "q.csv").open()))
    assert [r["format"] for r in rows] == ["fp32", "fp16 weights", "bf16 weights", "int8 weight-only",
                                           "int8 dynamic", "int8 static"]
    assert float(rows[0]["psnr"]) > 60 and float(rows[0]["delta_psnr"]) == 0
    assert rows[4]["layers_quantised"] == "0" and rows[5]["layers_quantised"] == "3"
    table = (tmp_path / "q.md").read_text()
    assert "| compact / sobel | int8 static | 3 of 3 |" in table
    assert table.splitlines()[0] in capsys.readouterr().out
