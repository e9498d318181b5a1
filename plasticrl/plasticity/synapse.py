"""One plastic synapse layer as a pure step over explicit state (the functional half of a cell).

A policy's plastic layer keeps a :class:`SynapseState` per episode row block (fast weights, the pre/post
activity its rule reads, the BCM threshold and the eligibility trace where the configuration has them) and
a :class:`SynapseSettings` fixed at construction; :func:`synapse_step` maps state, the layer's rule
coefficients and the modulator of this control step to the next state. The policies own only what is not
the synapse's: which layers are plastic, where the activity comes from, the modulator, and what happens to a
row whose weights stopped being finite. The fused CPU kernels compute the same step in numba.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import torch

from plasticrl.plasticity.bcm import bcm_threshold_step
from plasticrl.plasticity.bounds import bound_weights
from plasticrl.plasticity.modulation import eligibility_step, modulate, rpe_step
from plasticrl.plasticity.rules import rule_delta


class SynapseState(NamedTuple):
    """State of one plastic layer over ``N`` rows."""

    #: Fast weights ``[N, out, in]``.
    weights: torch.Tensor
    #: Presynaptic activity the rule reads ``[N, in]`` (a rate trace, a current or a tanh unit).
    pre: torch.Tensor
    #: Postsynaptic activity ``[N, out]``.
    post: torch.Tensor
    #: BCM sliding threshold ``[N, out]`` (None for the other rules).
    theta: torch.Tensor | None = None
    #: Eligibility trace ``[N, out, in]`` (None without ``plasticity.eligibility_tau``).
    eligibility: torch.Tensor | None = None


@dataclass(frozen=True)
class SynapseSettings:
    """What does not change during a run: the rule, the bound and the per-control-step decays."""

    #: Registered rule name (:data:`plasticrl.plasticity.RULES`).
    rule: str
    #: ``none``, ``clip`` or ``normalise`` (applied after every update).
    bounds: str
    #: The bound's limit.
    weight_limit: float
    #: Per-control-step decay of the BCM threshold (unused by the other rules).
    theta_keep: float = 0.0
    #: Per-control-step decay of the eligibility trace; None: the modulator gates the rule's term directly.
    eligibility_keep: float | None = None


def synapse_step(state: SynapseState, settings: SynapseSettings, coefficients: Mapping[str, torch.Tensor | float],
                 modulator: torch.Tensor | None) -> SynapseState:
    """The layer after one control step of plasticity.

    Without an eligibility trace the weights move by the rule's change gated by ``modulator`` (``[N]`` or
    ``[N, out]``, None: ungated); with one, the ungated change accumulates in the trace and the modulator
    gates the trace. Then the bound applies, and the BCM threshold moves toward ``post**2`` (after the
    change, which used the threshold from before it)."""
    if settings.eligibility_keep is None:
        delta = rule_delta(settings.rule, state.pre, state.post, state.weights, coefficients, state.theta, modulator)
        eligibility = state.eligibility
    else:
        term = rule_delta(settings.rule, state.pre, state.post, state.weights, coefficients, state.theta, None)
        eligibility = eligibility_step(state.eligibility, term, settings.eligibility_keep)
        delta = modulate(eligibility, modulator)
    weights = bound_weights(state.weights + delta, settings.bounds, settings.weight_limit)
    theta = None if state.theta is None else bcm_threshold_step(state.theta, state.post, settings.theta_keep)
    return SynapseState(weights, state.pre, state.post, theta, eligibility)


def global_modulator(source: str, reward: torch.Tensor, gain: torch.Tensor | None,
                     baseline: torch.Tensor | None, rpe_rate: float) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The modulator shared by every plastic layer, and the next RPE baseline: ``gain * reward`` for
    ``reward``, ``gain * (reward - baseline)`` for ``rpe`` (the baseline then moves toward the reward),
    None otherwise (``none``; ``neurons`` computes one per layer from its own input)."""
    if source == "reward":
        return gain * reward, baseline
    if source == "rpe":
        error, baseline = rpe_step(reward, baseline, rpe_rate)
        return gain * error, baseline
    return None, baseline
