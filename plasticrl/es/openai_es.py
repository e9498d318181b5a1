"""OpenAI-ES (Salimans et al. 2017): antithetic Gaussian sampling, centred ranks, Adam, L2.

Sampling convention: ``samples[i] = center + sigma * eps[i]`` and
``samples[i + P/2] = center - sigma * eps[i]`` for ``i < P/2`` (antithetic halves), so
``samples[i] + samples[i + P/2] == 2 * center`` on the searched dims.

Gradient estimate of the Gaussian-smoothed shaped fitness, from the samples themselves
(so externally modified samples are honoured, as in evosax/EvoTorch)::

    eps_i = (x_i - center) / sigma
    g     = 1 / (P * sigma) * sum_i u_i * eps_i          # u_i: centred-rank utility

For an antithetic pair this is ``(u_i+ - u_i-) * eps_i / (P * sigma)``. Adam then climbs
``g - weight_decay * center`` (coupled L2 on the searched dims only, as in the OpenAI code).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor

from plasticrl.seeding import Stream, derive_generator
from .base import ESAlgorithm, fitness_info
from .optimizers import adam_step
from .params import OpenAIESParams, parse_params
from .shaping import centered_ranks

__all__ = ["OpenAIES", "OpenAIESState"]


@dataclass(frozen=True)
class OpenAIESState:
    """Everything that changes during an OpenAI-ES run.

    ``center`` is the full ``[D]`` vector; ``adam_m``/``adam_v`` cover the searched dims ``[d]``;
    ``adam_step`` counts optimiser updates (generations with no valid member skip it);
    ``generation`` counts tells and, with ``seed``, determines the noise of the next ask.
    """

    center: Tensor
    adam_m: Tensor
    adam_v: Tensor
    adam_step: int
    seed: int
    generation: int


class OpenAIES(ESAlgorithm[OpenAIESState]):
    """OpenAI-ES with antithetic sampling, centred-rank shaping, Adam and L2 weight decay."""

    name = "openai_es"
    state_type = OpenAIESState
    params_type = OpenAIESParams

    def __init__(
        self, dim: int, config: OpenAIESParams | Mapping[str, Any] | None = None, search: Tensor | Any | None = None
    ) -> None:
        super().__init__(dim, search)
        self.config: OpenAIESParams = parse_params(self.params_type, config)

    @property
    def population_size(self) -> int:
        return self.config.population_size

    def sigma(self, state: OpenAIESState) -> float:
        """Sigma used by the next ask."""
        return self.config.sigma.value(state.generation)

    def init(self, center: Tensor, seed: int) -> OpenAIESState:
        center = self._check_init(center, seed)
        zeros = torch.zeros(self.space.size, dtype=center.dtype, device=center.device)
        return OpenAIESState(center=center, adam_m=zeros, adam_v=zeros.clone(), adam_step=0, seed=seed, generation=0)

    def _noise(self, state: OpenAIESState) -> Tensor:
        p, d = self.population_size, self.space.size
        rows = p // 2 if self.config.antithetic else p
        gen = derive_generator(state.seed, state.generation, state.center.device, Stream.ES_SAMPLING)
        eps = torch.randn(rows, d, generator=gen, device=state.center.device, dtype=state.center.dtype)
        return torch.cat([eps, -eps], 0) if self.config.antithetic else eps

    def ask(self, state: OpenAIESState) -> tuple[Tensor, OpenAIESState]:
        theta = self.space.gather(state.center)
        searched = theta.unsqueeze(0) + self.sigma(state) * self._noise(state)
        return self.space.expand(state.center, searched), state

    def tell(self, state: OpenAIESState, samples: Tensor, fitness: Tensor) -> tuple[OpenAIESState, dict[str, Any]]:
        samples, fitness = self._check_tell(state.center, samples, fitness)
        cfg = self.config
        sigma = cfg.sigma.value(state.generation)
        lr = cfg.learning_rate.value(state.generation)
        utilities, invalid = centered_ranks(fitness)
        info: dict[str, Any] = {"generation": state.generation, "sigma": sigma, "learning_rate": lr}
        info.update(fitness_info(fitness, invalid))

        if info["num_invalid"] == self.population_size:
            # No information this generation: keep centre and Adam moments, move the noise on.
            info.update(grad_norm=0.0, step_norm=0.0)
            return dataclasses.replace(state, generation=state.generation + 1), info

        theta = self.space.gather(state.center)
        grad = self.gradient(theta, self.space.gather(samples), utilities.to(theta.dtype), sigma)
        ascent = grad - cfg.weight_decay * theta
        step = state.adam_step + 1
        new_theta, m, v = adam_step(
            theta, ascent, state.adam_m, state.adam_v, step, lr, cfg.adam_beta1, cfg.adam_beta2, cfg.adam_eps
        )
        info.update(
            grad_norm=float(torch.linalg.vector_norm(grad)),
            step_norm=float(torch.linalg.vector_norm(new_theta - theta)),
        )
        new_state = OpenAIESState(
            center=self.space.scatter(state.center, new_theta),
            adam_m=m,
            adam_v=v,
            adam_step=step,
            seed=state.seed,
            generation=state.generation + 1,
        )
        return new_state, info

    @staticmethod
    def gradient(theta: Tensor, samples: Tensor, utilities: Tensor, sigma: float) -> Tensor:
        """Search-gradient estimate ``1/(P sigma) * sum_i u_i (x_i - theta)/sigma`` over ``[P, d]`` samples."""
        eps = (samples - theta.unsqueeze(0)) / sigma
        return utilities @ eps / (samples.shape[0] * sigma)
