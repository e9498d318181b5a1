"""Named random streams: every seed a run, an evaluation or an environment uses derives from here.

A seed is a pure function of ``(config seed, generation or update, stream)``, hashed through
NumPy's ``SeedSequence`` so that nearby triples give independent draws (``seed + generation``
would not). Each consumer owns a :class:`Stream`; two consumers never share one, so adding a draw
to one cannot shift another's, and a resumed run draws exactly what the uninterrupted one would.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np
import torch


class Stream(IntEnum):
    """Stream ids. The values are part of every saved run's reproducibility: never renumber."""

    #: ES (OpenAI-ES, PGPE): the perturbations of a generation (drawn on the search device)
    ES_SAMPLING = 0
    #: CMA-ES: the seed of the ``cmaes`` library's own sampler (generation 0)
    CMA_ES_SAMPLER = 1
    #: ES: noise added to the initial centre (``train.init_noise``; generation 0)
    ES_INIT_NOISE = 7
    #: ES: reset seeds of the training rollouts of a generation
    ES_TRAIN_ENV = 101
    #: ES: reset seeds of the centre's evaluation episodes (generation 0, so the same every time)
    ES_EVAL_ENV = 202
    #: ES: draws of the training perturbation distribution of a generation
    ES_TRAIN_PERTURBATION = 303
    #: PPO: reset seeds of the rollouts of an update
    PPO_ENV = 401
    #: PPO: action noise of an update
    PPO_NOISE = 402
    #: PPO: minibatch permutation of an update
    PPO_MINIBATCH = 403
    #: PPO: reset seeds of the evaluation episodes
    PPO_EVAL_ENV = 404
    #: PPO: draws of the training perturbation distribution of an update
    PPO_TRAIN_PERTURBATION = 405
    #: PPO: initial genome noise
    PPO_INIT = 406
    #: policies: an episode's identity from its env reset seed and the episodes run since that seed
    POLICY_EPISODE = 501
    #: policies: random initial fast weights of one episode (``policy.initial_weights.draw: per_episode``)
    POLICY_EPISODE_WEIGHTS = 502
    #: policies: random initial fast weights of one member (``policy.initial_weights.draw: per_member``)
    POLICY_MEMBER_WEIGHTS = 503


#: The demo's robustness evaluation uses reset seeds ``HELD_OUT_SEED_OFFSET + config.seed``: episodes
#: no training or checkpoint evaluation saw.
HELD_OUT_SEED_OFFSET = 10_000
#: SB3 baselines evaluate on reset seeds ``SB3_EVAL_SEED_OFFSET + seed``, apart from their training seeds.
SB3_EVAL_SEED_OFFSET = 1_000_000


def derive_seed(seed: int, generation: int, stream: int) -> int:
    """A well-mixed 63-bit seed for ``(seed, generation, stream)``."""
    word = np.random.SeedSequence([seed, generation, int(stream)]).generate_state(1, dtype=np.uint64)[0]
    return int(word) & (2**63 - 1)


def derive_env_seed(seed: int, generation: int, stream: int) -> int:
    """A seed for ``env.reset`` from ``(seed, generation, stream)``: Gymnasium's sub-env ``i``
    gets ``seed + i``, so it is kept well below 2**32."""
    return derive_seed(seed, generation, stream) % (2**31 - 1)


def derive_episode_seed(reset_seed: int, episode: int) -> int:
    """The identity of an episode: the seed its env was reset with and how many episodes that env
    has started since (0 for the seeded reset itself, 1 for the next unseeded reset, ...).

    Gymnasium's envs work the same way (``reset(seed=s)`` then ``reset()`` continues the generator
    seeded with ``s``), so a policy that derives per-episode draws from this seed sees the same
    draw wherever the same episode is run: in training, in a batched evaluation, in a plain
    Gymnasium loop."""
    return derive_seed(int(reset_seed), int(episode), Stream.POLICY_EPISODE)


def derive_generator(seed: int, generation: int, device: torch.device | str, stream: int) -> torch.Generator:
    """A torch generator on ``device`` seeded from ``(seed, generation, stream)``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, generation, stream))
    return gen
