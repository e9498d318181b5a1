"""Non-spiking ES baselines: linear and MLP policies, batched over members."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from plasticrl.agents.base import BatchedPolicy
from plasticrl.agents.config import LinearConfig, MLPConfig
from plasticrl.genome import GenomeSpec, ParamGroup


class MLPPolicy(BatchedPolicy):
    """``a = squash(W_L f(... f(W_0 obs + b_0) ...) + b_L)`` with per-member weights ``[N, out, in]``.

    With no hidden layers this is the linear policy of OpenAI-ES / ARS.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        action_low: Sequence[float] | torch.Tensor,
        action_high: Sequence[float] | torch.Tensor,
        config: MLPConfig | LinearConfig | Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float32",
    ):
        if config is None:
            config = MLPConfig()
        elif isinstance(config, Mapping):
            kind = dict(config).get("kind", "mlp")
            config = (LinearConfig if kind == "linear" else MLPConfig).model_validate(dict(config))
        super().__init__(obs_dim, act_dim, action_low, action_high, device, dtype,
                         config.reward_input, config.reward_input_scale, config.context_unit)
        self.config = config
        hidden = list(config.hidden) if isinstance(config, MLPConfig) else []
        self.sizes = [self.input_dim, *hidden, act_dim]
        self._activation = torch.relu if getattr(config, "activation", "tanh") == "relu" else torch.tanh
        groups = []
        for l in range(len(self.sizes) - 1):
            fan_in, fan_out = self.sizes[l], self.sizes[l + 1]
            # Linear ES baselines start at zero (as in ARS); hidden layers need symmetry breaking.
            std = 0.0 if not hidden else 1.0 / math.sqrt(fan_in)
            groups.append(ParamGroup(f"layers.{l}.w", (fan_out, fan_in), "normal" if std else "constant", 0.0, std))
            groups.append(ParamGroup(f"layers.{l}.b", (fan_out,), "constant", 0.0))
        self._genome = GenomeSpec(groups, seed=config.genome.seed).select(config.genome.search, config.genome.fix)

    @property
    def genome(self) -> GenomeSpec:
        return self._genome

    def _set_parameters(self, params: dict[str, torch.Tensor]) -> None:
        n = len(self.sizes) - 1
        self._w = [params[f"layers.{l}.w"] for l in range(n)]
        self._b = [params[f"layers.{l}.b"] for l in range(n)]

    def _reset(self, mask: torch.Tensor | None) -> None:
        pass  # stateless: nothing to restore (the base class keeps the reward input)

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self._w) - 1
        for l, (w, b) in enumerate(zip(self._w, self._b)):
            x = torch.baddbmm(b.unsqueeze(-1), w, x.unsqueeze(-1)).squeeze(-1)
            if l < last:
                x = self._activation(x)
        return self._sanitize_actions(self._squash(x))


class LinearPolicy(MLPPolicy):
    """Linear policy ``a = squash(W obs + b)``."""

    def __init__(self, obs_dim, act_dim, action_low, action_high, config=None, device="cpu", dtype="float32"):
        super().__init__(obs_dim, act_dim, action_low, action_high, config or LinearConfig(), device, dtype)
