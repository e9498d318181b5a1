"""Memory guard: estimate what a training run or an evaluation will hold, and refuse one that would not fit.

A population of 10^7, or ``eval --episodes 1000000`` in one batch, used to allocate until the kernel
killed the process. The estimate, computed before anything is allocated, counts:

- **env rows**: per row of the batched engine, one ``MjModel`` (every row holds its own copy, so that
  rows can carry different perturbations) and one ``MjData`` (``model.nbuffer + data.nbuffer``). The
  ``MjData`` arena is paged in as contacts need it and is not counted, so this part is a lower bound
  (HalfCheetah: 0.54 MB counted per row; about 0.8 MB resident once stepped). Envs that are not the
  batched engine count 0 here.
- **policy rows**: the bytes the policy holds per row once a genome is loaded (per-row parameters,
  potentials, traces and, for plastic policies, fast weights: rows x synapses x dtype size), measured
  by loading one and two rows and taking the difference, so every policy kind is counted as it is.
- **rollout bookkeeping**: per training row, returns, lengths and the observation moments
  (``(4 obs_dim + 3) x 8`` bytes).
- **ES state** (training with ``trainer: es``): the sampled population and its noise, ``3 x P x D``
  float64 values, plus ``3 x D^2`` for full CMA-ES's covariance and eigenbasis.
- **PPO buffers** (``trainer: ppo``): per env row and rollout step, observation, action and 6 scalars
  (float32), plus one saved episode state per sequence start.

Training rows are ``population x episodes_per_member`` (plus ``eval_episodes`` for the centre's
evaluation); with Ray they live on the workers and only the evaluation rows count here. Evaluation rows
are those of one ``--max-rows`` chunk (evaluation streams its episodes through chunks of that size).

The limit is :data:`MEMORY_FRACTION` of the memory available now (``MemAvailable`` in
``/proc/meminfo``, else the free physical pages), or ``$PLASTICRL_MEMORY_LIMIT`` (bytes, or with a
``K``/``M``/``G``/``T`` suffix). ``--force`` (``force=True``) skips the guard.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from plasticrl.errors import PlasticRLError

#: part of the available memory a run may plan to use
MEMORY_FRACTION = 0.8
#: environment variable overriding the limit (bytes, or 512M, 16G, ...)
LIMIT_ENV = "PLASTICRL_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run will hold, by part (``{"env rows": ..., "ES state": ...}``); ``what``: e.g. "training"."""

    what: str
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """The sum of the parts, in bytes."""
        return int(sum(self.parts.values()))

    def describe(self) -> str:
        """``"12.3 GiB (env rows 12.0 GiB, ES state 0.3 GiB)"``: the total and its largest parts."""
        parts = sorted(((v, k) for k, v in self.parts.items() if v > 0), reverse=True)
        return f"{format_bytes(self.total)} ({', '.join(f'{k} {format_bytes(v)}' for v, k in parts)})"


def format_bytes(n: float) -> str:
    """Bytes in binary units, 3 significant figures: ``format_bytes(3 << 30) == "3.00 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def available_bytes() -> int | None:
    """Memory available to a new allocation now (Linux ``MemAvailable``); ``None`` where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the kernel writes kB
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def parse_bytes(text: str) -> int:
    """``"512M"`` -> 536870912; a plain number is bytes. Raises for anything else."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    try:
        number = float(value[:len(value) - len(unit)])
    except ValueError:
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise PlasticRLError(f"${LIMIT_ENV}={text!r} is not a memory size; give bytes or e.g. 512M, 16G")
    return int(number * _UNITS[unit])


def memory_limit() -> tuple[int | None, str]:
    """The limit in bytes and where it comes from (``None``: unknown, the guard is skipped)."""
    override = os.environ.get(LIMIT_ENV)
    if override:
        return parse_bytes(override), f"${LIMIT_ENV}"
    available = available_bytes()
    if available is None:
        return None, "unknown"
    return int(MEMORY_FRACTION * available), f"{MEMORY_FRACTION:.0%} of the {format_bytes(available)} available"


def check_memory(estimate: MemoryEstimate, force: bool = False, hint: str = "") -> None:
    """Raise one line naming the estimate, the limit and ``--force`` when the estimate exceeds the limit;
    ``hint``: what to lower (e.g. "lower es.params.population_size")."""
    if force:
        return
    limit, source = memory_limit()
    if limit is None or estimate.total <= limit:
        return
    raise PlasticRLError(f"{estimate.what} would need about {estimate.describe()}, over the limit of "
                         f"{format_bytes(limit)} ({source}); {hint + ', or ' if hint else ''}pass --force to "
                         f"run anyway (or set ${LIMIT_ENV})")


def env_row_bytes(env: Any) -> int:
    """Bytes per row of a batched MuJoCo env (its own model and data); 0 for other envs."""
    model, datas = getattr(env, "base_model", None), getattr(env, "datas", None)
    if model is None or not datas:
        return 0
    return int(model.nbuffer) + int(datas[0].nbuffer)


def _held_bytes(value: Any, seen: set[int], depth: int = 0) -> int:
    """Bytes of the tensors and arrays reachable from ``value`` through containers and object
    attributes (each storage counted once: views of one tensor share it)."""
    if depth > 6:
        return 0
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        key = storage.data_ptr()
        if key in seen or storage.nbytes() == 0:
            return 0
        seen.add(key)
        return int(storage.nbytes())
    if isinstance(value, np.ndarray):
        base = value if value.base is None else value.base
        if id(base) in seen or not isinstance(base, np.ndarray):
            return 0
        seen.add(id(base))
        return int(base.nbytes)
    if isinstance(value, dict):
        return sum(_held_bytes(v, seen, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_held_bytes(v, seen, depth + 1) for v in value)
    if hasattr(value, "__dict__") and not isinstance(value, type) and id(value) not in seen:
        seen.add(id(value))
        return sum(_held_bytes(v, seen, depth + 1) for v in vars(value).values())
    return 0


def policy_row_bytes(policy: Any) -> int:
    """Bytes a batched policy holds per row with a genome loaded: loads one row, then two, and takes
    the difference of what the policy holds (per-row parameters, neuron state, fast weights). Leaves
    the policy with two rows loaded."""
    genome = policy.initial_genome(1)
    held = []
    for rows in (1, 2):
        policy.load_genome(genome, episodes_per_member=rows)
        held.append(_held_bytes(policy, set()))
    return max(0, held[1] - held[0])


def training_estimate(config: Any, policy: Any, env: Any, population: int) -> MemoryEstimate:
    """What training ``config`` holds (see the module doc); ``policy`` and ``env``: one instance of
    each built from the config, ``population``: the ES population (ignored for PPO)."""
    per_row = policy_row_bytes(policy) + env_row_bytes(env)
    bookkeeping = (4 * int(policy.obs_dim) + 3) * 8
    eval_rows = int(config.train.eval_episodes)
    parts: dict[str, int] = {"evaluation rows": eval_rows * (per_row + bookkeeping)}
    dim = int(policy.genome.dim)
    if config.trainer == "ppo":
        from plasticrl.config.ppo import parse_ppo_config

        ppo = parse_ppo_config(config.ppo)
        rows = int(ppo.num_envs)
        parts["training rows"] = rows * (per_row + bookkeeping)
        step_bytes = (int(policy.obs_dim) + int(policy.act_dim) + 6) * 4
        state = policy_row_bytes(policy)  # one saved episode state per row and sequence start
        parts["PPO buffers"] = rows * (ppo.rollout_steps * step_bytes + (ppo.rollout_steps // ppo.seq_len) * state)
    else:
        rows = int(population) * int(config.train.episodes_per_member)
        if config.distributed.backend != "ray":  # with Ray, the population's rows live on the workers
            parts["training rows"] = rows * (per_row + bookkeeping)
        parts["ES state"] = 3 * int(population) * dim * 8
        if config.es.algorithm in ("cma_es", "cmaes", "cma"):
            parts["ES state"] += 3 * dim * dim * 8
    return MemoryEstimate("training", parts)


def evaluation_estimate(rows: int, policy_row: int, env_row: int, obs_dim: int, episodes: int) -> MemoryEstimate:
    """What an evaluation holds: one chunk of ``rows`` env and policy rows (``policy_row`` and ``env_row``
    bytes each, plus this step's observations), and per episode one return, length, flag and
    survival bonus (``4 x 8`` bytes, times the conditions and agents given in ``episodes``)."""
    return MemoryEstimate("evaluation", {"rows of one chunk": rows * (policy_row + env_row + 2 * obs_dim * 8),
                                         "per-episode results": episodes * 4 * 8})
