"""Small building blocks shared by the networks."""
from __future__ import annotations

import torch


def clamp01_straight_through(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] in value, identity in gradient, so an overshoot is still pulled back."""
    if not torch.is_grad_enabled():
        return x.clamp(0.0, 1.0)
    return x + (x.clamp(0.0, 1.0) - x).detach()
