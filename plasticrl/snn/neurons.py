"""Neuron models as pure step functions over explicit state.

Each step takes an input current, the previous state and the parameters, and returns
``(output, new_state)``. The membrane update ``v <- beta*v + (1-beta)*I`` with
``beta = exp(-dt/tau_mem)`` is the exact solution of ``tau dv/dt = -v + I`` for input held
constant over the step, so trajectories match the analytic exponential at the sample points
whatever ``dt`` is.

Parameters may be Python floats or tensors broadcastable to the state (per-member or
per-neuron constants from a genome).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Union

import torch

from plasticrl.errors import check_choice
from plasticrl.snn.surrogate import spike_fn

Scalar = Union[float, torch.Tensor]
RESET_MODES = ("zero", "subtract")


def decay_factor(dt: float, tau: Scalar) -> Scalar:
    """``exp(-dt/tau)``: the per-step retention of a leaky variable with time constant ``tau``."""
    if isinstance(tau, torch.Tensor):
        return torch.exp(-dt / tau)
    return math.exp(-dt / tau)


class LIFParameters(NamedTuple):
    """Leaky integrate-and-fire constants (times in seconds, potentials in threshold units)."""

    tau_mem: Scalar = 0.02
    v_th: Scalar = 1.0
    reset: str = "subtract"
    refractory: float = 0.0
    surrogate_slope: float = 10.0


class LIFState(NamedTuple):
    v: torch.Tensor
    refractory_left: torch.Tensor  # remaining refractory steps (0 = free to integrate)


class ALIFParameters(NamedTuple):
    """Adaptive-threshold LIF: threshold ``v_th + beta_adapt * a`` with ``a`` a spike trace.

    Follows the form of Bellec et al. 2018: ``a <- rho*a + (1-rho)*s``,
    ``rho = exp(-dt/tau_adapt)``.
    """

    tau_mem: Scalar = 0.02
    v_th: Scalar = 1.0
    tau_adapt: Scalar = 0.2
    beta_adapt: Scalar = 1.0
    reset: str = "subtract"
    refractory: float = 0.0
    surrogate_slope: float = 10.0


class ALIFState(NamedTuple):
    v: torch.Tensor
    a: torch.Tensor
    refractory_left: torch.Tensor


class LIState(NamedTuple):
    v: torch.Tensor


def lif_initial_state(shape: tuple[int, ...], device=None, dtype=torch.float32) -> LIFState:
    zeros = torch.zeros(shape, device=device, dtype=dtype)
    return LIFState(v=zeros, refractory_left=zeros.clone())


def alif_initial_state(shape: tuple[int, ...], device=None, dtype=torch.float32) -> ALIFState:
    zeros = torch.zeros(shape, device=device, dtype=dtype)
    return ALIFState(v=zeros, a=zeros.clone(), refractory_left=zeros.clone())


def _integrate_fire_reset(
    current: torch.Tensor,
    v: torch.Tensor,
    refractory_left: torch.Tensor,
    beta: Scalar,
    threshold: Scalar,
    reset: str,
    refractory: float,
    dt: float,
    slope: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    v_new = torch.lerp(v, current, 1.0 - beta)  # = beta*v + (1-beta)*I in one pass
    if refractory > 0.0:
        free = refractory_left <= 0
        v_new = torch.where(free, v_new, v)
    spikes = spike_fn(v_new - threshold, slope)
    if refractory > 0.0:
        spikes = spikes * free
        steps = float(round(refractory / dt))
        refractory_left = torch.where(spikes > 0, torch.full_like(v, steps), (refractory_left - 1.0).clamp_min(0.0))
    if reset == "zero":
        v_new = v_new * (1.0 - spikes)
    elif reset == "subtract":
        v_new = v_new - spikes * threshold
    else:
        check_choice("reset mode", reset, RESET_MODES)
    return spikes, v_new, refractory_left


def lif_step(
    current: torch.Tensor, state: LIFState, params: LIFParameters, dt: float
) -> tuple[torch.Tensor, LIFState]:
    """One LIF step: integrate, spike where ``v > v_th``, reset, count down refractoriness."""
    beta = decay_factor(dt, params.tau_mem)
    spikes, v, ref = _integrate_fire_reset(
        current, state.v, state.refractory_left, beta, params.v_th,
        params.reset, params.refractory, dt, params.surrogate_slope,
    )
    return spikes, LIFState(v=v, refractory_left=ref)


def alif_step(
    current: torch.Tensor, state: ALIFState, params: ALIFParameters, dt: float
) -> tuple[torch.Tensor, ALIFState]:
    """One ALIF step: as LIF, with a threshold raised by recent spikes of the same neuron."""
    beta = decay_factor(dt, params.tau_mem)
    rho = decay_factor(dt, params.tau_adapt)
    threshold = params.v_th + params.beta_adapt * state.a
    spikes, v, ref = _integrate_fire_reset(
        current, state.v, state.refractory_left, beta, threshold,
        params.reset, params.refractory, dt, params.surrogate_slope,
    )
    a = rho * state.a + (1.0 - rho) * spikes
    return spikes, ALIFState(v=v, a=a, refractory_left=ref)


def li_step(current: torch.Tensor, state: LIState, tau_mem: Scalar, dt: float) -> tuple[torch.Tensor, LIState]:
    """Leaky integrator without spikes, used as a membrane-potential readout."""
    beta = decay_factor(dt, tau_mem)
    v = torch.lerp(state.v, current, 1.0 - beta)
    return v, LIState(v=v)


def trace_step(trace: torch.Tensor, spikes: torch.Tensor, decay: Scalar) -> torch.Tensor:
    """Spike trace: decays by ``decay`` per step and jumps by 1 at each spike."""
    return decay * trace + spikes
