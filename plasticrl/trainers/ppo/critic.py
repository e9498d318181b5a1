"""The value head of recurrent PPO: a small tanh MLP on the normalised observation.

Why a separate network and not a readout of the spiking layer's traces:

- the value loss then never reshapes the plastic spiking network (its genome is trained by
  the policy objective alone, and is exactly what gets deployed);
- the value is stateless, so GAE values come from one batched call after the rollout, with
  no replay, and the critic does not depend on the policy's internal state layout;
- the MuJoCo tasks are fully observed, so V(s) needs no memory.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ValueMLP(nn.Module):
    """``obs [..., obs_dim] -> value [...]``; orthogonal init drawn from an explicit generator."""

    def __init__(self, obs_dim: int, hidden: Sequence[int], generator: torch.Generator,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        super().__init__()
        sizes = [obs_dim, *hidden]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [self._linear(fan_in, fan_out, 2.0 ** 0.5, generator), nn.Tanh()]
        # A gain-1 output layer, as in the PPO implementation studies (Andrychowicz et al. 2021).
        layers.append(self._linear(sizes[-1], 1, 1.0, generator))
        self.net = nn.Sequential(*layers).to(device=device, dtype=dtype)

    @staticmethod
    def _linear(fan_in: int, fan_out: int, gain: float, generator: torch.Generator) -> nn.Linear:
        layer = nn.Linear(fan_in, fan_out)
        nn.init.orthogonal_(layer.weight, gain=gain, generator=generator)
        nn.init.zeros_(layer.bias)
        return layer

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)
