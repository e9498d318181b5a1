"""Snapshots of a batched policy's per-episode state for recurrent PPO.

A policy's episode state (:class:`~plasticrl.agents.state.EpisodeState`) is a tree of ``[N, ...]``
tensors, one row per environment, walked by :func:`plasticrl.agents.state.map_tree`. PPO stores it
at every sequence start during the rollout and, for an update, gathers the rows of the chosen
sequences into one batch to replay them.

Fast weights get special treatment on restore. A stored fast weight is a detached value, so a
replay from it would give the *initial* weights (the main policy parameters) no gradient at
all in every sequence that does not contain an episode start. :func:`restore` therefore adds
``w_init - w_init.detach()`` (value exactly 0, gradient the identity): the replayed value is
bit-for-bit the stored one (the recorded actions are reproduced exactly) and the gradient
reaches the initial weights as if the plastic change accumulated before the sequence did not
depend on them, the same approximation truncated BPTT makes for every other state variable.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from plasticrl.agents.state import EpisodeState, map_tree


def snapshot(state: Any) -> Any:
    """A detached copy that later in-place updates of the live state cannot touch."""
    return map_tree(lambda t: t.detach().clone(), state)


def stack(snapshots: Sequence[Any]) -> Any:
    """``C`` snapshots of ``[N, ...]`` rows -> one tree of ``[C, N, ...]`` tensors."""
    first = snapshots[0]
    return map_tree(lambda *leaves: torch.stack(leaves), first, *snapshots[1:])


def gather(stacked: Any, chunk: torch.Tensor, row: torch.Tensor) -> Any:
    """Rows ``(chunk[i], row[i])`` of a stacked tree -> a tree of ``[M, ...]`` tensors."""
    return map_tree(lambda t: t[chunk, row], stacked)


def restore(stored: EpisodeState, initial_weights: Sequence[torch.Tensor] | None) -> EpisodeState:
    """The state to replay from: ``stored`` with a straight-through path to the initial weights.

    ``initial_weights`` are the policy's current per-row initial weights (with gradient); the
    stored fast weights (``network.weights``, when the policy has them) get
    ``w + (w_init - w_init.detach())``.
    """
    state = map_tree(lambda t: t.clone(), stored)
    network = state.network
    if initial_weights is None or getattr(network, "weights", None) is None:
        return state
    network.weights = [w + (w0 - w0.detach()) if w0.requires_grad else w
                       for w, w0 in zip(network.weights, initial_weights)]
    return state
