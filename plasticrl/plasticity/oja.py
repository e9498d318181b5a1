"""Oja's rule: Hebbian growth with a weight-proportional decay that keeps ||w|| bounded."""
from __future__ import annotations

import torch

from plasticrl.plasticity.modulation import modulate


def oja_update(
    pre: torch.Tensor,
    post: torch.Tensor,
    weights: torch.Tensor,
    eta: torch.Tensor | float,
    modulator: torch.Tensor | None = None,
) -> torch.Tensor:
    """``dW = eta * y * (x - y * W)`` for ``pre [N, in]``, ``post [N, out]``, ``weights [N, out, in]``."""
    x = pre.unsqueeze(-2)
    y = post.unsqueeze(-1)
    return modulate(eta * y * (x - y * weights), modulator)
