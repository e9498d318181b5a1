"""Environment set-up from an :class:`~plasticrl.config.ExperimentConfig`: the vector env, its keyword
arguments and the reset options of training rollouts (nominal, one fixed perturbation, or a named
training distribution drawn per row or shared across a member's episodes)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from plasticrl.config import ExperimentConfig
from plasticrl.errors import PlasticRLError

if TYPE_CHECKING:
    import torch

    from plasticrl.agents.base import BatchedPolicy
    from plasticrl.rollouts.obs_norm import ObsNormalizer


def env_kwargs(config: ExperimentConfig) -> dict[str, Any]:
    """Keyword arguments for ``make_vec``: the task's kwargs plus the episode cap."""
    kwargs = dict(config.env.kwargs)
    if config.env.max_episode_steps is not None:
        kwargs.setdefault("max_episode_steps", config.env.max_episode_steps)
    return kwargs


def training_reset_options(config: ExperimentConfig, rows: int, rng_seed: int,
                           episodes_per_member: int = 1) -> dict[str, Any] | None:
    """Reset options for training rollouts: nominal, one fixed perturbation for every row, the
    env's ``train`` distribution (domain randomisation) or its ``damage`` distribution (damage to
    limbs the novel suite leaves intact), drawn from ``rng_seed``: one draw per row, or with
    ``env.train_perturbation_draw: shared`` (ES: give ``episodes_per_member``) one per episode
    slot, row ``m * E + e`` (member ``m``, episode ``e``) getting draw ``e``."""
    spec = config.env.train_perturbation
    if spec is None:
        return None
    from plasticrl.envs import TRAINING_DISTRIBUTIONS

    if isinstance(spec, str) and spec in TRAINING_DISTRIBUTIONS:
        sample = TRAINING_DISTRIBUTIONS[spec]
        rng = np.random.default_rng(rng_seed)
        if config.env.train_perturbation_draw == "per_row":
            return {"perturbations": sample(config.env.id, rows, rng)}
        # rows = members x episodes_per_member (the config refuses 'shared' for trainers without members)
        draws = sample(config.env.id, episodes_per_member, rng)
        return {"perturbations": draws * (rows // episodes_per_member)}
    return {"perturbation": spec}


def make_env(config: ExperimentConfig, num_envs: int, num_threads: int | None = None):
    """The vector env of a config (batched MuJoCo engine, or Gymnasium's for other ids); ``num_threads``:
    its physics threads (``None``: every CPU)."""
    from plasticrl.envs import make_vec

    threads = {} if num_threads is None else {"num_threads": num_threads}
    return make_vec(config.env.id, num_envs, physics_backend=config.env.physics_backend, **threads,
                    **env_kwargs(config))


def check_training_condition(env_id: str, spec: Any) -> None:
    """Raise, naming the bad value, if ``spec`` is neither a training distribution that ``env_id``
    has (``damage`` needs a damage table) nor one perturbation spec."""
    from plasticrl.envs import TRAINING_DISTRIBUTIONS, expand_condition_names, parse

    if isinstance(spec, str) and spec in TRAINING_DISTRIBUTIONS:
        TRAINING_DISTRIBUTIONS[spec](env_id, 1, np.random.default_rng(0))
        return
    try:
        parse(expand_condition_names(env_id, spec))  # suite condition names (NAME@severity) included
    except PlasticRLError as exc:
        raise PlasticRLError(f"unknown training perturbation {spec!r}; valid choices: "
                             f"{', '.join(TRAINING_DISTRIBUTIONS)} or one perturbation ({exc})") from None


def check_config(config: ExperimentConfig, force: bool = False, resuming: bool = False) -> None:
    """Raise :class:`~plasticrl.errors.PlasticRLError` for any setting that would otherwise fail only
    once used: device, env id and keyword arguments, the policy on that env's spaces, the ES
    hyper-parameters for that genome, the agent ``train.init_agent`` starts from, the training
    perturbation, and a run that would need more memory than the limit (:mod:`plasticrl.rollouts.memory`;
    ``force`` skips that guard). ``resuming``: a resume starts from its checkpoint, so ``train.init_agent``
    is not read (it may have moved since). Call it before a run directory is made or anything trains (it
    builds one env instance and one policy, well under a second)."""
    from plasticrl.agents import make_policy
    from plasticrl.device import resolve_device
    from plasticrl.rollouts.memory import check_memory, training_estimate

    config = with_policy_base(config)  # a symmetric policy's base from train.init_agent, as the trainer takes it
    device = resolve_device(config.device)
    env = make_env(config, 1)
    try:
        policy = make_policy(config.policy, env.single_observation_space, env.single_action_space,
                             device=device, dtype=config.dtype)
        population = 0
        if config.trainer == "es":
            from plasticrl.es import make_es

            population = make_es(config.es.algorithm, policy.genome.dim, **dict(config.es.params)).population_size
            if config.train.init_agent is not None and not resuming:  # the agent to start from must fit
                load_initial_agent(config, policy)
        if not force:
            hint = ("lower ppo.num_envs" if config.trainer == "ppo"
                    else "lower es.params.population_size or train.episodes_per_member")
            check_memory(training_estimate(config, policy, env, population), hint=hint)
    finally:
        env.close()
    if config.env.train_perturbation is not None:
        check_training_condition(config.env.id, config.env.train_perturbation)
    if config.distributed.backend == "ray" and config.distributed.address:
        check_ray_address(config.distributed.address)


def with_policy_base(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with a ``kind: symmetric`` policy's empty ``base`` filled from ``train.init_agent``: the
    saved agent's policy config and, as ``base_obs_norm``, its observation statistics (a symmetric saved
    agent gives its own base and statistics). Any other config comes back unchanged. Called where a training
    run starts, so the run's saved config and agents hold the whole policy."""
    policy = config.policy
    if policy.kind != "symmetric" or policy.base is not None or config.train.init_agent is None:
        return config
    from plasticrl.agents.config import SymmetricConfig
    from plasticrl.rollouts.saved_agent import load
    from plasticrl.rollouts.symmetric_agent import base_obs_norm

    agent = load(str(config.train.init_agent))
    saved = agent.policy_config
    if saved.kind == "symmetric":
        base = saved.base
        norm = saved.base_obs_norm.model_dump(mode="json") if saved.base_obs_norm is not None else None
    else:
        base, norm = saved, base_obs_norm(agent.obs_norm)
    data = {**policy.model_dump(mode="json"), "base": base.model_dump(mode="json"), "base_obs_norm": norm}
    return config.model_copy(update={"policy": SymmetricConfig.model_validate(data)})


def load_initial_agent(config: ExperimentConfig, policy: BatchedPolicy
                       ) -> tuple[torch.Tensor, ObsNormalizer | None]:
    """``[D]`` genome and observation statistics of the saved agent ``train.init_agent`` names, fitted to
    ``policy``: as saved (``train.init_agent_inputs: same``; the genome sizes must agree) or with this task's
    extra inputs appended (``appended``, :mod:`plasticrl.rollouts.appended_inputs`).
    :class:`~plasticrl.errors.PlasticRLError` (one line naming both sizes, or the group) if it does not fit."""
    import torch

    from plasticrl.rollouts.appended_inputs import genome_with_appended_inputs, obs_norm_with_appended_inputs
    from plasticrl.rollouts.saved_agent import load

    path = str(config.train.init_agent)
    agent = load(path)
    if config.train.init_agent_inputs == "appended":
        genome = genome_with_appended_inputs(agent.policy, agent.genome, policy)
        obs_norm = (obs_norm_with_appended_inputs(agent.obs_norm, policy.obs_dim)
                    if agent.obs_norm is not None else None)
        return genome, obs_norm
    base = getattr(policy, "base", None)  # kind symmetric: the saved agent may be its base alone
    if base is not None and agent.genome.numel() == base.genome.dim < policy.genome.dim:
        # the heading network's groups follow the base's in the flat genome: they start at their initial values
        extra = policy.genome.initial_flat(1, dtype=agent.genome.dtype)[0, base.genome.dim:]
        return torch.cat([agent.genome.reshape(-1), extra]), agent.obs_norm
    if agent.genome.numel() != policy.genome.dim:
        raise PlasticRLError(f"train.init_agent {path!r} has a genome of size {agent.genome.numel()}; this "
                             f"policy's genome has {policy.genome.dim} entries (the same policy config is required, "
                             f"or train.init_agent_inputs: appended where this task only adds inputs)")
    return agent.genome.reshape(-1), agent.obs_norm


#: seconds to wait for a Ray head to accept a connection (Ray itself retries for minutes)
RAY_CONNECT_TIMEOUT = 10.0


def check_ray_address(address: str, timeout: float = RAY_CONNECT_TIMEOUT) -> None:
    """Raise within ``timeout`` seconds if nothing accepts TCP connections at a Ray address
    (``HOST:PORT`` or ``ray://HOST:PORT``; ``auto`` and ``local`` are left to Ray): ``ray.init`` would
    otherwise keep retrying for minutes before it says the cluster is not there."""
    import socket

    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, sep, port_text = target.rpartition(":")
    if not sep or not port_text.isdigit():
        raise PlasticRLError(f"Ray address {address!r} is not HOST:PORT (or ray://HOST:PORT, auto)")
    try:
        with socket.create_connection((host.strip("[]"), int(port_text)), timeout=timeout):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise PlasticRLError(f"no Ray cluster at {address!r} ({why} within {timeout:g} s); start one with "
                             f"'ray start --head' or leave out --ray-address for a local Ray") from None
