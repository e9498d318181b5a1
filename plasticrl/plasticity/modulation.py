"""Third factors: how a modulatory signal gates a rule's weight change.

Sources (the policy picks one by config):
- ``reward``: the environment's reward, scaled.
- ``rpe``: reward-prediction error, reward minus a running baseline of past rewards.
- ``neurons``: modulatory neurons inside the network (SpikePropamine, Hays et al. 2021)
  that read their layer's input activity and the reward and emit one signal per layer or
  one per post-neuron.
An eligibility trace lets a rule's term wait for a delayed modulator.
"""
from __future__ import annotations

import torch

MODULATION_SOURCES = ("none", "reward", "rpe", "neurons")
MODULATOR_SCOPES = ("layer", "post")


def modulate(delta: torch.Tensor, modulator: torch.Tensor | None) -> torch.Tensor:
    """Multiply a weight change ``[N, out, in]`` by ``m`` of shape ``[N]`` or ``[N, out]``."""
    if modulator is None:
        return delta
    if modulator.dim() == 1:
        return delta * modulator.view(-1, 1, 1)
    return delta * modulator.unsqueeze(-1)


def eligibility_step(trace: torch.Tensor, term: torch.Tensor, decay: float | torch.Tensor) -> torch.Tensor:
    """``e <- lambda * e + term``: the rule's term accumulated and forgotten at rate ``lambda``."""
    return decay * trace + term


def rpe_step(
    reward: torch.Tensor, baseline: torch.Tensor, rate: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reward-prediction error against a running baseline.

    Returns ``(reward - baseline, new_baseline)`` with ``new_baseline = baseline +
    rate * (reward - baseline)``: the error uses the baseline from before this reward.
    """
    error = reward - baseline
    return error, baseline + rate * error


def modulatory_neurons(
    activity: torch.Tensor, reward: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Signal of modulatory neurons: ``tanh(W_m [activity, reward] + b_m)``.

    ``activity [N, in]`` (the layer's presynaptic traces), ``reward [N]``,
    ``weights [N, n_mod, in + 1]``, ``bias [N, n_mod]``. ``n_mod = 1`` gives one signal per
    layer (returned as ``[N]``), ``n_mod = out`` one per post-neuron (``[N, out]``).
    """
    source = torch.cat([activity, reward.unsqueeze(-1)], dim=-1)
    drive = torch.bmm(weights, source.unsqueeze(-1)).squeeze(-1) + bias
    signal = torch.tanh(drive)
    return signal.squeeze(-1) if signal.shape[-1] == 1 else signal
