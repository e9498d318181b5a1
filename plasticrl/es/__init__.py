"""Evolution strategies as pure ask/tell functions over an explicit, immutable state.

>>> import torch
>>> from plasticrl.es import make_es
>>> algo = make_es("openai_es", 3, population_size=8, sigma=0.1, learning_rate=0.05)
>>> state = algo.init(torch.zeros(3), seed=0)
>>> samples, state = algo.ask(state)                   # [8, 3]
>>> state, info = algo.tell(state, samples, -(samples ** 2).sum(1))   # fitness is maximised
>>> algo.center(state).shape
torch.Size([3])

Hyper-parameters are typed per algorithm (:mod:`plasticrl.es.params`): ``OpenAIES(dim, OpenAIESParams(...))``
or, by name, ``make_es(name, dim, **params)``.
"""
from .base import ESAlgorithm, SearchSpace
from .cma import CMAES, CMAESState, SepCMAES
from .openai_es import OpenAIES, OpenAIESState
from .optimizers import adam_step, clipup_step
from .params import PARAMS, CMAESParams, ESParams, OpenAIESParams, PGPEParams, SepCMAESParams
from .pgpe import PGPE, PGPEState
from .registry import ALGORITHMS, es_names, make_es
from .schedules import Schedule, as_schedule
from .shaping import centered_ranks, invalid_mask

__all__ = [
    "ALGORITHMS",
    "PARAMS",
    "CMAES",
    "CMAESParams",
    "CMAESState",
    "ESAlgorithm",
    "ESParams",
    "OpenAIES",
    "OpenAIESParams",
    "OpenAIESState",
    "PGPE",
    "PGPEParams",
    "PGPEState",
    "Schedule",
    "SearchSpace",
    "SepCMAES",
    "SepCMAESParams",
    "adam_step",
    "as_schedule",
    "centered_ranks",
    "clipup_step",
    "es_names",
    "invalid_mask",
    "make_es",
]
