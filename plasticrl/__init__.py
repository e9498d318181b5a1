"""plasticrl: reinforcement learning with plastic spiking controllers.

The public API, flat (each name imports its layer on first use, so ``import plasticrl`` stays cheap):

- :func:`make_env`: a batched MuJoCo vector env (Gymnasium ``VectorEnv`` API) with perturbations.
- :func:`make_policy`: a population-batched policy (plastic spiking, linear, MLP) for given spaces.
- :func:`rollout`: run every member of a genome batch for some episodes; returns, lengths, statistics.
- :func:`train`: train a config (YAML path or :class:`plasticrl.config.ExperimentConfig`) in a new run directory.
- :func:`evaluate`: evaluate agents (files or loaded agents) on nominal + a perturbation suite, paired.
- :func:`load`: a saved agent (``best_agent.pt`` or a run directory) that acts in any Gymnasium env.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: The Gymnasium ids registered as ``plasticrl/<id>`` on ``import plasticrl``, each with the Gymnasium id
#: whose TimeLimit it keeps (an adaptation task, its robot's). The same list as
#: ``plasticrl.envs.supported_ids()`` (a test holds them equal); written out so that registering
#: needs Gymnasium only, not the engine (torch, MuJoCo), which loads when an env is made.
GYM_IDS: dict[str, str] = {
    "Ant-v5": "Ant-v5", "AntDir-v5": "Ant-v5", "HalfCheetah-v5": "HalfCheetah-v5",
    "HalfCheetahDir-v5": "HalfCheetah-v5", "HalfCheetahVel-v5": "HalfCheetah-v5", "Hopper-v5": "Hopper-v5",
    "Humanoid-v5": "Humanoid-v5", "InvertedDoublePendulum-v5": "InvertedDoublePendulum-v5",
    "InvertedPendulum-v5": "InvertedPendulum-v5", "Swimmer-v5": "Swimmer-v5", "Walker2d-v5": "Walker2d-v5",
}


def _register_gym_ids() -> None:
    """Register ``plasticrl/<id>`` with Gymnasium by entry-point strings (idempotent; the same specs as
    :func:`plasticrl.envs.gym_env.register_envs`), so ``gymnasium.make("plasticrl/HalfCheetah-v5")``
    works after ``import plasticrl`` and the engine is imported only when an env is made."""
    import gymnasium

    for env_id, robot in GYM_IDS.items():
        name = f"plasticrl/{env_id}"
        if name not in gymnasium.registry:
            gymnasium.register(id=name, entry_point="plasticrl.envs.gym_env:PerturbedMujocoEnv",
                               vector_entry_point="plasticrl.envs.gym_env:_make_vector",
                               max_episode_steps=gymnasium.spec(robot).max_episode_steps,
                               kwargs={"env_id": env_id})


_register_gym_ids()

if TYPE_CHECKING:  # for type checkers and the API reference only; the imports below stay lazy
    import torch

    from plasticrl.agents.base import BatchedPolicy
    from plasticrl.config import ExperimentConfig
    from plasticrl.eval.result import EvaluationResult
    from plasticrl.eval.settings import EvalSettings
    from plasticrl.rollouts.loop import RolloutResult
    from plasticrl.rollouts.saved_agent import Agent
    from plasticrl.trainers.es import TrainResult


def make_env(env_id: str, num_envs: int = 1, **kwargs: Any):
    """A vector env of ``num_envs`` instances of ``env_id`` (``HalfCheetah-v5``, ``plasticrl/Ant-v5``, ...):
    the batched MuJoCo engine for the supported tasks, Gymnasium's vector env otherwise. ``kwargs`` are
    the task's Gymnasium v5 keyword arguments plus ``perturbation=``, ``max_episode_steps=`` and
    ``physics_backend=``. See :func:`plasticrl.envs.make_vec`."""
    from plasticrl.envs import make_vec

    return make_vec(env_id, num_envs, **kwargs)


def make_policy(config: Any, observation_space: Any, action_space: Any, device: str = "cpu",
                dtype: str = "float32") -> BatchedPolicy:
    """A population-batched policy from a policy config (dict or model) and single-env Box spaces.
    See :func:`plasticrl.agents.make_policy`."""
    from plasticrl.agents import make_policy as _make_policy

    return _make_policy(config, observation_space, action_space, device=device, dtype=dtype)


def rollout(policy: BatchedPolicy, env: Any, genome: torch.Tensor, episodes_per_member: int = 1,
            seed: int | None = None, **kwargs: Any) -> RolloutResult:
    """Run every member of ``genome [P, D]`` for ``episodes_per_member`` episodes in ``env`` (which has
    ``P * E`` instances). See :func:`plasticrl.rollouts.rollout` for the other keyword arguments."""
    from plasticrl.rollouts.loop import rollout as _rollout

    return _rollout(policy, env, genome, episodes_per_member, seed=seed, **kwargs)


def train(config: ExperimentConfig | str | os.PathLike, overrides: Sequence[str] = (),
          out: str | os.PathLike | None = None) -> TrainResult:
    """Train a config (YAML path or :class:`~plasticrl.config.ExperimentConfig`, plus ``key=value``
    overrides) with the trainer it names; returns the result with the run directory.
    See :func:`plasticrl.trainers.train.train`."""
    from plasticrl.trainers.train import train as _train

    return _train(config, overrides, out)


def evaluate(agents: Sequence[str | os.PathLike | Agent], env_id: str | None = None,
             settings: EvalSettings | None = None, **kwargs: Any) -> EvaluationResult:
    """Evaluate agents (files, run directories or loaded :class:`Agent` objects) on the nominal condition
    and every condition of the suite, on the same paired episodes. ``settings``
    (:class:`~plasticrl.eval.settings.EvalSettings`), or its fields as keywords (``suite="nominal",
    episodes=5, frozen_twins=True``): ``frozen_twins`` adds each plastic agent with its learning rates at 0.
    ``env_id`` defaults to the agents' own; ``env_kwargs=`` and the other keywords of
    :func:`plasticrl.eval.evaluate.evaluate` pass through. Returns the
    :class:`~plasticrl.eval.result.EvaluationResult` (``to_json()``: ``eval.json``);
    :mod:`plasticrl.report` writes it out."""
    from plasticrl.errors import PlasticRLError
    from plasticrl.eval.evaluate import evaluate as _evaluate
    from plasticrl.eval.settings import EvalSettings as _EvalSettings, eval_settings
    from plasticrl.rollouts.controllers import PlasticController, check_same_env, common_env_kwargs, load_controller
    from plasticrl.rollouts.saved_agent import Agent as _Agent

    passed = {k: kwargs.pop(k) for k in list(kwargs) if k in _EvalSettings.model_fields}
    if settings is None:
        settings = eval_settings(**passed)  # checked before any agent is loaded
    elif passed:
        raise PlasticRLError(f"give the evaluation settings as settings= or as keywords, not both; got both "
                             f"settings and {', '.join(sorted(passed))}")
    controllers = [PlasticController(a, f"agent{i}") if isinstance(a, _Agent)
                   else load_controller(a, obs_std_floor=settings.obs_std_floor) for i, a in enumerate(agents)]
    env_id = check_same_env(controllers, env_id)
    kwargs.setdefault("env_kwargs", common_env_kwargs(controllers))
    return _evaluate(controllers, env_id, settings, **kwargs)


def load(path: str | os.PathLike, device: str = "cpu", frozen: bool = False,
         obs_std_floor: float | None = None) -> Agent:
    """Load a trained agent file (or a run directory's best agent); ``frozen=True`` sets its
    within-episode learning rates to 0; ``obs_std_floor`` bounds the std observations are divided
    by (raw units; for noisy sensors). See :mod:`plasticrl.rollouts.saved_agent`."""
    from plasticrl.rollouts.saved_agent import load as _load

    return _load(path, device=device, frozen=frozen, obs_std_floor=obs_std_floor)


__all__ = ["__version__", "evaluate", "load", "make_env", "make_policy", "rollout", "train"]
