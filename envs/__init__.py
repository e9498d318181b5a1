"""Environment side of plasticrl (installed as plasticrl.envs).

- :func:`make_vec` builds a batched, threaded MuJoCo vector env for the v5 locomotion tasks
  (same results as Gymnasium's sync vector env) and falls back to Gymnasium's own sync vector
  env for any other registered id.
- Perturbations (:mod:`plasticrl.envs.perturb`) are named, parameterised, composable and per
  instance, passed at construction or through ``reset(options=...)``.
- Adaptation tasks (``HalfCheetahDir-v5``, ``AntDir-v5``, ``HalfCheetahVel-v5``) draw a goal per
  episode from the reset seed and may switch it mid-episode (:mod:`plasticrl.envs.tasks.adaptation`).
- :func:`catalog` lists envs, perturbations with their parameters, and suites as JSON-ready data.
- Importing this package (or just ``import plasticrl``) registers ``plasticrl/<Task>-v5`` ids with Gymnasium.
- A condition of the ``novel`` suite by name (``dead_actuator_mid@mild``) is accepted wherever a
  perturbation is (:func:`~plasticrl.envs.perturb.suites.condition`).
"""
from __future__ import annotations

from typing import Any

import gymnasium

from . import mujoco_warnings
from .catalog import catalog
from .errors import EnvError
from .gym_env import PerturbedMujocoEnv, register_envs
from .perturb import Param, Perturbation, PerturbationType, make, parse, register_model_edit
from .perturb.suites import TRAINING_DISTRIBUTIONS, condition, expand_condition_names, sample_damage, sample_train, suite, suites_of

mujoco_warnings.install()
from .registry import canonical_id, make_config, supported_ids
from .vector import MujocoVectorEnv


def make_vec(env_id: str, num_envs: int = 1, *, num_threads: int | None = None,
             perturbation: Any = None, physics_backend: str = "auto",
             **kwargs: Any) -> gymnasium.vector.VectorEnv:
    """A vector env of ``num_envs`` instances of ``env_id``.

    Args:
        env_id: a supported MuJoCo v5 id (see :func:`supported_ids`), optionally prefixed
            ``plasticrl/``; any other Gymnasium id falls back to
            ``gymnasium.make_vec(env_id, num_envs, vectorization_mode="sync", **kwargs)``.
        num_envs: number of instances.
        num_threads: physics worker threads (default: all CPUs available to this process).
        physics_backend: "batch" (``mujoco.batch``, MuJoCo >= 4: one C++ call steps every
            instance), "threads" (``mj_step`` per instance on Python threads) or "auto" (batch
            unless MuJoCo lacks it or the task needs contact forces: Ant, Humanoid). Same
            trajectories either way.
        perturbation: default perturbation condition of every instance (see
            :mod:`plasticrl.envs.perturb.spec`); per-reset conditions go through
            ``reset(options={"perturbation": ...})`` or ``{"perturbations": [...]}``.
        **kwargs: Gymnasium's keyword arguments for the task (``xml_file``, ``frame_skip``,
            reward weights, ``reset_noise_scale``, observation switches, ``max_episode_steps``);
            for the adaptation tasks also their goal keywords (``direction``, ``directions``,
            ``target_velocity``, ``switch_step``, ``goal_observed``; see envs/README.md).
    """
    if canonical_id(env_id) in supported_ids():
        return MujocoVectorEnv(make_config(env_id, **kwargs), num_envs, num_threads=num_threads,
                               perturbation=perturbation, physics_backend=physics_backend)
    if perturbation is not None:
        raise EnvError(f"perturbations need a natively batched env; {env_id!r} is not one of "
                       f"{', '.join(supported_ids())}")
    if env_id in gymnasium.registry:
        return gymnasium.make_vec(env_id, num_envs, vectorization_mode="sync", **kwargs)
    raise EnvError(f"unknown env id {env_id!r}; natively batched: {', '.join(supported_ids())}; "
                   "or any id registered with Gymnasium (gymnasium.registry)")


register_envs()

__all__ = ["EnvError", "MujocoVectorEnv", "Perturbation", "PerturbedMujocoEnv", "TRAINING_DISTRIBUTIONS", "catalog",
           "Param", "PerturbationType", "condition", "expand_condition_names", "make", "make_vec", "parse",
           "register_model_edit", "sample_damage", "sample_train", "suite", "suites_of",
           "supported_ids"]
