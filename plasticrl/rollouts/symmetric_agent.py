"""Wrap a saved agent in a ``kind: symmetric`` policy (:mod:`plasticrl.agents.symmetric`): the same genome,
its observation statistics moved inside the policy (they must apply after the symmetry's turn), and a
heading that is observed (the oracle) or learned from the reward within the episode.

    write_symmetric_agent("ant-dir-plastic.pt", "pretrained:ant-plastic", {"source": "inferred", "eta": 0.1},
                          metadata={"env_id": "AntDir-v5", "env_kwargs": {"directions": 4}})
    agent = plasticrl.load("ant-dir-plastic.pt")
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from plasticrl.agents.config import POLICY_KINDS, SymmetricConfig, SymmetricGoalConfig
from plasticrl.errors import PlasticRLError, validation_error
from plasticrl.io import atomic_torch_save, torch_load
from plasticrl.rollouts.obs_norm import ObsNormalizer
from plasticrl.rollouts.pretrained import is_pretrained, resolve_pretrained
from plasticrl.rollouts.saved_agent import AGENT_FORMAT, Agent, load


def base_obs_norm(stats: ObsNormalizer | None) -> dict[str, Any] | None:
    """A saved agent's observation statistics as a symmetric policy's ``base_obs_norm`` (the mean and the std
    it divides by, and the clip), ``None`` for an agent trained without them."""
    if stats is None:
        return None
    return {"mean": stats.mean.tolist(), "std": stats.std.tolist(), "clip": stats.clip}


def write_symmetric_agent(path: str | os.PathLike, base_agent: str | os.PathLike,
                          goal: Mapping[str, Any] | SymmetricGoalConfig, symmetry: str = "ant_quarter_turns",
                          metadata: Mapping[str, Any] | None = None) -> Path:
    """Write to ``path`` (atomically) the agent file of the saved agent ``base_agent`` (a path or
    ``pretrained:NAME``) steered by ``symmetry`` with ``goal`` (:class:`~plasticrl.agents.config.
    SymmetricGoalConfig`); ``metadata`` updates the base's (set ``env_id`` and ``env_kwargs`` to the task
    the new agent is for: ``plasticrl eval`` runs it there). Every check runs before the file is written."""
    source = resolve_pretrained(base_agent) if is_pretrained(base_agent) else Path(base_agent)
    agent = load(source)  # one clear error for a file that is not an agent
    if agent.policy_config.kind == "symmetric":
        raise PlasticRLError(f"{str(base_agent)!r} is already a symmetric agent; wrap the agent it steers")
    norm = base_obs_norm(agent.obs_norm)
    base = torch_load(source)  # the payload the new file copies (action bounds, genome, metadata)
    try:
        goal_config = (goal if isinstance(goal, SymmetricGoalConfig)
                       else SymmetricGoalConfig.model_validate(dict(goal)))
    except ValidationError as exc:
        raise validation_error(exc, "symmetric agent", prefix=["goal"]) from None
    try:
        config = SymmetricConfig.model_validate({"kind": "symmetric", "symmetry": symmetry,
                                                 "goal": goal_config.model_dump(), "base": base["policy_config"],
                                                 "base_obs_norm": norm})
    except ValidationError as exc:
        raise validation_error(exc, "symmetric agent", union_tags=POLICY_KINDS) from None
    observed = goal_config.source == "observed"
    payload = {**base, "format": AGENT_FORMAT, "kind": "plasticrl-agent",
               "policy_config": config.model_dump(mode="json"),
               "obs_dim": base["obs_dim"] + (2 if observed else 0), "obs_norm": None,
               "metadata": {**base.get("metadata", {}), **dict(metadata or {}), "base_agent": str(base_agent)}}
    Agent(payload)  # builds the policy: the symmetry fits the base's observation and action
    return atomic_torch_save(path, payload)
