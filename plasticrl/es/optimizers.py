"""Functional optimisers for the search-distribution centre (pure: state in, state out).

Both work on *ascent* directions: ES estimates the gradient of expected fitness,
which is maximised, so callers pass the direction to climb.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["adam_step", "clipup_step"]


def adam_step(
    params: Tensor,
    ascent: Tensor,
    m: Tensor,
    v: Tensor,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> tuple[Tensor, Tensor, Tensor]:
    """One Adam step (Kingma & Ba 2015) that climbs ``ascent``.

    ``step`` is the 1-based count of this update (for bias correction).
    Returns ``(new_params, new_m, new_v)``; inputs are not modified.
    """
    m = beta1 * m + (1.0 - beta1) * ascent
    v = beta2 * v + (1.0 - beta2) * ascent * ascent
    m_hat = m / (1.0 - beta1**step)
    v_hat = v / (1.0 - beta2**step)
    return params + lr * m_hat / (v_hat.sqrt() + eps), m, v


def clipup_step(
    params: Tensor,
    ascent: Tensor,
    velocity: Tensor,
    lr: float,
    momentum: float,
    max_speed: float,
) -> tuple[Tensor, Tensor]:
    """One ClipUp step (Toklu et al. 2020): normalised gradient, heavy-ball momentum, speed clipping.

    ``velocity <- momentum * velocity + lr * ascent / ||ascent||``; if ``||velocity|| > max_speed``
    it is rescaled to ``max_speed``; ``params <- params + velocity``. Normalising the gradient
    makes the step size independent of the fitness scale, and the speed limit bounds how far
    the centre can move in one generation. A zero gradient contributes nothing (no 0/0).
    Returns ``(new_params, new_velocity)``.
    """
    tiny = torch.finfo(ascent.dtype).tiny
    # Clamping the norm away from 0 turns a zero gradient into a zero direction (0 / tiny = 0)
    # without a data-dependent branch, which would force a device sync on CUDA.
    direction = ascent / torch.linalg.vector_norm(ascent).clamp_min(tiny)
    velocity = momentum * velocity + lr * direction
    scale = (max_speed / torch.linalg.vector_norm(velocity).clamp_min(tiny)).clamp(max=1.0)
    velocity = velocity * scale
    return params + velocity, velocity
