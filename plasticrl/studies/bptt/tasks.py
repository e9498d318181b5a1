"""Temporal tasks that can only be solved by learning *within* an episode.

Every episode draws fresh content (cue patterns, the cue-to-target mapping, stored patterns),
so no fixed set of weights can know the answer in advance: the network has to write what it
sees during the presentation phase into its fast weights and read it back at query time.
A network with plasticity switched off therefore sits at chance on the scored steps.

Episodes are batched: every tensor is time-major ``[T, B, ...]`` so that a trainer can feed
step ``t`` of all ``B`` episodes to a batched policy at once. Every random draw comes from the
``torch.Generator`` passed to :meth:`sample`: same generator state, same batch.

Each batch also carries a per-step ``signal [T, B]``: 1 on presentation steps, 0 elsewhere.
It is the task's "store now" cue. The trainer passes it to ``policy.learn`` so that
neuromodulated rules (modulation ``reward``/``rpe``/``neurons``) may learn to gate plasticity
with it; plain rules ignore it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from plasticrl.errors import PlasticRLError, check_choice


@dataclass(frozen=True)
class TemporalBatch:
    """One batch of episodes, time-major.

    ``obs [T, B, obs_dim]`` network inputs (noise already added); ``signal [T, B]``
    modulatory input for ``learn``; ``target [T, B, out_dim]`` desired readout in ``{-1, +1}``;
    ``scored [T, B, out_dim]`` which readout entries count for loss and accuracy;
    ``noise [B]`` the input-noise standard deviation each episode was drawn with.
    """

    obs: torch.Tensor
    signal: torch.Tensor
    target: torch.Tensor
    scored: torch.Tensor
    noise: torch.Tensor

    @property
    def steps(self) -> int:
        return self.obs.shape[0]

    @property
    def batch_size(self) -> int:
        return self.obs.shape[1]

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "TemporalBatch":
        """Move to the policy's device; float fields take ``dtype``, the mask stays boolean."""
        return TemporalBatch(self.obs.to(device, dtype), self.signal.to(device, dtype),
                             self.target.to(device, dtype), self.scored.to(device), self.noise.to(device, dtype))


class TemporalTask(Protocol):
    """What the BPTT trainer needs from a task."""

    name: str
    obs_dim: int
    out_dim: int
    steps: int

    def sample(self, batch_size: int, noise: float | torch.Tensor, generator: torch.Generator,
               dtype: torch.dtype = torch.float32) -> TemporalBatch: ...

    def step_loss(self, readout: torch.Tensor, batch: TemporalBatch, t: int) -> torch.Tensor: ...

    def accuracy(self, readouts: torch.Tensor, batch: TemporalBatch) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]: ...


def _positive(name: str, value: int, minimum: int = 1) -> int:
    if int(value) != value or value < minimum:
        raise PlasticRLError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _noise_per_episode(noise: float | torch.Tensor, batch_size: int, dtype: torch.dtype) -> torch.Tensor:
    level = torch.as_tensor(noise, dtype=dtype).reshape(-1)
    if level.numel() == 1:
        level = level.expand(batch_size).clone()
    if level.numel() != batch_size:
        raise PlasticRLError(f"noise has {level.numel()} entries; expected 1 or one per episode ({batch_size})")
    if not bool(torch.isfinite(level).all()) or bool((level < 0).any()):
        raise PlasticRLError(f"noise levels must be finite and >= 0; got {level.tolist()}")
    return level


def _random_signs(shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator).to(dtype) * 2.0 - 1.0


def _distinct_sign_patterns(batch: int, count: int, dim: int, generator: torch.Generator,
                            dtype: torch.dtype) -> torch.Tensor:
    """``[batch, count, dim]`` random ``+-1`` patterns, all different within each episode.

    Two equal cues with different targets would make an episode unsolvable, so episodes with
    a collision are redrawn (rare for ``2**dim >> count``; deterministic for the generator).
    """
    patterns = _random_signs((batch, count, dim), generator, dtype)
    while True:
        same = (patterns.unsqueeze(1) == patterns.unsqueeze(2)).all(-1)          # [B, C, C]
        clash = (same.sum(dim=(1, 2)) > count).nonzero().flatten()
        if clash.numel() == 0:
            return patterns
        patterns[clash] = _random_signs((clash.numel(), count, dim), generator, dtype)


def _add_noise(obs: torch.Tensor, level: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    # Additive Gaussian input noise on every channel and every step, gaps included, so the
    # network cannot tell "nothing shown" from "something shown" by exact zeros.
    return obs + level.view(1, -1, 1) * torch.randn(obs.shape, generator=generator, dtype=obs.dtype)


@dataclass(frozen=True)
class CueAssociationTask:
    """Cue -> target association, redrawn every episode.

    Presentation: each of ``n_pairs`` cues (random ``+-1`` patterns of ``cue_dim``, new each
    episode) is shown for ``present_steps`` control steps together with its target class as a
    one-hot on ``n_pairs`` extra input channels (the mapping is a fresh random permutation each
    episode), followed by ``gap_steps`` of blank input. Query: ``n_queries`` cues (drawn with
    replacement) are shown alone for ``query_steps`` steps each; on the last step of each query
    the readout (``n_pairs`` units in ``[-1, 1]``) must have its maximum at the cue's class.

    Chance accuracy is ``1 / n_pairs``. Difficulty grows with ``n_pairs`` (more to store, lower
    chance), smaller ``cue_dim`` (more overlap between cues) and the input-noise level.
    """

    n_pairs: int = 3
    cue_dim: int = 8
    present_steps: int = 2
    gap_steps: int = 1
    query_steps: int = 2
    n_queries: int = 3
    logit_scale: float = 5.0
    name: str = "cue_association"

    def __post_init__(self) -> None:
        _positive("n_pairs", self.n_pairs, 2)
        _positive("cue_dim", self.cue_dim)
        _positive("present_steps", self.present_steps)
        _positive("gap_steps", self.gap_steps, 0)
        _positive("query_steps", self.query_steps)
        _positive("n_queries", self.n_queries)
        if not self.logit_scale > 0:
            raise PlasticRLError(f"logit_scale must be > 0; got {self.logit_scale!r}")
        if 2 ** self.cue_dim < self.n_pairs:
            raise PlasticRLError(f"cue_dim={self.cue_dim} gives {2 ** self.cue_dim} distinct cues; "
                                 f"n_pairs={self.n_pairs} needs at least that many")

    @property
    def obs_dim(self) -> int:
        return self.cue_dim + self.n_pairs

    @property
    def out_dim(self) -> int:
        return self.n_pairs

    @property
    def steps(self) -> int:
        return self.n_pairs * (self.present_steps + self.gap_steps) + self.n_queries * self.query_steps

    @property
    def chance(self) -> float:
        return 1.0 / self.n_pairs

    def sample(self, batch_size: int, noise: float | torch.Tensor, generator: torch.Generator,
               dtype: torch.dtype = torch.float32) -> TemporalBatch:
        B, C, K = _positive("batch_size", batch_size), self.n_pairs, self.cue_dim
        level = _noise_per_episode(noise, B, dtype)
        cues = _distinct_sign_patterns(B, C, K, generator, dtype)               # cue c of each episode
        classes = torch.argsort(torch.rand(B, C, generator=generator), dim=1)   # cue c -> its class
        order = torch.argsort(torch.rand(B, C, generator=generator), dim=1)     # presentation order
        queried = torch.randint(0, C, (B, self.n_queries), generator=generator)
        T = self.steps
        rows = torch.arange(B)
        obs = torch.zeros(T, B, self.obs_dim, dtype=dtype)
        signal = torch.zeros(T, B, dtype=dtype)
        target = torch.zeros(T, B, C, dtype=dtype)
        scored = torch.zeros(T, B, C, dtype=torch.bool)
        t = 0
        for slot in range(C):
            cue = order[:, slot]
            onehot = F.one_hot(classes[rows, cue], C).to(dtype)
            for _ in range(self.present_steps):
                obs[t, :, :K] = cues[rows, cue]
                obs[t, :, K:] = onehot
                signal[t] = 1.0
                t += 1
            t += self.gap_steps
        for q in range(self.n_queries):
            cue = queried[:, q]
            for _ in range(self.query_steps):
                obs[t, :, :K] = cues[rows, cue]
                t += 1
            target[t - 1] = 2.0 * F.one_hot(classes[rows, cue], C).to(dtype) - 1.0
            scored[t - 1] = True
        return TemporalBatch(_add_noise(obs, level, generator), signal, target, scored, level)

    def step_loss(self, readout: torch.Tensor, batch: TemporalBatch, t: int) -> torch.Tensor:
        """Cross-entropy of ``logit_scale * readout`` on step ``t``, normalised so that the
        step losses of a whole episode sum to the mean over all scored queries."""
        rows = batch.scored[t].any(dim=1)
        if not bool(rows.any()):
            return readout.sum() * 0.0  # keeps the graph alive for segments without queries
        labels = batch.target[t].argmax(dim=1)
        ce = F.cross_entropy(self.logit_scale * readout[rows], labels[rows], reduction="sum")
        return ce / batch.scored.any(dim=2).sum()

    def accuracy(self, readouts: torch.Tensor, batch: TemporalBatch) -> torch.Tensor:
        """Fraction of scored queries per episode ``[B]`` whose readout argmax is the target class."""
        mask = batch.scored.any(dim=2)                                   # [T, B]
        hit = (readouts.argmax(dim=2) == batch.target.argmax(dim=2)) & mask
        return hit.sum(0).to(readouts.dtype) / mask.sum(0).clamp_min(1).to(readouts.dtype)

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "obs_dim": self.obs_dim, "out_dim": self.out_dim, "steps": self.steps,
                "chance": self.chance}


@dataclass(frozen=True)
class PatternCompletionTask:
    """One-shot storage and completion of random binary patterns.

    Presentation: ``n_patterns`` random ``+-1`` patterns of ``pattern_dim`` (new each episode)
    are each shown once for ``present_steps`` control steps, then ``gap_steps`` of blank input.
    Query: ``n_queries`` stored patterns (drawn with replacement) are shown with a random
    ``degrade`` fraction of their entries zeroed, for ``query_steps`` steps; on the last step the
    readout (``pattern_dim`` units in ``[-1, 1]``) must have the sign of the full pattern on the
    zeroed entries. Chance is 0.5 per entry; visible entries are not scored (copying them needs
    no memory), but they enter the loss with weight ``visible_weight``.
    """

    n_patterns: int = 2
    pattern_dim: int = 12
    degrade: float = 0.5
    present_steps: int = 2
    gap_steps: int = 1
    query_steps: int = 2
    n_queries: int = 2
    visible_weight: float = 0.1
    name: str = "pattern_completion"

    def __post_init__(self) -> None:
        _positive("n_patterns", self.n_patterns)
        _positive("pattern_dim", self.pattern_dim, 2)
        _positive("present_steps", self.present_steps)
        _positive("gap_steps", self.gap_steps, 0)
        _positive("query_steps", self.query_steps)
        _positive("n_queries", self.n_queries)
        hidden = round(self.degrade * self.pattern_dim)
        if not 0.0 < self.degrade < 1.0 or not 1 <= hidden < self.pattern_dim:
            raise PlasticRLError(f"degrade must leave at least one entry hidden and one visible of "
                                 f"pattern_dim={self.pattern_dim}; got degrade={self.degrade!r}")
        if self.visible_weight < 0:
            raise PlasticRLError(f"visible_weight must be >= 0; got {self.visible_weight!r}")

    @property
    def obs_dim(self) -> int:
        return self.pattern_dim

    @property
    def out_dim(self) -> int:
        return self.pattern_dim

    @property
    def hidden_entries(self) -> int:
        return round(self.degrade * self.pattern_dim)

    @property
    def steps(self) -> int:
        return self.n_patterns * (self.present_steps + self.gap_steps) + self.n_queries * self.query_steps

    @property
    def chance(self) -> float:
        return 0.5

    def sample(self, batch_size: int, noise: float | torch.Tensor, generator: torch.Generator,
               dtype: torch.dtype = torch.float32) -> TemporalBatch:
        B, n, D = _positive("batch_size", batch_size), self.n_patterns, self.pattern_dim
        level = _noise_per_episode(noise, B, dtype)
        patterns = _random_signs((B, n, D), generator, dtype)
        queried = torch.randint(0, n, (B, self.n_queries), generator=generator)
        T, rows = self.steps, torch.arange(B)
        obs = torch.zeros(T, B, D, dtype=dtype)
        signal = torch.zeros(T, B, dtype=dtype)
        target = torch.zeros(T, B, D, dtype=dtype)
        scored = torch.zeros(T, B, D, dtype=torch.bool)
        t = 0
        for i in range(n):
            for _ in range(self.present_steps):
                obs[t] = patterns[:, i]
                signal[t] = 1.0
                t += 1
            t += self.gap_steps
        for q in range(self.n_queries):
            full = patterns[rows, queried[:, q]]
            # Exactly `hidden_entries` zeroed entries per query: the first ones of a random ranking.
            rank = torch.argsort(torch.rand(B, D, generator=generator), dim=1)
            hide = torch.zeros(B, D, dtype=torch.bool).scatter_(1, rank[:, : self.hidden_entries], True)
            for _ in range(self.query_steps):
                obs[t] = full.masked_fill(hide, 0.0)
                t += 1
            target[t - 1] = full
            scored[t - 1] = hide
        return TemporalBatch(_add_noise(obs, level, generator), signal, target, scored, level)

    def step_loss(self, readout: torch.Tensor, batch: TemporalBatch, t: int) -> torch.Tensor:
        """Squared error on the query's last step: hidden entries weight 1, visible ones
        ``visible_weight``; normalised by the episode's total count of hidden entries."""
        queried = batch.target[t].abs().sum(dim=1) > 0                   # rows with a query ending at t
        if not bool(queried.any()):
            return readout.sum() * 0.0
        weight = torch.where(batch.scored[t], 1.0, self.visible_weight) * queried.unsqueeze(1)
        err = (readout - batch.target[t]).pow(2) * weight
        return err.sum() / batch.scored.sum()

    def accuracy(self, readouts: torch.Tensor, batch: TemporalBatch) -> torch.Tensor:
        """Fraction of hidden entries per episode ``[B]`` recovered with the right sign."""
        hit = (torch.sign(readouts) == batch.target) & batch.scored
        return hit.sum(dim=(0, 2)).to(readouts.dtype) / batch.scored.sum(dim=(0, 2)).clamp_min(1).to(readouts.dtype)

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "obs_dim": self.obs_dim, "out_dim": self.out_dim, "steps": self.steps,
                "chance": self.chance}


TASKS = {"cue_association": CueAssociationTask, "pattern_completion": PatternCompletionTask}


def make_task(name: str, **options: Any) -> TemporalTask:
    """Build a task by name; unknown names and options raise errors listing the valid ones."""
    check_choice("temporal task", name, TASKS)
    cls = TASKS[name]
    valid = [f for f in cls.__dataclass_fields__ if f != "name"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise PlasticRLError(f"unknown option(s) {', '.join(map(repr, unknown))} for task {name!r}; "
                             f"valid options: {', '.join(valid)}")
    return cls(**options)


def chance_accuracy(task: TemporalTask) -> float:
    """Accuracy of guessing on the scored entries (``1/n_pairs`` or ``0.5``)."""
    return float(getattr(task, "chance", math.nan))
