"""Tsodyks-Markram short-term plasticity as pure functions over explicit state.

A synapse has a release probability ``u`` and a fraction of available resources ``x``; a
spike transmits the efficacy ``u * x`` (multiplying the synaptic weight), uses up that part
of the resources and raises ``u``. Between spikes ``x`` recovers to 1 with ``tau_rec`` and
the facilitation decays with ``tau_fac`` (``tau_fac = 0`` switches facilitation off, so ``u``
stays at ``U``). Parameters: ``U`` (release increment, in (0, 1]), ``tau_rec`` (> 0) and
``tau_fac`` (>= 0), in any one time unit shared with the intervals or ``dt`` (the policy uses
seconds; the NEST test vectors use ms).

Convention (NEST 3 ``tsodyks2_synapse``, checked against NEST 3.10.0 by
``tests/test_stp.py`` with vectors from ``examples/stp_nest_reference.py``). The state
``(u, x)`` holds the values *used by the most recent spike*; for a fresh synapse, the values
the first spike will use (NEST's ``u`` and ``x``, usually ``u = U``, ``x = 1``):

* **first spike**: efficacy ``u0 * x0``, the stored state as it is. No recovery or
  facilitation step is applied first, however long after the start the spike comes, so with
  the usual start the first efficacy is exactly ``U``.
* **every later spike**, ``h`` after the previous one::

      x <- 1 + (x - u*x - 1) * exp(-h / tau_rec)     # release at the previous spike, then recovery
      u <- U + u * (1 - U) * exp(-h / tau_fac)       # (exp(...) = 0 when tau_fac = 0)
      efficacy = u * x

  Depressing (``tau_fac = 0``, ``U`` large), facilitating (``U`` small, ``tau_fac`` long) and
  renewing (``U = 1``: every spike uses all resources, ``efficacy = 1 - exp(-h/tau_rec)``)
  synapses are settings of the same equations.

Two forms share this convention:

* event-driven (:func:`stp_event`, :func:`stp_train_efficacies`): efficacies from
  inter-spike intervals, batched over any leading dimensions;
* clock-driven (:func:`stp_step`, or :func:`stp_step_retained` with the per-step
  retentions precomputed): for networks stepped with ``dt``; the state then holds
  the post-release resources and the decayed facilitation between spikes, so recovery is
  applied step by step (``exp(-dt/tau)`` per step, which composes to the event-driven
  ``exp(-h/tau)`` for spikes on the grid). A ``fresh`` flag (1 until a row's first spike)
  keeps the first spike's efficacy at ``u0 * x0``.

All functions are differentiable in the parameters and (through the spike values) in the
spikes, and run on whatever device the tensors are on.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Union

import torch

from plasticrl.errors import PlasticRLError

Scalar = Union[float, torch.Tensor]


class STPParameters(NamedTuple):
    """Tsodyks-Markram constants; floats or tensors broadcastable to the state.

    Defaults are NEST's (``U = 0.5``, ``tau_rec = 800 ms``, ``tau_fac = 0``), in seconds.
    """

    U: Scalar = 0.5
    tau_rec: Scalar = 0.8
    tau_fac: Scalar = 0.0


class STPEventState(NamedTuple):
    """Event-driven state: ``u`` and ``x`` used by the most recent spike (see module docstring)."""

    u: torch.Tensor
    x: torch.Tensor


class STPState(NamedTuple):
    """Clock-driven state, updated every step.

    ``u``: facilitation, decaying towards 0 between spikes (the next spike uses
    ``U + (1 - U) * u``); ``x``: available resources after the last release, recovering
    towards 1; ``fresh``: 1 where the synapse has not spiked yet (its first spike uses
    ``u * x`` as stored and nothing decays before it), else 0.
    """

    u: torch.Tensor
    x: torch.Tensor
    fresh: torch.Tensor


def check_stp_parameters(params: STPParameters) -> STPParameters:
    """Return ``params`` if every value is valid; otherwise raise naming the bad value and the range."""
    ranges = {"U": (0.0, 1.0, "in (0, 1]"), "tau_rec": (0.0, math.inf, "> 0"), "tau_fac": (0.0, math.inf, ">= 0")}
    for name, (low, high, words) in ranges.items():
        value = getattr(params, name)
        values = torch.as_tensor(value, dtype=torch.float64)
        if name == "tau_fac":
            ok = (values >= low) & (values < high)
        else:
            ok = (values > low) & (values <= high)
        if not bool(ok.all()):
            bad = values[~ok].flatten()[0].item() if values.dim() else values.item()
            raise PlasticRLError(f"STP parameter {name}={bad!r} is invalid; valid values: {name} {words}")
    return params


def _retention(interval: Scalar, tau: Scalar) -> Scalar:
    """``exp(-interval/tau)``, with ``tau = 0`` meaning no memory (0), gradient-safe at 0."""
    if not isinstance(tau, torch.Tensor) and not isinstance(interval, torch.Tensor):
        return math.exp(-interval / tau) if tau > 0 else 0.0
    ref = tau if isinstance(tau, torch.Tensor) else interval
    tau = torch.as_tensor(tau, dtype=ref.dtype, device=ref.device)
    on = tau > 0
    # where() alone would still backpropagate inf * 0 = nan through the unused branch at tau = 0
    safe_tau = torch.where(on, tau, torch.ones_like(tau))
    return torch.where(on, torch.exp(-interval / safe_tau), torch.zeros_like(safe_tau))


# -- event-driven form ---------------------------------------------------------------------
def stp_event_initial_state(
    shape: tuple[int, ...], U: Scalar = 0.5, x0: Scalar = 1.0, u0: Scalar | None = None,
    device=None, dtype: torch.dtype = torch.float32,
) -> STPEventState:
    """State of a synapse that has not spiked yet: its first spike transmits ``u0 * x0`` (``u0`` defaults to ``U``)."""
    u0 = U if u0 is None else u0
    zeros = torch.zeros(shape, device=device, dtype=dtype)
    return STPEventState(u=zeros + u0, x=zeros + x0)


def stp_first_efficacy(state: STPEventState) -> torch.Tensor:
    """Efficacy of a synapse's first spike: the stored ``u * x`` (NEST's first-spike convention)."""
    return state.u * state.x


def stp_event(
    interval: Scalar, state: STPEventState, params: STPParameters
) -> tuple[torch.Tensor, STPEventState]:
    """A spike ``interval`` after the previous one: returns ``(efficacy, state)``.

    Not for the first spike (use :func:`stp_first_efficacy`). ``interval = inf`` gives a fully
    recovered synapse (efficacy ``U``).
    """
    x = 1.0 + (state.x - state.u * state.x - 1.0) * _retention(interval, params.tau_rec)
    u = params.U + state.u * (1.0 - params.U) * _retention(interval, params.tau_fac)
    return u * x, STPEventState(u=u, x=x)


def stp_train_efficacies(
    intervals: torch.Tensor, params: STPParameters, state: STPEventState | None = None
) -> tuple[torch.Tensor, STPEventState]:
    """Efficacies of ``S`` spikes given their ``S - 1`` inter-spike intervals ``[..., S - 1]``.

    Returns ``(efficacy [..., S], state after the last spike)``. ``state`` is the synapse before
    its first spike (default: ``u = U``, ``x = 1``, same leading shape as ``intervals``).
    Leading dimensions (population, synapses) are batched; the loop runs over spikes only.
    """
    lead = intervals.shape[:-1]
    if state is None:
        state = stp_event_initial_state(lead, params.U, device=intervals.device, dtype=intervals.dtype)
    out = [stp_first_efficacy(state)]
    for k in range(intervals.shape[-1]):
        efficacy, state = stp_event(intervals[..., k], state, params)
        out.append(efficacy)
    return torch.stack(out, dim=-1), state


# -- clock-driven form ---------------------------------------------------------------------
def stp_initial_state(
    shape: tuple[int, ...], U: Scalar = 0.5, x0: Scalar = 1.0, u0: Scalar | None = None,
    device=None, dtype: torch.dtype = torch.float32,
) -> STPState:
    """Clock-driven state before any spike; the first spike transmits ``u0 * x0`` (``u0`` defaults to ``U``)."""
    u0 = U if u0 is None else u0
    zeros = torch.zeros(shape, device=device, dtype=dtype)
    return STPState(u=zeros + u0, x=zeros + x0, fresh=zeros + 1.0)


def stp_step(
    spikes: torch.Tensor, state: STPState, params: STPParameters, dt: float
) -> tuple[torch.Tensor, STPState]:
    """One step of length ``dt`` ending with ``spikes`` (0/1, or surrogate spikes).

    Returns ``(efficacy, state)``: ``efficacy`` is what a spike at this step transmits, for
    every synapse (multiply by ``spikes`` for the transmitted amount); the state is advanced by
    ``dt`` and, where a spike occurred, by its release. The update is linear in ``spikes``, so
    surrogate gradients pass through it.
    """
    keep_rec, keep_fac = stp_retention(params, dt)
    return stp_step_retained(spikes, state, params.U, keep_rec, keep_fac)


def stp_retention(params: STPParameters, dt: float) -> tuple[Scalar, Scalar]:
    """Per-step retentions ``(exp(-dt/tau_rec), exp(-dt/tau_fac))`` (0 for ``tau_fac = 0``).

    Networks with fixed ``dt`` compute them once per parameter load and call
    :func:`stp_step_retained`, which saves the exponentials on every step.
    """
    return _retention(dt, params.tau_rec), _retention(dt, params.tau_fac)


def stp_step_retained(
    spikes: torch.Tensor, state: STPState, U: Scalar, keep_rec: Scalar, keep_fac: Scalar
) -> tuple[torch.Tensor, STPState]:
    """:func:`stp_step` with the retentions of :func:`stp_retention` precomputed."""
    moving = 1.0 - state.fresh  # nothing recovers or decays before a synapse's first spike
    x = state.x + moving * (1.0 - state.x) * (1.0 - keep_rec)
    u = state.u - moving * state.u * (1.0 - keep_fac)
    u_spike = u + moving * (U + (1.0 - U) * u - u)
    efficacy = u_spike * x
    new_state = STPState(
        u=u + spikes * (u_spike - u),
        x=x - spikes * efficacy,
        fresh=state.fresh * (1.0 - spikes),
    )
    return efficacy, new_state
