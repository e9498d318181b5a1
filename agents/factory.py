"""Build a policy from a config and Gymnasium spaces."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import TypeAdapter, ValidationError

from plasticrl.agents.base import BatchedPolicy
from plasticrl.agents.config import (
    POLICY_KINDS,
    HebbianMLPConfig,
    LinearConfig,
    MLPConfig,
    PlasticSpikingConfig,
    PolicyConfig,
    SymmetricConfig,
)
from plasticrl.agents.feedforward import LinearPolicy, MLPPolicy
from plasticrl.agents.hebbian_mlp import HebbianMLPPolicy
from plasticrl.agents.plastic_spiking import PlasticSpikingPolicy
from plasticrl.agents.symmetric import SymmetricPolicy
from plasticrl.errors import PlasticRLError, check_choice, validation_error

_POLICY_ADAPTER: TypeAdapter = TypeAdapter(PolicyConfig)


_CONFIG_TYPES = (PlasticSpikingConfig, LinearConfig, MLPConfig, HebbianMLPConfig, SymmetricConfig)


def parse_policy_config(config: Mapping[str, Any] | PlasticSpikingConfig | LinearConfig | MLPConfig | HebbianMLPConfig
                        | SymmetricConfig):
    """Validate a policy config dict; errors name the offending key and value."""
    if isinstance(config, _CONFIG_TYPES):
        return config
    config = dict(config)
    kind = config.setdefault("kind", "plastic_spiking")
    check_choice("policy kind", kind, POLICY_KINDS)
    try:
        return _POLICY_ADAPTER.validate_python(config)
    except ValidationError as exc:
        raise validation_error(exc, "policy config", prefix=["policy"], union_tags=POLICY_KINDS) from None


def make_policy(
    config: Mapping[str, Any] | PlasticSpikingConfig | LinearConfig | MLPConfig | HebbianMLPConfig | SymmetricConfig,
    observation_space: gym.spaces.Box,
    action_space: gym.spaces.Box,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
    autograd: bool = False,
) -> BatchedPolicy:
    """Policy for single-env Box spaces (use ``single_observation_space`` of a vector env).

    ``autograd``: the policy will be differentiated (BPTT), so ``kernel: auto`` picks torch."""
    if not isinstance(observation_space, gym.spaces.Box) or not isinstance(action_space, gym.spaces.Box):
        raise PlasticRLError(
            f"plasticrl policies need Box observation and action spaces; got {observation_space} and {action_space}"
        )
    cfg = parse_policy_config(config)
    obs_dim = int(np.prod(observation_space.shape))
    act_dim = int(np.prod(action_space.shape))
    low, high = action_space.low.reshape(-1), action_space.high.reshape(-1)
    if isinstance(cfg, SymmetricConfig):
        if cfg.base is None:
            raise PlasticRLError("kind symmetric has no policy.base: give the steered policy's config, or "
                                 "train.init_agent (a saved agent) to take it from")
        # the base observes the task's observation without the goal columns the oracle reads
        base_obs = obs_dim - (2 if cfg.goal.source == "observed" else 0)
        if base_obs <= 0:
            raise PlasticRLError(f"kind symmetric with goal.source 'observed' needs the goal's two columns after "
                                 f"the observation; the task observes {obs_dim}")
        base_space = gym.spaces.Box(-np.inf, np.inf, (base_obs,), np.float64)
        base = make_policy(cfg.base, base_space, action_space, device, dtype, autograd)
        return SymmetricPolicy(obs_dim, act_dim, low, high, cfg, base, device, dtype)
    if isinstance(cfg, PlasticSpikingConfig):
        return PlasticSpikingPolicy(obs_dim, act_dim, low, high, cfg, device, dtype, autograd)
    if isinstance(cfg, HebbianMLPConfig):
        return HebbianMLPPolicy(obs_dim, act_dim, low, high, cfg, device, dtype, autograd)
    if isinstance(cfg, LinearConfig):
        return LinearPolicy(obs_dim, act_dim, low, high, cfg, device, dtype)
    return MLPPolicy(obs_dim, act_dim, low, high, cfg, device, dtype)
