"""Contrastive Hebbian learning (CHL) in a layered rate network, with online phase updates.

The network ``x -> h <-> y`` has symmetric weights (``W2`` forward, ``W2^T`` as feedback, as
CHL and equilibrium propagation require) and leaky relaxation dynamics::

    h <- (1-eps) h + eps * sigmoid(W1 x + b1 + feedback * W2^T y)
    y <- (1-eps) y + eps * sigmoid(W2 h + b2)                       # free (negative) phase
    y <- (1-eps) y + eps * lerp(sigmoid(W2 h + b2), target, nudge)  # positive phase

``nudge = 1`` clamps the output to the target (classic CHL, Movellan 1991); ``nudge < 1``
only pulls it there, as equilibrium propagation's nudged phase does. At every step the
weights move by the Hebbian product ``c`` of the current rates minus a slow running baseline
``b`` of that product, with sign +1 in the positive phase and -1 in the free phase, times the
phase's importance weight::

    dW1 = eta/nudge * w * sgn * (mean_b h x^T - b_W1)     (likewise W2 with y h^T, and biases)

Because the importance-weighted signs average to zero, subtracting ``b`` leaves the expected
update unchanged; it only removes the large common part of both phases' co-activity.
The state is *not* reset when the phase switches, so each phase starts from where the other
left off (Williams, Bredenberg & Lajoie 2023). Measured limit (README table): this model
learns under the strict periodic schedule but NOT under random phase order and lengths at
the same budget; see the README for what was tried.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from plasticrl.plasticity.phases import PhaseSchedule


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
    baseline_rate: float = 0.01  # per-step rate of each synapse's running co-activity baseline (0: off)
    eta: float = 0.05
    w_max: float = 4.0
    batch_size: int = 8


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


def chl_train_epoch(
    p: CHLParams,
    cfg: CHLConfig,
    x: torch.Tensor,
    labels: torch.Tensor,
    schedule: PhaseSchedule,
    generator: torch.Generator,
) -> CHLParams:
    """One pass in shuffled mini-batches, each presented for ``2T`` steps of scheduled phases.

    The state starts from rest for each mini-batch, settles freely for ``cfg.settle`` steps
    without learning, and then carries over across phase switches
    inside it; updates are applied at every step (online).
    """
    n = x.shape[0]
    order = torch.randperm(n, generator=generator)
    n_batches = -(-n // cfg.batch_size)
    window = 2 * cfg.steps
    phases, weights = schedule.sample(n_batches * window, generator)
    base: list[torch.Tensor] | None = None
    for bi in range(n_batches):
        idx = order[bi * cfg.batch_size:(bi + 1) * cfg.batch_size]
        xb, target = x[idx], F.one_hot(labels[idx], cfg.n_classes).to(x.dtype)
        h = torch.zeros(xb.shape[0], cfg.n_hidden)
        y = torch.zeros(xb.shape[0], cfg.n_classes)
        # settle first: the rise from rest is a transient of the initial condition, not of a
        # phase, and Hebbian updates on it would only add noise to both phases
        for _ in range(cfg.settle):
            h, y = _relax(p, cfg, xb, h, y, None)
            if base is not None and cfg.baseline_rate > 0:  # the baseline follows the new sample too
                base = [torch.lerp(bl, c, cfg.baseline_rate) for bl, c in zip(base, _coactivity(h, y, xb))]
        for t in range(window):
            k = bi * window + t
            clamped = bool(phases[k])
            h, y = _relax(p, cfg, xb, h, y, target if clamped else None)
            co = _coactivity(h, y, xb)
            if base is None:
                base = [c.clone() for c in co]
            # Subtracting a phase-independent baseline leaves the expected update unchanged
            # (the importance-weighted signs average to zero) but removes the large common
            # part of both phases' co-activity, whose imbalance under random phase lengths
            # would otherwise random-walk the weights.
            diff = [c - bl for c, bl in zip(co, base)] if cfg.baseline_rate > 0 else co
            # 1/nudge: the contrast shrinks with the nudge, the step must not (EP's 1/beta)
            scale = cfg.eta * float(weights[k]) * (1.0 if clamped else -1.0) / cfg.nudge
            p = CHLParams(
                (p.W1 + scale * diff[0]).clamp_(-cfg.w_max, cfg.w_max),
                p.b1 + scale * diff[1],
                (p.W2 + scale * diff[2]).clamp_(-cfg.w_max, cfg.w_max),
                p.b2 + scale * diff[3],
            )
            if cfg.baseline_rate > 0:
                base = [torch.lerp(bl, c, cfg.baseline_rate) for bl, c in zip(base, co)]
    return p
