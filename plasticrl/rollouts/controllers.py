"""Controllers the evaluator drives: one interface over plasticrl agents and SB3 models.

A controller acts on a whole batch of rows ``[N, obs_dim]`` at once, so the evaluator steps
every (condition, episode) row in one call. ``learn`` carries the previous step's reward to
plastic policies; controllers without within-episode learning ignore it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from plasticrl.errors import PlasticRLError


class Controller(Protocol):
    """What :func:`plasticrl.rollouts.batch.run_batch` needs from an agent."""

    name: str
    env_id: str | None  # the env it was trained on, when its file says so
    env_kwargs: dict[str, Any]

    def start(self, rows: int, seeds: list[int] | None = None) -> None:
        """Prepare ``rows`` fresh episodes (weights and per-episode state reset); ``seeds``: the
        env reset seed of each row, which a policy with random initial weights draws them from."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """``obs [rows, obs_dim]`` (raw) -> ``actions [rows, act_dim]``."""

    def learn(self, reward: np.ndarray) -> None:
        """This step's reward ``[rows]`` (within-episode plasticity)."""

    def invalid(self) -> np.ndarray:
        """``[rows]`` bool: rows whose controller went non-finite."""


class PlasticController:
    """A plasticrl :class:`~plasticrl.rollouts.saved_agent.Agent` as a batched controller (one policy row per episode)."""

    def __init__(self, agent, name: str):
        self.agent = agent
        self.name = name
        self.env_id = agent.metadata.get("env_id")
        self.env_kwargs = dict(agent.metadata.get("env_kwargs") or {})
        self.policy = agent.policy
        self.obs_dim = int(agent.policy.obs_dim)  # what the agent reads; run_batch checks the env gives it

    def start(self, rows: int, seeds: list[int] | None = None) -> None:
        # One member per row (P = rows, E = 1) so that invalid flags come back per row.
        genome = self.agent.genome.unsqueeze(0).expand(rows, -1).to(self.policy.device)
        self.policy.load_genome(genome, episodes_per_member=1, seeds=seeds)

    @torch.inference_mode()
    def act(self, obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float64)
        if self.agent.obs_norm is not None:
            x = self.agent.obs_norm.normalise(x)
        actions = self.policy.act(x.to(device=self.policy.device, dtype=self.policy.dtype))
        return actions.cpu().numpy().astype(np.float64)

    @torch.inference_mode()
    def learn(self, reward: np.ndarray) -> None:
        self.policy.learn(torch.as_tensor(reward, dtype=self.policy.dtype, device=self.policy.device))

    def invalid(self) -> np.ndarray:
        return self.policy.invalid.cpu().numpy().astype(bool)


def load_controller(path: str | os.PathLike, name: str | None = None, device: str = "cpu",
                    obs_std_floor: float | None = None, env_id: str | None = None,
                    trust_pickle: bool = False) -> Controller:
    """A controller from an agent file: ``*.zip`` = Stable-Baselines3 model, else a plasticrl agent
    (a run directory picks its ``best_agent.pt``). ``obs_std_floor`` replaces a plasticrl agent's
    floor on the observation std; SB3 models keep their own normalisation. An SB3 model is loaded
    without unpickling (``env_id`` gives the spaces of one without a sidecar); ``trust_pickle``
    lets SB3 unpickle what plasticrl cannot rebuild (see :mod:`plasticrl.agents.sb3`)."""
    path = Path(path)
    label = name or _default_name(path)
    if path.suffix == ".zip":
        from plasticrl.agents.sb3 import SB3Controller

        return SB3Controller.load(path, name=label, device=device, env_id=env_id, trust_pickle=trust_pickle)
    from plasticrl.rollouts.saved_agent import load

    return PlasticController(load(path, device=device, obs_std_floor=obs_std_floor), label)


def frozen_twins(controllers: list[Controller], device: str | None = None) -> list[Controller]:
    """For every plasticrl controller whose policy learns within the episode, the same agent with
    its learning rates set to 0, labelled ``NAME/frozen`` (evaluated on the same paired episodes,
    the difference is what within-episode learning contributes). Others get no twin. ``device``:
    default, each agent's own."""
    from plasticrl.rollouts.saved_agent import has_plasticity

    return [PlasticController(c.agent.frozen_copy(device), f"{c.name}/frozen") for c in controllers
            if isinstance(c, PlasticController) and has_plasticity(c.agent.policy_config)]


def _default_name(path: Path) -> str:
    # "runs/ant-bcm-2026.../best_agent.pt" -> "ant-bcm-2026.../best_agent"; a bare file keeps its stem;
    # "pretrained:NAME" -> "NAME"
    if str(path).startswith("pretrained:"):
        return str(path)[len("pretrained:"):]
    if path.is_dir():
        return path.name
    return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem


def check_same_env(controllers: list[Controller], env_id: str | None) -> str:
    """The env to evaluate on: ``env_id`` if given, else the one all controllers were trained on."""
    if env_id is not None:
        return env_id
    ids = {c.env_id for c in controllers if c.env_id}
    if len(ids) != 1:
        raise PlasticRLError("give --env: the agents' files name "
                             + (f"different envs {sorted(ids)}" if ids else "no env"))
    return ids.pop()


def _without_defaults(env_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` less the entries that equal the task's own default (``goal_observed: false`` is what no
    ``goal_observed`` means), so that two records of the same setting compare equal; as given for an env the
    batched engine does not run."""
    from plasticrl.envs.registry import canonical_id
    from plasticrl.envs.tasks import TASKS

    task = TASKS.get(canonical_id(env_id))
    if task is None:
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if not (k in task.defaults and task.defaults[k] == v)}


def common_env_kwargs(controllers: list[Controller]) -> dict[str, Any]:
    """The env keyword arguments the controllers were trained with; they must agree. An agent trained on
    the task's defaults records ``{}``: a setting too, not a blank. Files that do not name their env (a
    bare SB3 zip, a hand-made agent file) record no settings and agree with any."""
    distinct = {repr(sorted(_without_defaults(c.env_id, c.env_kwargs).items())) for c in controllers if c.env_id}
    if len(distinct) > 1:
        raise PlasticRLError(f"the agents were trained with different env keyword arguments {sorted(distinct)}; "
                             "evaluate them separately so each keeps its own")
    return dict(next((c.env_kwargs for c in controllers if c.env_kwargs), {}))
