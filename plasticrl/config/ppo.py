"""Hyper-parameters of recurrent PPO (the ``ppo:`` section of a config with ``trainer: ppo``).

Kept apart from the trainer so that :mod:`plasticrl.config` can validate the section when a
config is loaded without importing torch-heavy modules.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from plasticrl.errors import validation_error


class PPOConfig(BaseModel):
    """One update = ``num_envs x rollout_steps`` transitions, then ``epochs`` passes of
    truncated BPTT over sequences of ``seq_len`` control steps."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    num_envs: int = Field(16, ge=1, description="parallel environments (rows of the rollout policy)")
    rollout_steps: int = Field(1000, ge=1, description="control steps per env per update; every update starts "
                                                       "fresh episodes, so this is also the longest episode seen")
    seq_len: int = Field(50, ge=1, description="BPTT truncation: sequence length, must divide rollout_steps")
    epochs: int = Field(10, ge=1, description="passes over the update's sequences")
    minibatch_sequences: int = Field(64, ge=1, description="sequences per minibatch")
    gamma: float = Field(0.99, ge=0, le=1, description="discount factor of the returns")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE lambda: 0 one-step TD, 1 Monte Carlo")
    clip: float = Field(0.2, gt=0, description="PPO ratio clip epsilon")
    vf_coef: float = Field(0.5, ge=0, description="weight of the value loss in the total loss")
    ent_coef: float = Field(0.0, ge=0, description="weight of the entropy bonus (0: none)")
    lr: float = Field(3e-3, gt=0, description="Adam step for the policy genome and log-std (unit-scale weights)")
    critic_lr: float = Field(1e-3, gt=0, description="Adam step for the value network")
    anneal_lr: bool = Field(True, description="decay both learning rates linearly to 0 over train.generations")
    max_grad_norm: float = Field(0.5, gt=0, description="clip norm, applied to actor and critic separately")
    log_std_init: float = Field(-0.5, description="initial state-independent log-std of the Gaussian head")
    critic_hidden: list[int] = Field(default_factory=lambda: [64, 64],
                                     description="hidden layer sizes of the value MLP")
    norm_adv: bool = Field(True, description="normalise advantages per minibatch (zero mean, unit std)")
    reward_norm: bool = Field(True, description="scale rewards for the critic/GAE by the std of discounted returns")
    reward_clip: float = Field(10.0, gt=0, description="clip of the scaled rewards (with reward_norm)")
    target_kl: Optional[float] = Field(None, gt=0, description="stop an update's epochs once approx KL exceeds it")

    @model_validator(mode="after")
    def _sequences_tile_the_rollout(self) -> "PPOConfig":
        if self.rollout_steps % self.seq_len:
            raise ValueError(f"seq_len={self.seq_len} must divide rollout_steps={self.rollout_steps}")
        if any(h < 1 for h in self.critic_hidden):
            raise ValueError(f"critic_hidden sizes must be >= 1; got {self.critic_hidden}")
        return self


def parse_ppo_config(data: Mapping[str, Any] | PPOConfig | None) -> PPOConfig:
    """Validate the ``ppo`` section; errors name each bad key, its value and the valid keys."""
    if isinstance(data, PPOConfig):
        return data
    try:
        return PPOConfig.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise validation_error(exc, "ppo config", prefix=["ppo"],
                               valid_keys=lambda parent: sorted(PPOConfig.model_fields)) from None
