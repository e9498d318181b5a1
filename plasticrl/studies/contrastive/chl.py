"""Contrastive Hebbian learning (CHL) in a layered rate network, with online phase updates.

The network ``x -> h <-> y`` has symmetric weights (``W2`` forward, ``W2^T`` as feedback, as
CHL and equilibrium propagation require) and leaky relaxation dynamics::

    h <- (1-eps) h + eps * sigmoid(W1 x + b1 + feedback * W2^T y)
    y <- (1-eps) y + eps * sigmoid(W2 h + b2)                       # free (negative) phase
    y <- (1-eps) y + eps * lerp(sigmoid(W2 h + b2), target, nudge)  # positive phase

``nudge = 1`` clamps the output to the target (classic CHL, Movellan 1991); ``nudge < 1``
only pulls it there, as equilibrium propagation's nudged phase does. The state is *not*
reset when the phase switches, so each phase starts from where the other left off
(Williams, Bredenberg & Lajoie 2023), and the weights move at every step (online), with
sign ``s = +1`` in the positive phase and ``-1`` in the free one, times the phase's
importance weight ``w``. Two plasticity rules (``CHLConfig.rule``):

``"differential"`` (default): the update follows the *change* of the Hebbian product ``c``
since the previous step (a one-step synaptic trace; in EP's terms ``rho_i d rho_j/dt``)::

    dW1 = eta/nudge * w * s * (c_t - c_{t-1})      c = mean_b h x^T   (likewise W2, biases)

Summed over the transient that follows a switch into the positive phase this is
``c(clamped) - c(free)``, the CHL update; after a switch back into the free phase the sign
flips together with the change, so it is the CHL update again. Once a phase has settled, ``c``
stops changing and so does the weight: a long phase does not keep pushing in one direction,
which is what lets this rule learn under random phase lengths and order. Updates are gated
until the state has settled on a new mini-batch (``settle`` free steps from rest without
learning): the rise from rest is a change of ``c`` too, and learning on it is a bias whose
sign follows the phase (measured: with ``settle=5`` the unweighted 3:1 schedule fails).

``"coactivity"`` (the earlier rule): the update is the Hebbian product itself minus a slow
running baseline ``b`` of it, ``dW1 = eta/nudge * w * s * (c_t - b)``. Because the
importance-weighted signs average to zero, ``b`` leaves the expected update unchanged. This
rule learns under the strict periodic schedule but not under random phase order and
lengths at the same budget: every step of a phase adds a full-size Hebbian term, so the
imbalance between phases of random length random-walks the weights (README table).

``eta_decay`` multiplies ``eta`` once per epoch in :func:`chl_train`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F

from plasticrl.errors import PlasticRLError, check_choice
from plasticrl.studies.contrastive.phases import PhaseSchedule

CHL_RULES = ("coactivity", "differential")


@dataclass(frozen=True)
class CHLConfig:
    """Sizes, relaxation and learning constants of the CHL network."""

    n_inputs: int = 64
    n_hidden: int = 128
    n_classes: int = 10
    steps: int = 10          # T: steps per phase of the periodic schedule (and of inference)
    eps: float = 0.5         # relaxation rate per step
    settle: int = 10         # free steps from rest before learning starts, per mini-batch
    feedback: float = 1.0    # gain of the top-down path W2^T y into the hidden layer
    nudge: float = 1.0       # positive-phase pull of the output toward the target (1 = clamp)
    rule: str = "differential"   # "differential" (change of co-activity) or "coactivity" (earlier rule)
    baseline_rate: float = 0.01  # "coactivity" only: per-step rate of the running co-activity baseline (0: off)
    eta: float = 0.3             # the "coactivity" rule needs about 0.05-0.1 (it sums T steps per phase)
    eta_decay: float = 0.5       # factor on eta per epoch in chl_train (1: constant)
    w_max: float = 4.0
    batch_size: int = 8

    def __post_init__(self) -> None:
        check_choice("CHL plasticity rule", self.rule, CHL_RULES)
        for name in ("n_inputs", "n_hidden", "n_classes", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise PlasticRLError(f"CHLConfig.{name} must be >= 1; got {getattr(self, name)}")
        if self.settle < 0:
            raise PlasticRLError(f"CHLConfig.settle must be >= 0; got {self.settle}")
        if not 0.0 < self.eps <= 1.0:
            raise PlasticRLError(f"CHLConfig.eps must lie in (0, 1]; got {self.eps}")
        if not 0.0 < self.nudge <= 1.0:
            raise PlasticRLError(f"CHLConfig.nudge must lie in (0, 1]; got {self.nudge}")
        if not 0.0 <= self.baseline_rate <= 1.0:
            raise PlasticRLError(f"CHLConfig.baseline_rate must lie in [0, 1]; got {self.baseline_rate}")
        if self.eta < 0 or self.eta_decay <= 0:
            raise PlasticRLError(f"CHLConfig needs eta >= 0 and eta_decay > 0; got {self.eta}, {self.eta_decay}")


class CHLParams(NamedTuple):
    W1: torch.Tensor   # [hidden, inputs]
    b1: torch.Tensor   # [hidden]
    W2: torch.Tensor   # [classes, hidden]
    b2: torch.Tensor   # [classes]


def chl_init(cfg: CHLConfig, generator: torch.Generator) -> CHLParams:
    """Gaussian weights scaled by fan-in; zero biases."""
    return CHLParams(
        torch.randn(cfg.n_hidden, cfg.n_inputs, generator=generator) / cfg.n_inputs ** 0.5,
        torch.zeros(cfg.n_hidden),
        torch.randn(cfg.n_classes, cfg.n_hidden, generator=generator) / cfg.n_hidden ** 0.5,
        torch.zeros(cfg.n_classes),
    )


def _relax(
    p: CHLParams, cfg: CHLConfig, x: torch.Tensor, h: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One relaxation step of both layers (in parallel, from the previous state)."""
    h_new = torch.lerp(h, torch.sigmoid(x @ p.W1.T + p.b1 + cfg.feedback * y @ p.W2), cfg.eps)
    drive = torch.sigmoid(h @ p.W2.T + p.b2)
    if target is not None:
        drive = torch.lerp(drive, target, cfg.nudge)
    return h_new, torch.lerp(y, drive, cfg.eps)


def _coactivity(h: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> list[torch.Tensor]:
    """Batch-mean Hebbian products for ``W1, b1, W2, b2``."""
    b = x.shape[0]
    return [h.T @ x / b, h.mean(0), y.T @ h / b, y.mean(0)]


def chl_predict(p: CHLParams, cfg: CHLConfig, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
    """Class predictions ``[B]``: argmax of the output after a free relaxation from rest."""
    h = torch.zeros(x.shape[0], cfg.n_hidden)
    y = torch.zeros(x.shape[0], cfg.n_classes)
    for _ in range(steps or 2 * cfg.steps):
        h, y = _relax(p, cfg, x, h, y, None)
    return y.argmax(dim=-1)


def chl_apply(p: CHLParams, cfg: CHLConfig, term: list[torch.Tensor], scale: float) -> CHLParams:
    """``p + scale * term`` for ``W1, b1, W2, b2``, with the weights clipped to ``±w_max``."""
    return CHLParams(
        (p.W1 + scale * term[0]).clamp_(-cfg.w_max, cfg.w_max),
        p.b1 + scale * term[1],
        (p.W2 + scale * term[2]).clamp_(-cfg.w_max, cfg.w_max),
        p.b2 + scale * term[3],
    )


def chl_train_epoch(
    p: CHLParams,
    cfg: CHLConfig,
    x: torch.Tensor,
    labels: torch.Tensor,
    schedule: PhaseSchedule,
    generator: torch.Generator,
) -> CHLParams:
    """One pass in shuffled mini-batches, each presented for ``2T`` steps of scheduled phases.

    The phase sequence runs on across mini-batches (a phase may span several). The state
    starts from rest for each mini-batch, settles freely for ``cfg.settle`` steps without
    learning, and then carries over across the phase switches inside it; updates are
    applied at every step (online), by ``cfg.rule`` (see the module docstring).
    """
    n = x.shape[0]
    order = torch.randperm(n, generator=generator)
    n_batches = -(-n // cfg.batch_size)
    window = 2 * cfg.steps
    phases, weights = schedule.sample(n_batches * window, generator)
    differential = cfg.rule == "differential"
    base: list[torch.Tensor] | None = None
    for bi in range(n_batches):
        idx = order[bi * cfg.batch_size:(bi + 1) * cfg.batch_size]
        xb, target = x[idx], F.one_hot(labels[idx], cfg.n_classes).to(x.dtype)
        h = torch.zeros(xb.shape[0], cfg.n_hidden)
        y = torch.zeros(xb.shape[0], cfg.n_classes)
        # settle first: the rise from rest is a transient of the initial condition, not of a
        # phase; Hebbian updates on it would add noise (coactivity) or a phase-signed bias
        # (differential)
        for _ in range(cfg.settle):
            h, y = _relax(p, cfg, xb, h, y, None)
            if not differential and base is not None and cfg.baseline_rate > 0:
                # the baseline follows the new sample too
                base = [torch.lerp(bl, c, cfg.baseline_rate) for bl, c in zip(base, _coactivity(h, y, xb))]
        prev = _coactivity(h, y, xb)
        for t in range(window):
            k = bi * window + t
            clamped = bool(phases[k])
            h, y = _relax(p, cfg, xb, h, y, target if clamped else None)
            co = _coactivity(h, y, xb)
            if differential:
                # change since the previous step: nonzero only while the state moves, i.e.
                # after a phase switch; summed over the transient it is c(+) - c(-) times s
                term, prev = [c - q for c, q in zip(co, prev)], co
            else:
                if base is None:
                    base = [c.clone() for c in co]
                # Subtracting a phase-independent baseline leaves the expected update
                # unchanged (the importance-weighted signs average to zero) but removes the
                # common part of both phases' co-activity.
                term = [c - bl for c, bl in zip(co, base)] if cfg.baseline_rate > 0 else co
                if cfg.baseline_rate > 0:
                    base = [torch.lerp(bl, c, cfg.baseline_rate) for bl, c in zip(base, co)]
            # 1/nudge: the contrast shrinks with the nudge, the step must not (EP's 1/beta)
            scale = cfg.eta * float(weights[k]) * (1.0 if clamped else -1.0) / cfg.nudge
            p = chl_apply(p, cfg, term, scale)
    return p


def chl_train(
    p: CHLParams,
    cfg: CHLConfig,
    x: torch.Tensor,
    labels: torch.Tensor,
    schedule: PhaseSchedule,
    generator: torch.Generator,
    epochs: int,
) -> CHLParams:
    """``epochs`` calls of :func:`chl_train_epoch`, epoch ``e`` with ``eta * eta_decay**e``."""
    if epochs < 0:
        raise PlasticRLError(f"epochs must be >= 0; got {epochs}")
    for e in range(epochs):
        p = chl_train_epoch(p, replace(cfg, eta=cfg.eta * cfg.eta_decay ** e), x, labels, schedule, generator)
    return p
