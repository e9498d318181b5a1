"""LIF neurons that sample from a Boltzmann distribution (neural sampling, first cut).

After Petrovici et al. (PRE 2016, "Stochastic inference with spiking neurons in the
high-conductance state"): a neuron's binary state is ``z_k = 1`` for ``tau_ref`` after each of
its spikes; with background noise its activation (the fraction of time with ``z_k = 1``
against its mean input ``mu``) is close to a logistic ``sigmoid((mu - mu0) / alpha)``, and
with synaptic kernels lasting about ``tau_ref`` the network samples ``p(z) ∝ exp(z^T W z / 2
+ b^T z)`` once biases and weights are translated through ``alpha`` and ``mu0``.

What this first cut simplifies (and says so):

* the high-conductance state is modelled by its effect, a very short effective membrane time
  constant ``tau_mem`` (the membrane follows its total input), not by conductance-based
  synapses; the Poisson background is replaced by its diffusion limit, an Ornstein-Uhlenbeck
  noise input of std ``sigma`` and correlation time ``tau_noise``;
* synapses are current kernels ``w * exp(-t / tau_syn)`` through *renewing* Tsodyks-Markram
  synapses (:mod:`plasticrl.snn.stp`, ``U = 1``, ``tau_rec = tau_syn``), so a burst of spikes
  refreshes the kernel to ``w`` instead of stacking it;
* weights are translated by matching the kernel's integral to a rectangular ``alpha * W``
  lasting ``tau_ref``: ``w = alpha * W * tau_ref / tau_syn``.

Short-term depression (issue 7, after Leng et al., Sci. Rep. 2018): with ``depression`` (a
depressing Tsodyks-Markram synapse per presynaptic neuron, ``U < 1``, ``tau_rec`` of tens to
hundreds of ms) each spike's kernel is still renewed, but to an amplitude ``u * x / U``: 1 for
a rested synapse (so a network that fires rarely samples the same Boltzmann distribution as
without STP) and below 1 while a neuron keeps firing, because its pool of resources ``x`` has
not recovered. A neuron that holds a mode for long thus weakens its own support and the
network leaves deep attractors. ``depress`` restricts this to some presynaptic neurons (for
example the hidden layer). Without ``depression`` the amplitude stays exactly 1.

Times in ms, potentials in threshold units. Batched over chains ``C``: state ``[C, n]``.
Training lives in :mod:`plasticrl.studies.sampling.rbm` and :mod:`plasticrl.studies.sampling.wake_sleep`.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from scipy.optimize import curve_fit

from plasticrl.errors import PlasticRLError
from plasticrl.snn.stp import (
    STPParameters,
    STPState,
    check_stp_parameters,
    stp_initial_state,
    stp_step,
)


class LIFSamplerParameters(NamedTuple):
    """Constants of the sampling network (ms, threshold units)."""

    dt: float = 0.1
    tau_mem: float = 0.1  # effective membrane time constant in the high-conductance state
    tau_ref: float = 10.0  # refractory period = how long a spike keeps z_k = 1
    tau_syn: float = 10.0  # synaptic kernel time constant (= tau_ref, as in neural sampling)
    tau_noise: float = 5.0  # correlation time of the background noise
    sigma: float = 1.0  # std of the background noise
    v_th: float = 1.0
    v_reset: float = 0.0


class LIFSamplerState(NamedTuple):
    v: torch.Tensor  # membrane potential [C, n]
    noise: torch.Tensor  # background noise input [C, n]
    refractory_left: torch.Tensor  # steps left with z = 1 [C, n]
    kernel: torch.Tensor  # synaptic kernel of each presynaptic neuron [C, n]
    synapse: STPState  # renewing Tsodyks-Markram state of each presynaptic neuron
    amplitude: torch.Tensor  # height the kernel was renewed to at the last spike [C, n] (1 without STP)
    depression: STPState  # depressing Tsodyks-Markram state of each presynaptic neuron (unused without STP)


class ActivationFit(NamedTuple):
    """Logistic fit ``p(z = 1) = sigmoid((mu - mu0) / alpha)`` of the measured activation."""

    alpha: float
    mu0: float
    max_residual: float  # largest |fit - measured| over the calibration grid


def _check(params: LIFSamplerParameters) -> None:
    for name in ("dt", "tau_mem", "tau_ref", "tau_syn", "tau_noise", "sigma"):
        if not getattr(params, name) > 0:
            raise PlasticRLError(f"LIF sampler parameter {name}={getattr(params, name)!r} is invalid; valid: > 0")
    if not params.v_reset < params.v_th:
        raise PlasticRLError(f"LIF sampler v_reset={params.v_reset!r} must be below v_th={params.v_th!r}")


def lif_sampler_initial_state(
    chains: int, n: int, params: LIFSamplerParameters, generator: torch.Generator, dtype=torch.float64
) -> LIFSamplerState:
    """All neurons off at rest, background noise drawn from its stationary distribution."""
    zeros = torch.zeros(chains, n, dtype=dtype)
    noise = params.sigma * torch.randn(chains, n, generator=generator, dtype=dtype)
    renewing = stp_initial_state((chains, n), 1.0, dtype=dtype)
    # the depression state starts rested (x = 1); its U is applied in the step, so 1.0 is a placeholder
    depression = stp_initial_state((chains, n), 1.0, dtype=dtype)
    return LIFSamplerState(zeros, noise, zeros.clone(), zeros.clone(), renewing, zeros + 1.0, depression)


def lif_sampler_step(
    mu: torch.Tensor, weights: torch.Tensor, state: LIFSamplerState, params: LIFSamplerParameters,
    generator: torch.Generator, depression: STPParameters | None = None, depress: torch.Tensor | None = None,
) -> tuple[torch.Tensor, LIFSamplerState]:
    """One step: returns ``(z [C, n], state)``; ``weights [n, n]`` are synaptic (target x source).

    ``depression``: optional depressing synapse of every presynaptic neuron (module docstring);
    ``depress [n]`` (bool) limits it to some presynaptic neurons.
    """
    keep_noise = math.exp(-params.dt / params.tau_noise)
    noise = keep_noise * state.noise + params.sigma * math.sqrt(1.0 - keep_noise ** 2) * torch.randn(
        state.noise.shape, generator=generator, dtype=state.noise.dtype)  # exact OU update
    current = mu + noise + (state.kernel * state.amplitude) @ weights.T
    free = state.refractory_left <= 0
    keep_v = math.exp(-params.dt / params.tau_mem)
    v = torch.where(free, current + (state.v - current) * keep_v, torch.full_like(state.v, params.v_reset))
    spikes = (free & (v > params.v_th)).to(v.dtype)
    ref_steps = float(round(params.tau_ref / params.dt))
    refractory_left = torch.where(spikes > 0, torch.full_like(v, ref_steps), state.refractory_left - 1.0)
    v = torch.where(spikes > 0, torch.full_like(v, params.v_reset), v)
    # renewing synapse: a spike tops the kernel up to 1 rather than adding a second kernel
    efficacy, synapse = stp_step(spikes, state.synapse, STPParameters(1.0, params.tau_syn, 0.0), params.dt)
    kernel = state.kernel * math.exp(-params.dt / params.tau_syn) + spikes * efficacy
    amplitude, depressed = state.amplitude, state.depression
    if depression is not None:
        # u * x / U: 1 for a rested synapse, the fraction of resources left after recent spikes otherwise
        released, depressed = stp_step(spikes, state.depression, depression, params.dt)
        height = released / depression.U
        if depress is not None:
            height = torch.where(depress, height, torch.ones_like(height))
        amplitude = torch.where(spikes > 0, height, amplitude)
    z = (refractory_left > 0).to(v.dtype)
    return z, LIFSamplerState(v, noise, refractory_left, kernel, synapse, amplitude, depressed)


def sample_lif(
    mu: torch.Tensor, weights: torch.Tensor, params: LIFSamplerParameters, chains: int, steps: int,
    burn_in: int, every: int, seed: int, depression: STPParameters | None = None,
    depress: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run ``chains`` independent networks from one seed.

    Returns the states ``[samples, chains, n]`` taken every ``every`` steps after ``burn_in``.
    ``depression`` / ``depress``: optional short-term depression (see :func:`lif_sampler_step`).
    """
    _check(params)
    n = weights.shape[0]
    if mu.shape[-1] != n:
        raise PlasticRLError(f"mu has {mu.shape[-1]} neurons and weights {n}; they must match")
    for name, value in (("steps", steps), ("every", every), ("chains", chains)):
        if value < 1:
            raise PlasticRLError(f"sample_lif {name}={value!r} is invalid; valid: >= 1")
    if not 0 <= burn_in < steps:
        raise PlasticRLError(f"sample_lif burn_in={burn_in!r} is invalid; valid: 0 <= burn_in < steps={steps}")
    if depression is not None:
        check_stp_parameters(depression)
    if depress is not None and tuple(depress.shape) != (n,):
        raise PlasticRLError(f"depress has shape {list(depress.shape)}; expected [{n}] (one flag per neuron)")
    generator = torch.Generator().manual_seed(seed)
    state = lif_sampler_initial_state(chains, n, params, generator, weights.dtype)
    if depression is not None:  # start the depressing synapses at u = U, x = 1 (NEST's usual start)
        state = state._replace(depression=stp_initial_state((chains, n), depression.U, dtype=weights.dtype))
    samples = []
    for t in range(steps):
        z, state = lif_sampler_step(mu, weights, state, params, generator, depression, depress)
        if t >= burn_in and (t - burn_in) % every == 0:
            samples.append(z)
    return torch.stack(samples)


def calibrate_activation(
    params: LIFSamplerParameters, mu_grid: torch.Tensor, chains: int = 32, steps: int = 15000,
    burn_in: int = 1000, seed: int = 0,
) -> ActivationFit:
    """Measure ``p(z = 1)`` of an unconnected neuron at each mean input and fit a logistic."""
    mu = mu_grid.to(torch.float64).repeat_interleave(chains)[:, None]
    z = sample_lif(mu, torch.zeros(1, 1, dtype=torch.float64), params, mu.shape[0], steps, burn_in, 1, seed)
    p_on = z.mean(0).view(len(mu_grid), chains).mean(1).numpy()
    x = mu_grid.to(torch.float64).numpy()

    def logistic(m: np.ndarray, alpha: float, mu0: float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(m - mu0) / alpha))

    (alpha, mu0), _ = curve_fit(logistic, x, p_on, p0=(0.5, float(np.median(x))))
    residual = float(np.abs(logistic(x, alpha, mu0) - p_on).max())
    return ActivationFit(float(alpha), float(mu0), residual)


def boltzmann_to_lif(
    weights: torch.Tensor, bias: torch.Tensor, fit: ActivationFit, params: LIFSamplerParameters
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boltzmann ``(W, b)`` -> LIF ``(mu, w)``: ``mu = mu0 + alpha * b``, ``w = alpha * W * tau_ref / tau_syn``."""
    mu = fit.mu0 + fit.alpha * bias
    w = fit.alpha * weights * (params.tau_ref / params.tau_syn)
    return mu, w
