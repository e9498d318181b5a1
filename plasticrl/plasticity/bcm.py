"""BCM rule with a sliding modification threshold (Bienenstock, Cooper & Munro 1982).

``dW = eta * x * y * (y - theta)``; ``theta`` follows a running average of ``y^2`` with its own
time constant, so a neuron that fires a lot raises its threshold and turns potentiation into
depression: the rule is self-stabilising without an explicit weight bound.
"""
from __future__ import annotations

import torch



def bcm_update(
    pre: torch.Tensor,
    post: torch.Tensor,
    theta: torch.Tensor,
    eta: torch.Tensor | float,
    modulator: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weight change ``[N, out, in]``; ``theta [N, out]`` is the per-neuron threshold."""
    phi = post * (post - theta)  # [N, out]
    if modulator is not None:
        # m multiplies the small [N, out] factor instead of the full [N, out, in] change.
        phi = phi * (modulator.unsqueeze(-1) if modulator.dim() == 1 else modulator)
    return eta * (phi.unsqueeze(-1) * pre.unsqueeze(-2))


def bcm_threshold_step(theta: torch.Tensor, post: torch.Tensor, decay: float | torch.Tensor) -> torch.Tensor:
    """Move ``theta`` toward ``y^2``: an exponential running estimate of ``E[y^2]``.

    ``decay = exp(-dt / tau_theta)``; with constant ``y`` the threshold converges to ``y^2``.
    """
    return decay * theta + (1.0 - decay) * post * post
