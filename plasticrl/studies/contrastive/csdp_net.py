"""Recurrent spiking layers trained by CSDP, with a local softmax readout.

Architecture (after Ororbia's CSDP circuit; the details here are this project's own):

- Input pixels become Bernoulli spike trains (probability = pixel intensity per step).
- Each layer is ALIF (LIF with an adaptive threshold) with a rate-like spike trace
  ``z <- lambda*z + (1-lambda)*s``. Its current is ``gain*W s_below + V s_self + C y``:
  bottom-up synapses ``W``, lateral synapses ``V`` kept hollow and non-positive (learned
  lateral *inhibition*), and, in supervised mode, label-context synapses ``C`` from a one-hot
  label. Layers read the previous step's spikes of the layer below, so all layers update in
  parallel; no synapse runs top-down (no feedback pathway).
- Every one of ``W``, ``V``, ``C`` learns by :func:`plasticrl.plasticity.csdp.csdp_update` from
  its presynaptic trace and the layer's own goodness, online, at every time step of a
  positive or a negative phase.
- The readout (softmax over classes) reads time-averaged traces of all layers from a
  label-free presentation and learns by its own delta rule (:func:`readout_update`).

The phases come from a :class:`plasticrl.studies.contrastive.phases.PhaseSchedule`, so the same code
runs the strict periodic schedule (``T`` positive steps, then ``T`` negative) and the
flexible one (random lengths and order, importance-weighted).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from plasticrl.errors import check_choice
from plasticrl.studies.contrastive.negatives import make_negatives
from plasticrl.plasticity.csdp import csdp_update, goodness, readout_update
from plasticrl.studies.contrastive.phases import PhaseSchedule
from plasticrl.snn import ALIFParameters, ALIFState, alif_initial_state, alif_step, decay_factor, trace_step

CSDP_MODES = ("supervised", "self_supervised")


@dataclass(frozen=True)
class CSDPConfig:
    """Constants of a CSDP network and its training (times in seconds)."""

    n_inputs: int = 64
    n_classes: int = 10
    hidden: tuple[int, ...] = (256,)
    mode: str = "supervised"
    negatives: str | None = None         # supervised: wrong_label; self-supervised: mix (default) or corrupt
    steps: int = 16                      # T: steps per phase of the periodic schedule
    dt: float = 1e-3
    tau_mem: float = 5e-3
    tau_trace: float = 5e-3
    tau_adapt: float = 0.05
    beta_adapt: float = 0.5
    input_gain: float = 4.0
    context_gain: float = 2.0
    theta: float = 8.0                   # goodness threshold (sum of squared rate-like traces)
    eta: float = 0.01
    eta_lateral: float = 0.005
    eta_readout: float = 2.0
    readout_iters: int = 5               # delta-rule steps per mini-batch on its (cached) features
    weight_decay: float = 1e-3
    w_max: float = 1.0
    batch_size: int = 64

    def __post_init__(self) -> None:
        check_choice("CSDP mode", self.mode, CSDP_MODES)
        if self.negatives is None:  # each mode's natural negatives unless told otherwise
            object.__setattr__(self, "negatives", "wrong_label" if self.mode == "supervised" else "mix")
        valid = ("wrong_label",) if self.mode == "supervised" else ("mix", "corrupt")
        check_choice(f"negative kind for mode {self.mode!r}", self.negatives, valid)

    @property
    def supervised(self) -> bool:
        return self.mode == "supervised"

    @property
    def neuron(self) -> ALIFParameters:
        return ALIFParameters(tau_mem=self.tau_mem, v_th=1.0, tau_adapt=self.tau_adapt, beta_adapt=self.beta_adapt)


class CSDPParams(NamedTuple):
    """Synapses per layer (``W [n_l, n_{l-1}]``, ``V [n_l, n_l]``, ``C [n_l, classes]``) and readout."""

    W: tuple[torch.Tensor, ...]
    V: tuple[torch.Tensor, ...]
    C: tuple[torch.Tensor, ...]
    U: torch.Tensor     # readout weights [classes, sum n_l]
    c: torch.Tensor     # readout bias [classes]


class CSDPState(NamedTuple):
    neurons: tuple[ALIFState, ...]
    spikes: tuple[torch.Tensor, ...]
    traces: tuple[torch.Tensor, ...]
    in_trace: torch.Tensor


def csdp_init(cfg: CSDPConfig, generator: torch.Generator) -> CSDPParams:
    """Random initial synapses: Gaussian bottom-up and context, weak uniform lateral inhibition."""
    sizes = (cfg.n_inputs, *cfg.hidden)
    W, V, C = [], [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        W.append(torch.randn(n_out, n_in, generator=generator) / n_in ** 0.5)
        V.append(_hollow(torch.full((n_out, n_out), -1.0 / n_out)))
        C.append(torch.randn(n_out, cfg.n_classes, generator=generator) * 0.5)
    total = sum(cfg.hidden)
    return CSDPParams(tuple(W), tuple(V), tuple(C), torch.zeros(cfg.n_classes, total), torch.zeros(cfg.n_classes))


def _hollow(m: torch.Tensor) -> torch.Tensor:
    return m.fill_diagonal_(0.0)


def _initial_state(cfg: CSDPConfig, batch: int) -> CSDPState:
    neurons = tuple(alif_initial_state((batch, n)) for n in cfg.hidden)
    zeros = tuple(torch.zeros(batch, n) for n in cfg.hidden)
    return CSDPState(neurons, zeros, tuple(z.clone() for z in zeros), torch.zeros(batch, cfg.n_inputs))


def _step(
    params: CSDPParams, cfg: CSDPConfig, state: CSDPState, x_spikes: torch.Tensor, context: torch.Tensor | None
) -> CSDPState:
    """One time step of every layer in parallel (each reads the previous step's spikes below)."""
    lam = decay_factor(cfg.dt, cfg.tau_trace)
    below = (x_spikes, *state.spikes[:-1])
    neurons, spikes, traces = [], [], []
    for l, (nstate, s_prev, z) in enumerate(zip(state.neurons, state.spikes, state.traces)):
        current = cfg.input_gain * below[l] @ params.W[l].T + s_prev @ params.V[l].T
        if context is not None:
            current = current + cfg.context_gain * context @ params.C[l].T
        s, nstate = alif_step(current, nstate, cfg.neuron, cfg.dt)
        neurons.append(nstate)
        spikes.append(s)
        traces.append(trace_step(z, (1.0 - lam) * s, lam))  # rate-like trace in [0, 1]
    in_trace = trace_step(state.in_trace, (1.0 - lam) * x_spikes, lam)
    return CSDPState(tuple(neurons), tuple(spikes), tuple(traces), in_trace)


def _learn(
    params: CSDPParams,
    cfg: CSDPConfig,
    old: CSDPState,
    new: CSDPState,
    context: torch.Tensor | None,
    positive: float,
    weight: float,
) -> CSDPParams:
    """Apply one step's CSDP change to every synapse group (online, importance-weighted)."""
    pres = (new.in_trace, *old.traces[:-1])
    flag = torch.full((new.in_trace.shape[0],), positive)
    W, V, C = list(params.W), list(params.V), list(params.C)
    bound = cfg.w_max
    for l, z in enumerate(new.traces):
        eta = cfg.eta * weight
        W[l] = (W[l] + csdp_update(pres[l], z, flag, cfg.theta, eta, W[l], cfg.weight_decay)).clamp_(-bound, bound)
        dv = csdp_update(old.traces[l], z, flag, cfg.theta, cfg.eta_lateral * weight)
        V[l] = _hollow((V[l] + dv).clamp_(-bound, 0.0))  # lateral synapses stay inhibitory
        if context is not None:
            dc = csdp_update(context, z, flag, cfg.theta, eta, C[l], cfg.weight_decay)
            C[l] = (C[l] + dc).clamp_(-bound, bound)
    return params._replace(W=tuple(W), V=tuple(V), C=tuple(C))


def _spikes_in(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(x.shape, generator=generator) < x).to(x.dtype)


def csdp_features(
    params: CSDPParams, cfg: CSDPConfig, x: torch.Tensor, generator: torch.Generator,
    context: torch.Tensor | None = None, steps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Present ``x [B, in]`` for ``steps`` steps without learning.

    Returns ``(features [B, sum n_l], goodness [B])``: time-averaged traces of all layers and
    the summed per-layer goodness, averaged over time.
    """
    state = _initial_state(cfg, x.shape[0])
    feats = torch.zeros(x.shape[0], sum(cfg.hidden))
    good = torch.zeros(x.shape[0])
    steps = steps or cfg.steps
    for _ in range(steps):
        state = _step(params, cfg, state, _spikes_in(x, generator), context)
        feats += torch.cat(state.traces, dim=-1)
        good += sum(goodness(z) for z in state.traces)
    return feats / steps, good / steps


def csdp_predict(
    params: CSDPParams, cfg: CSDPConfig, x: torch.Tensor, generator: torch.Generator, by: str = "readout"
) -> torch.Tensor:
    """Class predictions ``[B]``: by the readout (label-free presentation) or by goodness.

    ``by="goodness"`` (supervised mode only) presents ``x`` once per candidate label and picks
    the label whose context makes the network most confident the sample is positive.
    """
    check_choice("prediction method", by, ("readout", "goodness"))
    if by == "readout":
        feats, _ = csdp_features(params, cfg, x, generator)
        return (feats @ params.U.T + params.c).argmax(dim=-1)
    b, k = x.shape[0], cfg.n_classes
    xs = x.repeat(k, 1)
    ctx = F.one_hot(torch.arange(k).repeat_interleave(b), k).to(x.dtype)
    _, good = csdp_features(params, cfg, xs, generator, context=ctx)
    return good.view(k, b).argmax(dim=0)


def csdp_train_epoch(
    params: CSDPParams,
    cfg: CSDPConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    schedule: PhaseSchedule,
    generator: torch.Generator,
    train_readout: bool = True,
) -> CSDPParams:
    """One pass over ``(x, y)`` in shuffled mini-batches.

    Each mini-batch is presented for ``2T`` steps whose phases come from ``schedule`` (one
    continuous phase stream over the epoch); in a positive step the network sees the sample
    (with its true label as context in supervised mode), in a negative step its negative
    (wrong label, or a mixed / corrupted input). The neuron state is reset per mini-batch.
    With ``train_readout`` a label-free presentation of the batch then trains the readout.
    """
    n = x.shape[0]
    order = torch.randperm(n, generator=generator)
    n_batches = -(-n // cfg.batch_size)
    window = 2 * cfg.steps
    phases, weights = schedule.sample(n_batches * window, generator)
    for bi in range(n_batches):
        idx = order[bi * cfg.batch_size:(bi + 1) * cfg.batch_size]
        xb, yb = x[idx], y[idx]
        x_neg, y_neg = make_negatives(cfg.negatives, xb, yb, cfg.n_classes, generator)
        ctx_pos = F.one_hot(yb, cfg.n_classes).to(x.dtype) if cfg.supervised else None
        ctx_neg = F.one_hot(y_neg, cfg.n_classes).to(x.dtype) if cfg.supervised else None
        state = _initial_state(cfg, xb.shape[0])
        for t in range(window):
            k = bi * window + t
            pos = bool(phases[k])
            inp, ctx = (xb, ctx_pos) if pos else (x_neg, ctx_neg)
            new = _step(params, cfg, state, _spikes_in(inp, generator), ctx)
            params = _learn(params, cfg, state, new, ctx, 1.0 if pos else 0.0, float(weights[k]))
            state = new
        if train_readout:
            feats, _ = csdp_features(params, cfg, xb, generator)
            target = F.one_hot(yb, cfg.n_classes).to(x.dtype)
            U, c = params.U, params.c
            for _ in range(cfg.readout_iters):
                dU, dc = readout_update(feats, target, U, c, cfg.eta_readout)
                U, c = U + dU, c + dc
            params = params._replace(U=U, c=c)
    return params
