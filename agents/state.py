"""Episode state of the batched policies: the typed containers and the one tree walker.

A policy's per-episode state is a small tree of ``[N, ...]`` tensors, one row per env (rows
``N = P * E``, see :mod:`plasticrl.agents.base`). Each policy kind declares its own state type
(:class:`~plasticrl.agents.plastic_spiking.SpikingEpisodeState`,
:class:`~plasticrl.agents.hebbian_mlp.HebbianEpisodeState`; stateless policies have none), and
:meth:`BatchedPolicy.episode_state() <plasticrl.agents.base.BatchedPolicy.episode_state>` wraps
it with the stored reward input as one :class:`EpisodeState`.

The containers are dataclasses whose fields hold tensors, NamedTuples of tensors
(:class:`~plasticrl.snn.LIFState`, ...), lists over layers and dicts keyed by layer index.
:func:`map_tree` walks all of them; :func:`detach_tree` (truncated BPTT), :func:`merge_rows`
(resetting some rows) and recurrent PPO's snapshots (:mod:`plasticrl.trainers.ppo.state_tree`)
are built on it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import torch


@dataclasses.dataclass
class ContextState:
    """A reward-latched context unit's per-row state (:class:`~plasticrl.agents.config.ContextUnitConfig`)."""

    value: torch.Tensor
    """``[N]``: the unit's value ``c`` in ``[-1, 1]``, the network's last input"""
    baseline: torch.Tensor | None
    """``[N]``: the running reward baseline of ``modulation: rpe``; ``None`` with ``modulation: reward``"""


class EpisodeState(NamedTuple):
    """What :meth:`BatchedPolicy.episode_state` returns and :meth:`BatchedPolicy.set_episode_state` takes:
    everything a row carries from one control step to the next."""

    network: Any
    """The policy kind's own state (:class:`~plasticrl.agents.plastic_spiking.SpikingEpisodeState`,
    :class:`~plasticrl.agents.hebbian_mlp.HebbianEpisodeState`), ``None`` for a stateless policy"""
    previous_reward: torch.Tensor | None
    """``[N]``: the reward the last ``learn`` stored, the next ``act``'s extra input (``reward_input``); ``None``
    without reward input"""
    context: ContextState | None = None
    """The context unit's state (``context_unit.enabled``); ``None`` without a context unit"""


def map_tree(fn: Callable[..., Any], tree: Any, *others: Any) -> Any:
    """Apply ``fn`` to every tensor leaf of ``tree`` (and the matching leaves of ``others``, trees of
    the same structure), keeping the structure: dicts, lists, tuples, NamedTuples and dataclass
    instances are walked and rebuilt; other leaves (``None``, numbers) are kept as they are."""
    if isinstance(tree, torch.Tensor):
        return fn(tree, *others)
    if isinstance(tree, dict):
        return {k: map_tree(fn, v, *[o[k] for o in others]) for k, v in tree.items()}
    if isinstance(tree, list):
        return [map_tree(fn, v, *[o[i] for o in others]) for i, v in enumerate(tree)]
    if isinstance(tree, tuple):
        items = [map_tree(fn, v, *[o[i] for o in others]) for i, v in enumerate(tree)]
        return type(tree)(*items) if hasattr(tree, "_fields") else tuple(items)
    names = _dataclass_fields(type(tree))
    if names:
        return type(tree)(**{n: map_tree(fn, getattr(tree, n), *[getattr(o, n) for o in others]) for n in names})
    return tree  # None, floats: no rows to carry


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _dataclass_fields(cls: type) -> tuple[str, ...]:
    """The field names of a dataclass type, () for any other type (cached: looked up at every walk)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else ()
        _FIELD_NAMES[cls] = names
    return names


def detach_tree(tree: Any) -> Any:
    """``tree`` with every tensor detached (same values, no autograd history)."""
    return map_tree(torch.Tensor.detach, tree)


def merge_rows(mask: torch.Tensor, fresh: Any, old: Any) -> Any:
    """Take ``fresh`` for the rows where ``mask [N]`` is true, ``old`` elsewhere, through the whole tree."""
    return map_tree(lambda o, f: torch.where(mask.view(-1, *([1] * (o.dim() - 1))), f, o), old, fresh)
