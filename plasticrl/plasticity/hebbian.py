"""Generalised Hebbian "ABCD" rule (Najarro & Risi 2020): dW = eta*(A*y*x + B*x + C*y + D)."""
from __future__ import annotations

import torch

from plasticrl.plasticity.modulation import modulate


def hebbian_abcd_update(
    pre: torch.Tensor,
    post: torch.Tensor,
    A: torch.Tensor | float,
    B: torch.Tensor | float,
    C: torch.Tensor | float,
    D: torch.Tensor | float,
    eta: torch.Tensor | float,
    modulator: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weight change ``[N, out, in]`` for presynaptic ``pre [N, in]`` and postsynaptic ``post [N, out]``.

    Coefficients broadcast against ``[N, out, in]``: per synapse ``[N, out, in]``, per
    post-neuron ``[N, out, 1]``, per layer or global ``[N, 1, 1]`` (or plain floats).
    With a ``modulator`` (``[N]`` or ``[N, out]``) this is the three-factor form ``m * dW``.
    """
    x = pre.unsqueeze(-2)  # [N, 1, in]
    y = post.unsqueeze(-1)  # [N, out, 1]
    term = A * (y * x) + B * x + C * y + D
    return modulate(eta * term, modulator)
