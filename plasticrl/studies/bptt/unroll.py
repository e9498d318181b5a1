"""Drive a batched policy through a :class:`TemporalBatch`, optionally with truncated BPTT.

One control step is ``readout = policy.act(obs[t])`` followed by ``policy.learn(signal[t])``:
the rule updates the fast weights *after* the readout, so what the network answers on step
``t`` depends only on what it stored on earlier steps.

The readout is the policy's action with bounds ``[-1, 1]``: membrane decoding gives
``tanh(v_out)``, a smooth function of the output potentials, which the tasks score.

Truncated BPTT cuts the graph through the per-episode state (potentials, traces, fast
weights, BCM thresholds) with ``policy.detach_state()`` and re-derives the per-row parameters
from the flat genome (their graph is freed by each ``backward``) with
``policy.reload_parameters(flat)``, which keeps the running episodes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from plasticrl.errors import PlasticRLError
from plasticrl.studies.bptt.tasks import TemporalBatch, TemporalTask


def detach_policy_state(policy: Any) -> None:
    """Cut the autograd graph through the policy's per-episode state, keeping its values."""
    policy.detach_state()


def restart_graph(policy: Any, flat: torch.Tensor) -> None:
    """Continue the episodes with a fresh graph: detach the state and re-derive the parameters
    from ``flat`` (the previous parameter views were freed by ``backward``)."""
    policy.detach_state()
    policy.reload_parameters(flat)


@dataclass
class UnrollResult:
    """``readouts [T, B, out]`` (detached) and the summed task loss (a float)."""

    readouts: torch.Tensor
    loss: float


def unroll(
    policy: Any,
    flat: torch.Tensor,
    batch: TemporalBatch,
    task: TemporalTask,
    truncation: int | None = None,
    backward: bool = False,
    on_segment: Callable[[int, int], None] | None = None,
) -> UnrollResult:
    """Run every episode of ``batch`` through ``policy`` loaded with genome ``flat [1, D]``.

    With ``backward=True`` the loss of each segment of ``truncation`` control steps (whole
    episode if ``None``) is back-propagated as soon as the segment ends, and the graph is cut
    there: gradients accumulate in ``flat.grad`` and never flow across a segment boundary.
    ``on_segment(start, stop)`` is called after each segment (for logging or tests).
    """
    if flat.dim() != 2 or flat.shape[0] != 1:
        raise PlasticRLError(f"flat genome must have shape [1, D] (one member, B episodes); got {list(flat.shape)}")
    T, B = batch.steps, batch.batch_size
    if truncation is not None and (int(truncation) != truncation or truncation < 1):
        raise PlasticRLError(f"truncation must be a positive number of control steps or None; got {truncation!r}")
    window = T if truncation is None else int(truncation)
    if batch.obs.shape[2] != policy.obs_dim or batch.target.shape[2] != policy.act_dim:
        raise PlasticRLError(f"task has obs_dim={batch.obs.shape[2]}, out_dim={batch.target.shape[2]}; the policy "
                             f"has obs_dim={policy.obs_dim}, act_dim={policy.act_dim}")
    batch = batch.to(policy.device, policy.dtype)
    obs, signal = batch.obs, batch.signal
    policy.load_genome(flat, episodes_per_member=B)
    readouts, total = [], 0.0
    for start in range(0, T, window):
        stop = min(start + window, T)
        if start > 0 and backward:
            restart_graph(policy, flat)
        segment_loss = None
        for t in range(start, stop):
            out = policy.act(obs[t])
            policy.learn(signal[t])
            step = task.step_loss(out, batch, t)
            segment_loss = step if segment_loss is None else segment_loss + step
            readouts.append(out.detach())
        if backward and segment_loss.requires_grad:
            segment_loss.backward()
        total += float(segment_loss.detach())
        if on_segment is not None:
            on_segment(start, stop)
    return UnrollResult(torch.stack(readouts), total)


def evaluate(
    policy: Any, flat: torch.Tensor, task: TemporalTask, noise: float, batch_size: int, seed: int
) -> dict[str, float]:
    """Accuracy and loss on ``batch_size`` fresh episodes drawn with ``seed`` (no gradients)."""
    gen = torch.Generator().manual_seed(int(seed))
    batch = task.sample(batch_size, noise, gen, dtype=policy.dtype)
    with torch.no_grad():
        result = unroll(policy, flat.detach(), batch, task)
    acc = task.accuracy(result.readouts.cpu(), batch.to("cpu", result.readouts.dtype))
    valid = ~policy.invalid.cpu()
    return {
        "accuracy": float(acc.mean()),
        "accuracy_sem": float(acc.std(unbiased=True) / max(batch_size, 1) ** 0.5) if batch_size > 1 else 0.0,
        "loss": result.loss,
        "invalid_fraction": float(1.0 - valid.to(torch.float64).mean()),
    }
