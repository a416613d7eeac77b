"""The networks, as plain ``nn.Module``s: float ``(B, 3, H, W)`` in [0, 1] -> ``(B, C, H, W)``.

Every network states ``receptive_radius`` (pixels of context each side, the halo tiled inference
needs) and ``min_size`` (smallest input side it accepts; ``predict`` pads smaller inputs).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from src.errors import UserError
from src.filters.functional import BT601, max_gradient_magnitude, pad_reflect101
from src.filters.sobel import sobel_kernels
from src.models.bilateral_grid import BilateralGridNet
from src.models.guided import GuidedUpsamplingNet
from src.models.can import ContextAggregationNet
from src.models.layers import clamp01_straight_through
from src.models.pix2pix import UNetGenerator


class SeedAutoencoder(nn.Module):
    """The seed repository's autoencoder, layer for layer (its README's ``Net``): the baseline.

    conv 3->16 3x3, BN, ReLU; conv 16->32 3x3, BN, ReLU; transposed 32->16 3x3, BN, ReLU;
    transposed 16->1 3x3, BN, ReLU. No padding: the convolutions shrink by 4, the transposed
    convolutions grow back, so the output has the input's size (for inputs of at least 5x5).
    """

    receptive_radius = 4
    min_size = 5

    def __init__(self, in_channels: int = 3, out_channels: int = 1):
        super().__init__()
        self.config = dict(in_channels=in_channels, out_channels=out_channels)
        self.out_channels = out_channels
        self.conv1 = nn.Conv2d(in_channels, 16, 3)
        self.batch_norm1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3)
        self.batch_norm2 = nn.BatchNorm2d(32)
        self.trans_conv1 = nn.ConvTranspose2d(32, 16, 3)
        self.batch_norm3 = nn.BatchNorm2d(16)
        self.trans_conv2 = nn.ConvTranspose2d(16, out_channels, 3)
        self.batch_norm4 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.batch_norm1(self.conv1(x)))
        x = F.relu(self.batch_norm2(self.conv2(x)))
        x = F.relu(self.batch_norm3(self.trans_conv1(x)))
        return F.relu(self.batch_norm4(self.trans_conv2(x)))


class MirrorConv2d(nn.Conv2d):
    """A bias-free ``Conv2d`` whose kernels are mirror-symmetric along one axis, exactly, by construction.

    ``parity`` holds one value per output channel: ``+1`` even (``w == flip(w)``), ``-1`` odd
    (``w == -flip(w)``, an exact 0 in the middle), ``0`` free. The stored ``weight`` is free; every
    forward uses :meth:`projected`, ``(w + parity * flip(w)) / 2``, which is exact in float32 (mirrored
    entries come out equal, or exactly opposite), so OpenCV's separable filters recognise the
    symmetry of the exported factors and run their faster symmetric kernels.

    >>> conv = MirrorConv2d(2, 2, (1, 5), groups=2, axis=3, parity=[-1, 1])
    >>> w = conv.projected().detach()
    >>> bool((w[0] == -w[0].flip(2)).all()), float(w[0, 0, 0, 2]), bool((w[1] == w[1].flip(2)).all())
    (True, 0.0, True)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, groups: int = 1, axis: int = 3,
                 parity: list[float] | None = None):
        super().__init__(in_channels, out_channels, kernel_size, groups=groups, bias=False)
        self.axis = axis
        parity = [0.0] * out_channels if parity is None else [float(p) for p in parity]
        self.register_buffer("parity", torch.tensor(parity).view(-1, 1, 1, 1), persistent=False)

    def projected(self) -> torch.Tensor:
        return (self.weight + self.parity * self.weight.flip(self.axis)) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.projected(), None)


class CompactNet(nn.Module):
    """A learned filter bank with an energy non-linearity, built for gradient-magnitude filters.

    ``x -> 1x1 colour mix (3 -> mix) -> k x k filter bank with reflect-101 padding
    -> per pair of responses sqrt(u^2 + v^2) (plus ``linear`` responses passed through)
    -> 1x1 head (optionally one hidden ReLU layer) -> clamp to [0, 1]``.

    With the defaults (one learned colour projection, one 5x5 pair) it holds 55 parameters and can
    represent the blurred Sobel magnitude exactly: gray, blur and Sobel are linear, so gx and gy are two
    5x5 correlations of one gray channel, and the pair's energy is their magnitude. Training has to
    find those weights; :func:`exact_sobel_net` sets them by hand (the ceiling). ``mix=0`` lets the bank
    see the RGB channels directly (152 parameters, three times the convolution work at inference).
    ``separable=True`` makes every bank kernel a column times a row (k + k weights instead of k * k: 25
    parameters by default); blurred Sobel kernels are separable, so the exact solution stays reachable.
    ``symmetric=True`` (separable only) ties each factor to a mirror symmetry, the structure of every
    blurred-derivative pair (:class:`MirrorConv2d`): in a pair, the first response's row factor is odd
    and its column even (an x derivative), the second's the reverse (a y derivative); a linear response
    is even both ways. 15 parameters by default; Sobel, Scharr and their blurred forms stay reachable, and
    OpenCV runs the exactly symmetric factors with fewer multiplications (``make bench``).
    :meth:`bank_kernels` gives the effective ``k x k`` kernels either way, :meth:`bank_factors` the factors.
    """

    min_size = 1

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        mix: int = 1,
        kernel_size: int = 5,
        pairs: int = 1,
        linear: int = 0,
        hidden: int = 0,
        eps: float = 1e-12,
        padding: str = "reflect",
        separable: bool = False,
        symmetric: bool = False,
    ):
        super().__init__()
        if kernel_size % 2 == 0 or kernel_size < 1:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        if pairs + linear < 1:
            raise ValueError("need at least one pair or one linear response")
        if symmetric and not separable:
            raise ValueError("symmetric=True needs separable=True (the symmetry is one of the column and row factors)")
        if padding not in ("reflect", "zeros"):
            raise ValueError(f"padding must be 'reflect' (reflect-101, the target's rule) or 'zeros', got {padding!r}")
        self.config = dict(in_channels=in_channels, out_channels=out_channels, mix=mix, kernel_size=kernel_size,
                           pairs=pairs, linear=linear, hidden=hidden, eps=eps, padding=padding,
                           separable=separable, symmetric=symmetric)
        self.padding = padding
        self.out_channels, self.pairs, self.linear, self.eps = out_channels, pairs, linear, eps
        self.receptive_radius = kernel_size // 2
        # mix=0: no colour mixing, the filter bank sees the RGB channels directly.
        self.mix = nn.Conv2d(in_channels, mix, 1, bias=False) if mix else nn.Identity()
        responses = 2 * pairs + linear
        if separable and symmetric:  # a pair's u: even columns, odd rows (d/dx); v: the reverse; linear: even
            even, odd = [1.0] * pairs, [-1.0] * pairs
            self.bank = MirrorConv2d(mix or in_channels, responses, (kernel_size, 1), axis=2,
                                     parity=even + odd + [1.0] * linear)
            self.bank_rows = MirrorConv2d(responses, responses, (1, kernel_size), groups=responses, axis=3,
                                          parity=odd + even + [1.0] * linear)
        elif separable:  # columns (k x 1, per input channel), then rows (1 x k, one per response)
            self.bank = nn.Conv2d(mix or in_channels, responses, (kernel_size, 1), bias=False)
            self.bank_rows = nn.Conv2d(responses, responses, (1, kernel_size), groups=responses, bias=False)
        else:
            self.bank = nn.Conv2d(mix or in_channels, responses, kernel_size, bias=False)
            self.bank_rows = None
        features = pairs + linear
        if hidden:
            self.head = nn.Sequential(nn.Conv2d(features, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, out_channels, 1))
        else:
            self.head = nn.Conv2d(features, out_channels, 1)
            nn.init.constant_(self.head.weight, 1.0 / features)
            nn.init.zeros_(self.head.bias)

    def _mix(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.mix, nn.Conv2d):
            return self.mix(x)  # Identity (mix=0), or a wrapped conv (src.studies.quantize)
        w = self.mix.weight  # (mix, 3, 1, 1)
        if w.shape[0] == 1:  # same as the 1x1 conv, ~10x faster on CPU for one output channel
            return (x * w.view(1, -1, 1, 1)).sum(1, keepdim=True)
        return self.mix(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.receptive_radius
        z = self._mix(x)
        # reflect-101 is the target's own border rule; "zeros" is the ablation (question 2 in the README)
        y = self.bank(pad_reflect101(z, r) if self.padding == "reflect" else F.pad(z, (r, r, r, r)))
        if self.bank_rows is not None:
            y = self.bank_rows(y)
        p = self.pairs
        u, v, lin = y[:, :p], y[:, p : 2 * p], y[:, 2 * p :]
        # eps keeps the gradient of sqrt finite on flat patches; inference computes the exact magnitude.
        eps = self.eps if torch.is_grad_enabled() else 0.0
        energy = torch.sqrt(u * u + v * v + eps)
        z = torch.cat([energy, lin], 1) if self.linear else energy
        return clamp01_straight_through(self.head(z))

    def bank_kernels(self) -> torch.Tensor:
        """The bank's effective correlation kernels, ``(2 * pairs + linear, mix or in_channels, k, k)``."""
        if self.bank_rows is None:
            return self.bank.weight
        cols, rows = self.bank_factors()
        return cols * rows  # (O, C, k, 1) * (O, 1, 1, k): column times row

    def bank_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A separable bank's factors as the forward applies them: ``(columns (O, C, k, 1), rows (O, 1, 1, k))``."""
        if self.bank_rows is None:
            raise ValueError("bank_factors() needs a separable net")
        return tuple(m.projected() if isinstance(m, MirrorConv2d) else m.weight for m in (self.bank, self.bank_rows))


def exact_sobel_net(filter_params: dict | None = None) -> CompactNet:
    """A :class:`CompactNet` with hand-set weights that computes the Sobel target (clip normalisation)."""
    p = dict(blur=True, ksize=3, blur_ksize=3, normalize="clip") | (filter_params or {})
    kx, ky = sobel_kernels(p["ksize"], p["blur"], p["blur_ksize"])
    net = CompactNet(kernel_size=kx.shape[0])
    scale = 1.0
    if p["normalize"] == "max":

        scale = 1.0 / max_gradient_magnitude(kx, ky)
    with torch.no_grad():
        net.mix.weight.copy_(torch.tensor(BT601).view(1, 3, 1, 1))
        net.bank.weight.copy_(torch.from_numpy(np.stack([kx, ky])[:, None]).float())
        net.head.weight.fill_(scale)
        net.head.bias.zero_()
    return net.eval()


# Networks by name, for the CLI, the notebooks and the demo. Pix2Pix's U-Net appears twice: "pix2pix" is
# trained with GAN + L1 (Pix2PixModule), "unet" with L1 only (the ablation).
MODELS: dict[str, type[nn.Module]] = {
    "compact": CompactNet,
    "autoencoder": SeedAutoencoder,
    "can": ContextAggregationNet,
    "pix2pix": UNetGenerator,
    "unet": UNetGenerator,
    "bilateral-grid": BilateralGridNet,
    "hdrnet": BilateralGridNet,  # the paper's name for the same network
    "guided-upsampling": GuidedUpsamplingNet,
    "dgf": GuidedUpsamplingNet,  # the paper's name (deep guided filter)
}


# Hyper-parameter bounds, checked before a network named in a data file (a checkpoint) is built: a few bytes
# of metadata must not be able to ask for gigabytes. Each entry: (type, low, high) or (type, choices).
_CHANNELS = (int, 3, 3)
LIMITS: dict[str, dict[str, tuple]] = {
    "compact": {"in_channels": _CHANNELS, "mix": (int, 0, 16), "kernel_size": (int, 1, 31), "pairs": (int, 0, 32),
                "linear": (int, 0, 32), "hidden": (int, 0, 256), "eps": (float, 0.0, 1.0),
                "padding": (str, ("reflect", "zeros")), "separable": (bool, (True, False)),
                "symmetric": (bool, (True, False))},
    "autoencoder": {"in_channels": _CHANNELS},
    "can": {"in_channels": _CHANNELS, "width": (int, 1, 256), "depth": (int, 3, 16), "norm": (bool, (True, False)),
            "residual": (bool, (True, False, None))},
    "pix2pix": {"in_channels": _CHANNELS, "depth": (int, 2, 10), "ngf": (int, 1, 128), "dropout": (float, 0.0, 1.0),
                "output": (str, ("clamp", "tanh")), "norm": (str, ("batch", "group"))},
}
LIMITS["unet"] = LIMITS["pix2pix"]
LIMITS["bilateral-grid"] = LIMITS["hdrnet"] = {
    "in_channels": _CHANNELS, "grid": (int, 1, 64), "bins": (int, 1, 32), "low_res": (int, 2, 1024),
    "width": (int, 1, 64), "guide_width": (int, 1, 64), "cell": (int, 0, 256), "down": (int, 1, 32),
    "stats": (bool, (True, False))}
LIMITS["guided-upsampling"] = LIMITS["dgf"] = {
    "in_channels": _CHANNELS, "scale": (int, 1, 32), "width": (int, 1, 128), "depth": (int, 3, 12),
    "radius": (int, 0, 8), "eps": (float, 1e-8, 1.0)}
MAX_OUT_CHANNELS = 4


def check_model_config(name: str, out_channels: object, kwargs: dict) -> None:
    """Refuse an unknown model, an unknown hyper-parameter, a wrong type or a value out of :data:`LIMITS`."""
    if name not in MODELS:
        raise UserError(f"model {name!r} is not one of {sorted(MODELS)}")
    if type(out_channels) is not int or not 1 <= out_channels <= MAX_OUT_CHANNELS:
        raise UserError(f"out_channels must be an int in 1..{MAX_OUT_CHANNELS}, got {out_channels!r}")
    for key, value in kwargs.items():
        limit = LIMITS[name].get(key)
        if limit is None:
            raise UserError(f"model_kwargs: {key!r} is not a hyper-parameter of a {name!r} network "
                            f"(known: {', '.join(sorted(LIMITS[name]))})")
        kind, *bounds = limit
        if len(bounds) == 1:
            if value not in bounds[0] or type(value) not in (kind, type(None)):
                raise UserError(f"model_kwargs: {key}={value!r} is not one of {bounds[0]}")
            continue
        ok_type = type(value) is int or (kind is float and type(value) is float)
        if not ok_type or not bounds[0] <= value <= bounds[1]:
            raise UserError(f"model_kwargs: {key}={value!r} is not a {kind.__name__} in {bounds[0]}..{bounds[1]}")


def build_model(name: str, out_channels: int = 1, **kwargs) -> nn.Module:
    """Build the network registered as ``name`` (``compact``, ``autoencoder``, ...)."""
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    try:
        return MODELS[name](out_channels=out_channels, **kwargs)
    except TypeError as exc:
        raise UserError(f"model {name!r}: {exc}") from None


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
