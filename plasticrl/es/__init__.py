"""Evolution strategies as pure ask/tell functions over an explicit, immutable state.

>>> import torch
>>> from plasticrl.es import make_es
>>> algo = make_es("openai_es", 3, population_size=8, sigma=0.1, learning_rate=0.05)
>>> state = algo.init(torch.zeros(3), seed=0)
>>> samples, state = algo.ask(state)                   # [8, 3]
>>> state, info = algo.tell(state, samples, -(samples ** 2).sum(1))   # fitness is maximised
>>> algo.center(state).shape
torch.Size([3])
"""
from .base import ESAlgorithm, SearchSpace
from .cma import CMAES, CMAESConfig, CMAESState, SepCMAES
from .openai_es import OpenAIES, OpenAIESConfig, OpenAIESState
from .optimizers import adam_step, clipup_step
from .pgpe import PGPE, PGPEConfig, PGPEState
from .registry import ALGORITHMS, es_names, make_es
from .schedules import Schedule, as_schedule
from .shaping import centered_ranks, invalid_mask

__all__ = [
    "ALGORITHMS",
    "CMAES",
    "CMAESConfig",
    "CMAESState",
    "ESAlgorithm",
    "OpenAIES",
    "OpenAIESConfig",
    "OpenAIESState",
    "PGPE",
    "PGPEConfig",
    "PGPEState",
    "Schedule",
    "SearchSpace",
    "SepCMAES",
    "adam_step",
    "as_schedule",
    "centered_ranks",
    "clipup_step",
    "es_names",
    "invalid_mask",
    "make_es",
]
