"""Snapshots of a batched policy's per-episode state for recurrent PPO.

A policy's episode state is a tree (dicts, lists, tuples, NamedTuples) of ``[N, ...]``
tensors, one row per environment. PPO stores it at every sequence start during the rollout
and, for an update, gathers the rows of the chosen sequences into one batch to replay them.

Fast weights get special treatment on restore. A stored fast weight is a detached value, so a
replay from it would give the *initial* weights (the main policy parameters) no gradient at
all in every sequence that does not contain an episode start. :func:`restore` therefore adds
``w_init - w_init.detach()`` (value exactly 0, gradient the identity): the replayed value is
bit-for-bit the stored one (the recorded actions are reproduced exactly) and the gradient
reaches the initial weights as if the plastic change accumulated before the sequence did not
depend on them, the same approximation truncated BPTT makes for every other state variable.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


def map_tree(fn: Callable[..., torch.Tensor], tree: Any, *others: Any) -> Any:
    """Apply ``fn`` to every tensor leaf of ``tree`` (and the matching leaves of ``others``)."""
    if isinstance(tree, torch.Tensor):
        return fn(tree, *others)
    if isinstance(tree, dict):
        return {k: map_tree(fn, v, *(o[k] for o in others)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [map_tree(fn, v, *(o[i] for o in others)) for i, v in enumerate(tree)]
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(map_tree(fn, v, *(o[i] for o in others)) for i, v in enumerate(tree)))
    if isinstance(tree, tuple):
        return tuple(map_tree(fn, v, *(o[i] for o in others)) for i, v in enumerate(tree))
    return tree  # None, floats: no rows to carry


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


def restore(stored: Any, initial_weights: Sequence[torch.Tensor] | None) -> Any:
    """The state to replay from: ``stored`` with a straight-through path to the initial weights.

    ``initial_weights`` are the policy's current per-row initial weights (with gradient); the
    stored ``"weights"`` entry (when the state has one) gets ``w + (w_init - w_init.detach())``.
    """
    state = map_tree(lambda t: t.clone(), stored)
    if initial_weights is None or not isinstance(state, dict) or "weights" not in state:
        return state
    state["weights"] = [w + (w0 - w0.detach()) if w0.requires_grad else w
                        for w, w0 in zip(state["weights"], initial_weights)]
    return state
