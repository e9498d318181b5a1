"""Phase schedules for contrastive learning: strict periodic, or random lengths and order.

Contrastive rules (CSDP, contrastive Hebbian learning, equilibrium propagation) compare a
*positive* phase (real data, clamped targets) with a *negative* one (corrupted data, free
running). Williams, Bredenberg & Lajoie (ICML 2023) showed the comparison need not follow a
rigid "positive then negative" clock: if each phase's update is applied online while it
lasts, the phases may have random lengths and come in random order, and learning still
works. When the two phases occupy different fractions of time, weighting each step's
update by ``target_fraction / actual_fraction`` of its phase (an importance weight) makes the
expected update equal to that of the balanced schedule.

A schedule produces, per time step, a phase (1 positive, 0 negative) and that importance
weight. The random schedule is a renewal process: each segment's phase is drawn afresh,
positive with probability ``p_positive`` (so the same phase may repeat: random order), and
its length is geometric on ``{1, 2, ...}`` with the phase's mean length.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from plasticrl.errors import PlasticRLError, check_choice

SCHEDULE_KINDS = ("periodic", "random")


@dataclass(frozen=True)
class PhaseSchedule:
    """How positive (1) and negative (0) phases alternate in time.

    ``periodic``: ``len_positive`` steps positive, then ``len_negative`` steps negative, repeated
    (starting with the phase named by ``start``). ``random``: segments of random phase
    (positive with probability ``p_positive``) and geometric length with means
    ``len_positive`` / ``len_negative``. ``importance`` turns the importance weights on
    (``target_fraction / fraction`` per phase); off, every weight is 1.
    """

    kind: str = "periodic"
    len_positive: float = 1.0
    len_negative: float = 1.0
    p_positive: float = 0.5
    start: str = "positive"
    importance: bool = True
    target_fraction: float = 0.5

    def __post_init__(self) -> None:
        check_choice("phase schedule kind", self.kind, SCHEDULE_KINDS)
        check_choice("starting phase", self.start, ("positive", "negative"))
        if self.len_positive < 1 or self.len_negative < 1:
            raise PlasticRLError(
                f"phase lengths must be >= 1 step; got len_positive={self.len_positive}, "
                f"len_negative={self.len_negative}"
            )
        if self.kind == "periodic" and (
            self.len_positive != int(self.len_positive) or self.len_negative != int(self.len_negative)
        ):
            raise PlasticRLError(
                f"a periodic schedule needs whole phase lengths; got {self.len_positive}, {self.len_negative}"
            )
        if not 0.0 < self.p_positive < 1.0:
            raise PlasticRLError(f"p_positive must lie in (0, 1); got {self.p_positive}")
        if not 0.0 < self.target_fraction < 1.0:
            raise PlasticRLError(f"target_fraction must lie in (0, 1); got {self.target_fraction}")

    @property
    def positive_fraction(self) -> float:
        """Long-run fraction of time steps spent in the positive phase."""
        if self.kind == "periodic":
            return self.len_positive / (self.len_positive + self.len_negative)
        # renewal-reward: expected positive time per segment / expected segment length
        pos = self.p_positive * self.len_positive
        return pos / (pos + (1.0 - self.p_positive) * self.len_negative)

    @property
    def weights(self) -> tuple[float, float]:
        """Importance weights ``(negative, positive)``: 1 each when ``importance`` is off."""
        if not self.importance:
            return 1.0, 1.0
        f = self.positive_fraction
        return (1.0 - self.target_fraction) / (1.0 - f), self.target_fraction / f

    def sample(self, n_steps: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(phase [n_steps] long, weight [n_steps] float)`` for the next ``n_steps`` steps.

        The random kind needs ``generator`` (every random draw is explicit); the periodic kind
        ignores it.
        """
        if n_steps < 0:
            raise PlasticRLError(f"n_steps must be >= 0; got {n_steps}")
        phase = periodic_phases(n_steps, int(self.len_positive), int(self.len_negative), self.start) \
            if self.kind == "periodic" else \
            random_phases(n_steps, self.len_positive, self.len_negative, self.p_positive, generator)
        w_neg, w_pos = self.weights
        weight = torch.where(phase == 1, torch.tensor(w_pos), torch.tensor(w_neg))
        return phase, weight


def periodic_phases(n_steps: int, len_positive: int, len_negative: int, start: str = "positive") -> torch.Tensor:
    """Strict two-phase clock: ``[1]*len_positive + [0]*len_negative`` (or the reverse), repeated."""
    first, second = ([1] * len_positive, [0] * len_negative) if start == "positive" else \
        ([0] * len_negative, [1] * len_positive)
    period = torch.tensor(first + second, dtype=torch.long)
    reps = -(-n_steps // len(period)) if n_steps else 0
    return period.repeat(reps)[:n_steps]


def random_phases(
    n_steps: int,
    mean_positive: float,
    mean_negative: float,
    p_positive: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Phases of a renewal process: random phase per segment, geometric segment lengths.

    A geometric length on ``{1, 2, ...}`` with mean ``m`` has success probability ``1/m``
    (``m = 1`` gives single steps). Segments are drawn in blocks, vectorised, until
    ``n_steps`` are covered.
    """
    if generator is None:
        raise PlasticRLError("a random phase schedule needs an explicit torch.Generator")
    chunks: list[torch.Tensor] = []
    covered = 0
    mean_len = p_positive * mean_positive + (1.0 - p_positive) * mean_negative
    while covered < n_steps:
        n_seg = int((n_steps - covered) / mean_len) + 16
        phase = (torch.rand(n_seg, generator=generator) < p_positive).long()
        u_pos = _geometric(n_seg, mean_positive, generator)
        u_neg = _geometric(n_seg, mean_negative, generator)
        lengths = torch.where(phase == 1, u_pos, u_neg).long()
        steps = torch.repeat_interleave(phase, lengths)
        chunks.append(steps)
        covered += steps.numel()
    return torch.cat(chunks)[:n_steps] if chunks else torch.zeros(0, dtype=torch.long)


def _geometric(n: int, mean: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` geometric draws on ``{1, 2, ...}`` with the given mean (mean 1: all ones)."""
    if mean <= 1.0:
        return torch.ones(n)
    return torch.empty(n).geometric_(1.0 / mean, generator=generator)


def segment_lengths(phase: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run-length decode ``phase [n]``: ``(values, lengths)`` of its maximal constant runs.

    Note that two consecutive segments of the same phase merge into one run here.
    """
    values, lengths = torch.unique_consecutive(phase, return_counts=True)
    return values, lengths
