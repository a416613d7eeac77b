"""Lower-precision copies of a network: fp16/bf16 weights, int8 weight-only, int8 dynamic and int8 static
(eager-mode post-training quantisation), and their sizes. The table that compares them is
:mod:`src.studies.quantize`.

May import: :mod:`src.errors` (plain ``nn.Module``s in, ``nn.Module``s out).
"""
from __future__ import annotations

import copy
import io

import torch
import torch.ao.quantization as tq
import torch.nn as nn

from src.errors import UserError

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


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
