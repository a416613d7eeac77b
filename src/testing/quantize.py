"""Model size against accuracy: half-precision and int8 copies of a checkpoint, with file size and test PSNR.

    python -m src.testing.quantize [--checkpoint models/sobel.ckpt models/autoencoder.ckpt]
                                   [--calibration-crops 32] [--out figures/quantize]

Each checkpoint is stored in six formats (fp32, fp16 and bf16 weights, int8 weight-only, int8 dynamic,
int8 static), each copy is evaluated on the embedded test split through torch, and the table goes to
``OUT.csv`` and ``OUT.md`` (and the terminal).
"""
from __future__ import annotations

import argparse
import copy
import csv
import io
import warnings
from typing import Sequence

import torch
import torch.ao.quantization as tq
import torch.nn as nn

from src.dataset.images import atomic_write_bytes
from src.errors import UserError, run_cli

CONVS = (nn.Conv2d, nn.ConvTranspose2d)
COLUMNS = ("checkpoint", "model", "format", "layers_quantised", "conv_layers", "file_bytes", "tensor_bytes",
           "psnr", "delta_psnr", "ssim", "zero_psnr")


def serialized_size(state_dict: dict[str, torch.Tensor]) -> int:
    """Bytes of ``torch.save(state_dict)`` into memory: what a file of these weights would weigh.

    >>> serialized_size({"w": torch.zeros(1000)}) > serialized_size({"w": torch.zeros(1000, dtype=torch.float16)})
    True
    """
    buf = io.BytesIO()
    torch.save(state_dict, buf)
    return len(buf.getvalue())


def tensor_bytes(state_dict: dict[str, torch.Tensor]) -> int:
    """Bytes of the tensor data alone, without the file container (quantised tensors: int8 values + scales)."""
    total = 0
    for t in state_dict.values():
        if not isinstance(t, torch.Tensor):
            continue
        if t.is_quantized:
            per_channel = t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
            scales = t.q_per_channel_scales().nbytes + t.q_per_channel_zero_points().nbytes if per_channel else 16
            total += t.int_repr().nbytes + scales
        else:
            total += t.nbytes
    return total


def conv_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every float ``Conv2d`` / ``ConvTranspose2d`` in ``net``."""
    return [(n, m) for n, m in net.named_modules() if type(m) in CONVS]


def quantized_layers(net: nn.Module) -> int:
    """Number of layers that really run in int8 (modules of ``torch.ao.nn.quantized``, static or dynamic)."""
    if isinstance(net, (torch.ao.nn.quantized.Quantize, torch.ao.nn.quantized.DeQuantize)):
        return 0
    if type(net).__module__.startswith("torch.ao.nn.quantized"):
        return 1  # not its children: a dynamic Linear holds its weights in a packed-params submodule
    return sum(quantized_layers(m) for m in net.children())


def cast_state(net: nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """``net.state_dict()`` with every floating tensor cast to ``dtype`` (integer buffers kept)."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in net.state_dict().items()}


def with_state(net: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """An eval-mode copy of ``net`` holding ``state``; ``load_state_dict`` casts it back to float32."""
    out = copy.deepcopy(net)
    out.load_state_dict(state)
    return out.eval()


def _scale_shape(conv: nn.Module) -> list[int]:
    # output channels: dim 0 of a Conv2d weight (out, in, k, k), dim 1 of a ConvTranspose2d's (in, out, k, k)
    shape = [1] * conv.weight.dim()
    shape[1 if isinstance(conv, nn.ConvTranspose2d) else 0] = -1
    return shape


def int8_weight_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """The stored form of int8 weight-only: each conv weight as symmetric per-output-channel int8
    (``NAME.weight``) with a float32 scale per channel (``NAME.weight_scale``); other tensors as they are."""
    state = dict(net.state_dict())
    for name, conv in conv_layers(net):
        w, shape = conv.weight.detach(), _scale_shape(conv)
        dims = [d for d in range(w.dim()) if shape[d] == 1]
        scale = w.abs().amax(dim=dims).clamp_min(1e-12) / 127
        key = f"{name}.weight".lstrip(".")
        state[key] = torch.round(w / scale.view(shape)).clamp_(-127, 127).to(torch.int8)
        state[key + "_scale"] = scale.float()
    return state


def quantize_weights_int8(net: nn.Module) -> nn.Module:
    """A copy of ``net`` whose conv weights went through :func:`int8_weight_state` and back (fp32 compute).

    >>> from src.models import exact_sobel_net
    >>> quantize_weights_int8(exact_sobel_net())(torch.rand(1, 3, 8, 8)).shape
    torch.Size([1, 1, 8, 8])
    """
    state = int8_weight_state(net)
    for name, conv in conv_layers(net):
        key = f"{name}.weight".lstrip(".")
        state[key] = state[key].float() * state.pop(key + "_scale").view(_scale_shape(conv))
    return with_state(net, state)


def dynamic_int8(net: nn.Module) -> nn.Module:
    """``quantize_dynamic`` with its default layer set (Linear and recurrent layers: no convolutions)."""
    return tq.quantize_dynamic(copy.deepcopy(net).eval())


def quantized_engine() -> str:
    """The int8 CPU engine used for static quantisation: fbgemm when built in, else x86, else qnnpack."""
    # fbgemm before x86: on torch 2.14 the x86 engine's int8 ConvTranspose2d is wrong (error ~ the output itself)
    for engine in ("fbgemm", "x86", "qnnpack"):
        if engine in torch.backends.quantized.supported_engines:
            return engine
    raise UserError("this torch build has no int8 CPU engine (x86, fbgemm or qnnpack)")


def static_int8(net: nn.Module, calibration: torch.Tensor) -> nn.Module:
    """Post-training static int8 (eager mode) of every conv: ``QuantStub -> int8 conv -> DeQuantStub``.

    Everything between the convs (padding, sqrt, BatchNorm, clamps) stays float. ``calibration``:
    ``(N, 3, H, W)`` in [0, 1], one forward pass that sets the histogram observers. Conv2d weights are
    per-channel; ConvTranspose2d weights per-tensor (eager mode has no per-channel transposed conv).

    >>> from src.models import exact_sobel_net
    >>> static_int8(exact_sobel_net(), torch.rand(2, 3, 16, 16))(torch.rand(1, 3, 8, 8)).shape
    torch.Size([1, 1, 8, 8])
    """
    if calibration.dim() != 4 or calibration.shape[1] != 3:
        raise ValueError(f"expected calibration images (N, 3, H, W), got shape {tuple(calibration.shape)}")
    torch.backends.quantized.engine = engine = quantized_engine()
    # x86/fbgemm: 7-bit activations (what reduce_range does) keep its int16 accumulation from overflowing
    act = tq.HistogramObserver.with_args(dtype=torch.quint8, quant_min=0, quant_max=255 if engine == "qnnpack" else 127)
    weight = {nn.Conv2d: tq.PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric),
              nn.ConvTranspose2d: tq.MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)}
    qnet = copy.deepcopy(net).eval()
    for name, conv in conv_layers(qnet):
        parent, _, child = name.rpartition(".")
        wrapped = tq.QuantWrapper(conv)
        wrapped.qconfig = tq.QConfig(activation=act, weight=weight[type(conv)])
        setattr(qnet.get_submodule(parent), child, wrapped)
    tq.prepare(qnet, inplace=True)
    with torch.no_grad():
        qnet(calibration)
    return tq.convert(qnet, inplace=True).eval()


def calibration_crops(n: int, crop: int = 64, seed: int = 0) -> torch.Tensor:
    """``(n, 3, crop, crop)`` random crops of the embedded training split, the same for the same ``seed``."""
    from src.dataset.datamodule import RandomCrops
    from src.dataset.sources import load_split

    if n < 1:
        raise UserError(f"--calibration-crops must be at least 1, got {n}")
    crops = RandomCrops(load_split("skimage", "train"), crop, n, seed=seed)
    return torch.stack([crops[i]["input"] for i in range(n)])


def quantization_table(checkpoints: Sequence[str], crops: int = 32, images: list | None = None) -> list[dict]:
    """One row per checkpoint and format: layers quantised, file and tensor bytes, test PSNR/SSIM, ΔPSNR."""
    from src.dataset.sources import load_split
    from src.models.checkpoint import load_model
    from src.testing.evaluate import checkpoint_filter, evaluate_images

    nets = [load_model(path) for path in checkpoints]  # a missing checkpoint fails before any work
    images = load_split("skimage", "test") if images is None else images
    calibration = calibration_crops(crops)
    rows = []
    for path, net in zip(checkpoints, nets):
        flt, convs = checkpoint_filter(net), len(conv_layers(net))
        half, bf16, dyn, static = cast_state(net, torch.float16), cast_state(net, torch.bfloat16), dynamic_int8(net), static_int8(net, calibration)
        variants = [("fp32", net, net.state_dict(), 0), ("fp16 weights", with_state(net, half), half, convs),
                    ("bf16 weights", with_state(net, bf16), bf16, convs),
                    ("int8 weight-only", quantize_weights_int8(net), int8_weight_state(net), convs),
                    ("int8 dynamic", dyn, dyn.state_dict(), quantized_layers(dyn)),
                    ("int8 static", static, static.state_dict(), quantized_layers(static))]
        base = None
        for fmt, qnet, state, layers in variants:
            _, mean = evaluate_images(qnet, flt, images, backend="torch")  # never the OpenCV stand-in
            base = mean["psnr"] if base is None else base  # the fp32 row comes first
            rows.append({"checkpoint": str(path), "model": f"{net.meta['model']} / {flt.key}", "format": fmt,
                         "layers_quantised": layers, "conv_layers": convs, "file_bytes": serialized_size(state),
                         "tensor_bytes": tensor_bytes(state), "psnr": mean["psnr"], "delta_psnr": mean["psnr"] - base,
                         "ssim": mean["ssim"], "zero_psnr": mean["zero_psnr"]})
    return rows


def format_markdown(rows: list[dict], crops: int) -> str:
    """The table as Markdown, with the footnotes that say how each number was measured."""
    lines = ["| model | format | layers quantised | file size (bytes) | tensor bytes | test PSNR (dB) | ΔPSNR (dB) | SSIM |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['format']} | {r['layers_quantised']} of {r['conv_layers']} | {r['file_bytes']:,} "
                     f"| {r['tensor_bytes']:,} | {r['psnr']:.2f} | {round(r['delta_psnr'], 2) + 0.0:+.2f} | {r['ssim']:.4f} |")
    zeros = "; ".join(dict.fromkeys(f"{r['model']} {r['zero_psnr']:.2f} dB" for r in rows))
    lines += [
        "",
        "- File size: `len` of `torch.save(state_dict, BytesIO)`; the zip container adds several hundred bytes per "
        "tensor, which dominates for a net of 55 parameters. Tensor bytes: the tensor data alone.",
        "- fp16 / bf16 weights: every float tensor (BatchNorm statistics too) stored at 16 bits and cast back to "
        "float32 to compute: CPU torch has no fast fp16 convolution.",
        "- int8 weight-only: conv weights symmetric per output channel, int8 plus a float32 scale per channel, "
        "dequantised at load; biases and BatchNorm stay float32; fp32 compute.",
        "- int8 dynamic: `torch.ao.quantization.quantize_dynamic` with its default layer set covers Linear and "
        "recurrent layers, not convolutions, so these nets are left unchanged (0 layers).",
        f"- int8 static: eager-mode post-training quantisation on the `{quantized_engine()}` engine; each conv runs as "
        f"QuantStub -> int8 conv -> DeQuantStub, observers calibrated on {crops} random 64x64 training crops; "
        "per-channel weights for Conv2d, per-tensor for ConvTranspose2d; padding, sqrt, BatchNorm and clamps stay float.",
        "- PSNR / SSIM: embedded test split at native resolution, every format through torch (not the OpenCV runtime); "
        f"ΔPSNR against fp32 of the same checkpoint. Predicting all zeros scores: {zeros}.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.testing.quantize", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", nargs="+", default=["models/sobel.ckpt", "models/autoencoder.ckpt"])
    ap.add_argument("--calibration-crops", type=int, default=32, help="random 64x64 training crops for int8 static")
    ap.add_argument("--out", default="figures/quantize", help="writes OUT.csv and OUT.md")
    args = ap.parse_args(argv)
    with warnings.catch_warnings():  # torch.ao announces its own deprecation at every call
        warnings.filterwarnings("ignore", message=r"(?is).*\bdeprecated\b")
        rows = quantization_table(args.checkpoint, args.calibration_crops)
    table = format_markdown(rows, args.calibration_crops)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(f"{args.out}.csv", buf.getvalue().encode())
    atomic_write_bytes(f"{args.out}.md", (table + "\n").encode())
    print(table)
    print(f"wrote {args.out}.csv and {args.out}.md")
    return 0


if __name__ == "__main__":
    run_cli(main)
