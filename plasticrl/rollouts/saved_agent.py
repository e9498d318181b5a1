"""Trained agents as files: save the genome, the policy config and the observation statistics;
load them back as an :class:`Agent` that drives any Gymnasium env with matching spaces.

    agent = plasticrl.load("runs/my-run/best_agent.pt")
    obs, _ = env.reset(seed=0)
    agent.reset(seed=0)                        # the env's reset seed: random initial weights follow it
    reward = None
    while True:
        action = agent.act(obs, reward)        # reward of the previous step drives plasticity
        obs, reward, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break

``act(obs, reward)`` applies the plasticity of the previous step (``learn(reward)``) before
acting, the same order as the training rollout, so a loaded agent behaves exactly as it did
during evaluation. ``reward=None`` is for the first step after ``reset()`` only: later, an agent
whose actions depend on the reward (``policy.reward_input``, a learning ``policy.context_unit``, or
plasticity modulated by reward, reward-prediction error or modulatory neurons) raises
:class:`~plasticrl.errors.PlasticRLError` rather than silently skip a step of learning; an agent that
ignores the reward (static, or plastic with unmodulated rules) still learns that step, from a reward it
does not read.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plasticrl.agents import make_policy, parse_policy_config
from plasticrl.agents.base import BatchedPolicy
from plasticrl.errors import PlasticRLError
from plasticrl.io import atomic_torch_save, torch_load
from plasticrl.rollouts.obs_norm import ObsNormalizer

AGENT_FORMAT = 1


def save_agent(
    path: str | os.PathLike,
    policy: BatchedPolicy,
    policy_config: dict[str, Any],
    genome: torch.Tensor,
    obs_norm: ObsNormalizer | None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write an agent file atomically. ``genome`` is the flat ``[D]`` searched vector."""
    payload = {
        "format": AGENT_FORMAT,
        "kind": "plasticrl-agent",
        "policy_config": policy_config,
        "obs_dim": policy.obs_dim,
        "act_dim": policy.act_dim,
        "action_low": policy.action_low.cpu().tolist(),
        "action_high": policy.action_high.cpu().tolist(),
        "genome": genome.detach().reshape(-1).cpu().to(torch.float64).clone(),
        "obs_norm": obs_norm.state_dict() if obs_norm is not None else None,
        "metadata": metadata or {},
    }
    return atomic_torch_save(path, payload)


def training_metadata(config, run_dir: Path, generation: int, env_steps: int, eval_return: float,
                      **extra: Any) -> dict[str, Any]:
    """What a trainer records in the agent files it writes (env, progress, origin)."""
    return {"env_id": config.env.id, "env_kwargs": dict(config.env.kwargs), "generation": generation,
            "env_steps": env_steps, "eval_return": eval_return, "run_dir": str(run_dir),
            "config_name": config.name, **extra}


#: What :func:`has_plasticity` counts, in the words of the errors that ask for it.
LEARNS_WITHIN_EPISODE = ("a policy with plasticity.rule or input_plasticity.rule other than none, a context unit "
                         "that learns, or a symmetric policy whose goal synapses or base learn")


def has_plasticity(policy_config) -> bool:
    """Whether a policy config learns within the episode (a long-term rule, a CSDP input layer, a context
    unit that learns, or a symmetric policy's goal synapses or base that do)."""
    if policy_config.kind == "symmetric":
        # a training config may leave the base to its init agent (base: null): only the goal synapses count
        return _goal_learns(policy_config) or (policy_config.base is not None and has_plasticity(policy_config.base))
    plasticity = getattr(policy_config, "plasticity", None)
    input_plasticity = getattr(policy_config, "input_plasticity", None)
    return ((plasticity is not None and plasticity.rule != "none")
            or (input_plasticity is not None and input_plasticity.rule != "none")
            or _context_learns(policy_config))


def _context_learns(policy_config) -> bool:
    context = getattr(policy_config, "context_unit", None)
    return context is not None and context.enabled and context.eta > 0


def _goal_learns(policy_config) -> bool:
    goal = policy_config.goal
    return goal.source == "inferred" and goal.eta > 0


def frozen_policy_config(policy_config):
    """The same policy with every within-episode learning rate set to 0 (``eta_scale: 0``, a context unit's
    ``eta: 0``): its fast weights stay the initial ones (evolved, or the episode's random draw) and its context
    unit at its initial value, the control that shows what plasticity itself adds.
    Short-term synaptic dynamics (``synapse: stp``) are part of the neuron model and stay on."""
    if not has_plasticity(policy_config):
        raise PlasticRLError(f"a {policy_config.kind!r} policy without a plasticity rule has no learning rate "
                             "to freeze; frozen twins exist for plastic_spiking and hebbian_mlp policies with "
                             "plasticity.rule (or input_plasticity.rule) set, and for any policy with a context "
                             "unit that learns (context_unit.enabled with eta > 0)")
    if policy_config.kind == "symmetric":  # its goal synapses and its base, whichever learn
        update = {"goal": policy_config.goal.model_copy(update={"eta": 0.0})}
        if has_plasticity(policy_config.base):
            update["base"] = frozen_policy_config(policy_config.base)
        return policy_config.model_copy(update=update)
    update = {}
    plasticity = getattr(policy_config, "plasticity", None)
    if plasticity is not None:
        update["plasticity"] = plasticity.model_copy(update={"eta_scale": 0.0})
    if _context_learns(policy_config):
        update["context_unit"] = policy_config.context_unit.model_copy(update={"eta": 0.0})
    input_plasticity = getattr(policy_config, "input_plasticity", None)  # hebbian_mlp has none
    if input_plasticity is not None and input_plasticity.rule != "none":
        update["input_plasticity"] = policy_config.input_plasticity.model_copy(update={"eta_scale": 0.0})
    return policy_config.model_copy(update=update)


class Agent:
    """One deployed controller: ``reset()`` at episode start, ``act(obs, reward)`` every step.

    ``frozen=True`` loads the agent with its learning rates set to 0 (:func:`frozen_policy_config`);
    ``obs_std_floor`` replaces the floor on the observation std saved with it (for noisy sensors,
    see :mod:`plasticrl.rollouts.obs_norm`)."""

    def __init__(self, payload: dict[str, Any], device: str | torch.device = "cpu", frozen: bool = False,
                 obs_std_floor: float | None = None):
        if payload.get("kind") != "plasticrl-agent" or payload.get("format") != AGENT_FORMAT:
            raise PlasticRLError(f"not a plasticrl agent file of format {AGENT_FORMAT} "
                                 f"(kind={payload.get('kind')!r}, format={payload.get('format')!r})")
        import gymnasium as gym

        self._payload = payload
        self.metadata = payload["metadata"]
        self.policy_config = parse_policy_config(payload["policy_config"])
        if frozen:
            self.policy_config = frozen_policy_config(self.policy_config)
        obs_space = gym.spaces.Box(-np.inf, np.inf, (payload["obs_dim"],), np.float64)
        act_space = gym.spaces.Box(np.array(payload["action_low"], np.float32),
                                   np.array(payload["action_high"], np.float32))
        self.observation_space, self.action_space = obs_space, act_space
        self.policy = make_policy(self.policy_config, obs_space, act_space, device=device)
        self.genome = payload["genome"].to(self.policy.dtype)
        if self.genome.numel() != self.policy.genome.dim:
            raise PlasticRLError(f"agent genome has {self.genome.numel()} values; its policy config needs "
                                 f"{self.policy.genome.dim}")
        self.obs_norm = ObsNormalizer.from_state_dict(payload["obs_norm"]) if payload["obs_norm"] else None
        if obs_std_floor is not None:
            if not obs_std_floor >= 0:
                raise PlasticRLError(f"obs_std_floor must be >= 0 (raw observation units); got {obs_std_floor!r}")
            if self.obs_norm is None:
                raise PlasticRLError("obs_std_floor given, but this agent was trained without observation "
                                     "normalisation (train.obs_norm: false); there is no std to bound")
            self.obs_norm.std_floor = float(obs_std_floor)
        self._batch = 0
        self._episode_start = True  # no act since the last reset: the one step that has no reward yet

    @property
    def uses_reward(self) -> bool:
        """Whether ``act`` needs the previous step's reward after an episode's first step."""
        return self.policy.uses_reward

    def frozen_copy(self, device: str | torch.device | None = None) -> "Agent":
        """The same agent with its within-episode learning rates set to 0 (see :func:`frozen_policy_config`)."""
        floor = self.obs_norm.std_floor if self.obs_norm is not None else None
        return Agent(self._payload, device=device if device is not None else self.policy.device, frozen=True,
                     obs_std_floor=floor)

    def reset(self, batch_size: int = 1, seed: int | list[int] | None = None) -> None:
        """Start a new episode (``batch_size`` parallel copies for batched observations).

        ``seed``: the seed the env was reset with (an int ``s``: copy ``i`` gets ``s + i``, as a
        vector env; or one per copy). Without one the agent moves on to the next episode of the
        last seed, as an env reset without a seed does; the first episodes of an agent never seeded
        count as seeded with 0. Random initial weights (``policy.initial_weights.kind: random``)
        are drawn from it, so a loaded agent starts from the weights training and evaluation gave
        the same episode."""
        self._episode_start = True
        if batch_size != self._batch or self.policy.population == 0:
            self._batch = batch_size
            self.policy.load_genome(self.genome.unsqueeze(0).expand(batch_size, -1).to(self.policy.device),
                                    seeds=seed)
        else:
            # the same genome on the same rows: clear the invalid flags and start the next episodes
            self.policy.invalid = torch.zeros_like(self.policy.invalid)
            self.policy.reset(seeds=seed)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, reward: float | np.ndarray | None = None) -> np.ndarray:
        """Action for ``obs`` (``[obs_dim]`` or ``[B, obs_dim]``); ``reward``: the previous step's reward.

        ``reward=None`` only on the first step after :meth:`reset`; an agent that uses the reward
        (:attr:`uses_reward`) raises :class:`PlasticRLError` if it is missing later."""
        obs_arr = np.asarray(obs, dtype=np.float64)
        single = obs_arr.ndim == 1
        batch = obs_arr.reshape(-1, self.policy.obs_dim) if obs_arr.size else obs_arr
        if self._batch != batch.shape[0]:
            self.reset(batch.shape[0])
        if reward is None and not self._episode_start:
            if self.uses_reward:
                raise PlasticRLError(
                    "this agent uses the reward (" + self._reward_use() + "): pass the previous step's reward, "
                    "agent.act(obs, reward); reward=None is for the first step after agent.reset() only")
            # the reward is not read: learn from zeros so that unmodulated plasticity keeps its step
            reward = np.zeros(self._batch)
        self._episode_start = False
        if reward is not None:
            r = torch.as_tensor(np.asarray(reward, dtype=np.float64).reshape(-1), dtype=self.policy.dtype)
            self.policy.learn(r.to(self.policy.device))
        x = torch.as_tensor(batch, dtype=torch.float64)
        if self.obs_norm is not None:
            x = self.obs_norm.normalise(x)
        action = self.policy.act(x.to(device=self.policy.device, dtype=self.policy.dtype)).cpu().numpy()
        return action[0].astype(np.float64) if single else action.astype(np.float64)


    def _reward_use(self) -> str:
        """How this agent's policy reads the reward, for error messages."""
        return ", ".join(_reward_uses(self.policy))


def load(path: str | os.PathLike, device: str | torch.device = "cpu", frozen: bool = False,
         obs_std_floor: float | None = None) -> Agent:
    """Load an agent file written by training (``best_agent.pt`` / ``final_agent.pt``);
    ``frozen=True``: with its within-episode learning rates set to 0; ``obs_std_floor``: divide
    observations by at least this std (raw units) instead of the floor it was trained with.
    ``pretrained:NAME`` loads an agent shipped with plasticrl (``plasticrl pretrained`` lists them)."""
    from plasticrl.rollouts.pretrained import is_pretrained, resolve_pretrained

    path = resolve_pretrained(path) if is_pretrained(path) else Path(path)
    if path.is_dir():
        names = ("best_agent.pt", "final_agent.pt")
        found = [path / name for name in names if (path / name).is_file()]
        if not found:
            raise PlasticRLError(f"{str(path)!r} is a directory without an agent file (looked for "
                                 f"{' and '.join(names)}); give a training run directory or an agent file")
        path = found[0]
    if not path.is_file():
        raise PlasticRLError(f"agent file {str(path)!r} does not exist")
    payload = torch_load(path)
    if not isinstance(payload, dict):
        raise PlasticRLError(f"agent file {str(path)!r} holds a {type(payload).__name__}, not a plasticrl agent")
    try:
        return Agent(payload, device=device, frozen=frozen, obs_std_floor=obs_std_floor)
    except PlasticRLError as exc:
        raise PlasticRLError(f"agent file {str(path)!r}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        # a file of the right kind with missing or mistyped entries (hand-edited, or from another tool)
        detail = " ".join(str(exc).split())[:200]
        raise PlasticRLError(f"agent file {str(path)!r} is not a valid plasticrl agent: "
                             f"{type(exc).__name__}: {detail}") from None


def _reward_uses(policy: BatchedPolicy, prefix: str = "policy.") -> list[str]:
    """The config settings through which ``policy`` reads the reward."""
    uses = [f"{prefix}reward_input: true"] if policy.reward_input else []
    modulation = getattr(policy, "modulation", "none")
    if modulation != "none":
        uses.append(f"{prefix}plasticity.modulation: {modulation}")
    if policy.context_unit is not None:
        uses.append(f"{prefix}context_unit.enabled: true")
    base = getattr(policy, "base", None)
    if base is not None:  # kind symmetric
        goal = policy.config.goal
        if goal.source == "recurrent" or _goal_learns(policy.config):
            uses.append(f"{prefix}goal.source: {goal.source}")
        uses.extend(_reward_uses(base, prefix + "base."))
    return uses
