"""Robustness of one agent across named conditions (perturbations), with paired episodes.

Every condition replays the same episode seeds, so the difference between a condition and
the nominal one is the effect of the perturbation, not of different initial states. The E
episodes of a condition run as one batch in the batched engine; conditions run one after
another through the same engine (a reset with a new perturbation option switches them).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from plasticrl.rollouts.saved_agent import Agent
from plasticrl.rollouts.loop import rollout


@dataclass
class ConditionResult:
    name: str
    perturbation: Any
    returns: list[float]
    lengths: list[int]

    @property
    def mean(self) -> float:
        return float(sum(self.returns) / len(self.returns))

    @property
    def std(self) -> float:
        m = self.mean
        return math.sqrt(sum((r - m) ** 2 for r in self.returns) / len(self.returns))

    def as_dict(self) -> dict[str, Any]:
        return {"condition": self.name, "perturbation": self.perturbation, "mean_return": self.mean,
                "std_return": self.std, "returns": self.returns, "lengths": self.lengths}


def evaluate_conditions(
    agent: Agent,
    env_id: str,
    conditions: Mapping[str, Any],
    episodes: int = 5,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
) -> list[ConditionResult]:
    """Mean return of ``agent`` in each condition (``None`` = nominal) over ``episodes`` paired episodes."""
    from plasticrl.envs import make_vec

    env = make_vec(env_id, episodes, **dict(env_kwargs or {}))
    results = []
    try:
        genome = agent.genome.unsqueeze(0).to(agent.policy.device)
        for name, perturbation in conditions.items():
            options = {"perturbation": perturbation} if perturbation is not None else None
            res = rollout(agent.policy, env, genome, episodes_per_member=episodes, seed=seed,
                          obs_norm=agent.obs_norm, reset_options=options)
            returns = res.returns[0]
            if bool(res.invalid[0]):
                returns = torch.full_like(returns, -math.inf)
            results.append(ConditionResult(name, perturbation, [float(r) for r in returns],
                                           [int(n) for n in res.lengths[0]]))
    finally:
        env.close()
    return results
