"""Generalised advantage estimation (Schulman et al. 2016) over time-major rollouts.

Shapes are ``[T, N]`` (control steps x environment rows). The two done flags are separate on
purpose: ``terminated`` says the episode ended in a terminal state (no bootstrap, the value
of what follows is 0), ``done`` (terminated or truncated) says the next row entry belongs to
another episode, so the advantage recursion must not run across it. A truncated step still
bootstraps from ``next_values[t]``, the value of the observation that followed it.
"""
from __future__ import annotations

import torch

from plasticrl.errors import PlasticRLError, check_shape


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns (``advantages + values``), both ``[T, N]``.

    ``next_values[t]`` is V of the observation after step ``t`` (for the last step, the
    bootstrap value of the observation the rollout stopped at)::

        delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t
        A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1}
    """
    if not (0.0 <= gamma <= 1.0) or not (0.0 <= lam <= 1.0):
        raise PlasticRLError(f"gamma and lambda must lie in [0, 1]; got gamma={gamma!r}, lambda={lam!r}")
    if rewards.dim() != 2:
        raise PlasticRLError(f"rewards must be [T, N]; got shape {list(rewards.shape)}")
    shape = tuple(rewards.shape)
    for name, tensor in (("values", values), ("next_values", next_values), ("terminated", terminated),
                         ("done", done)):
        check_shape(name, tensor, shape)
    not_terminal = 1.0 - terminated.to(rewards.dtype)
    carry_on = 1.0 - done.to(rewards.dtype)
    deltas = rewards + gamma * not_terminal * next_values - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * carry_on[t] * running
        advantages[t] = running
    return advantages, advantages + values
