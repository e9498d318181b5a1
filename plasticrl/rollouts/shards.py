"""Population shards: the rollout of ``P`` members split into ``S`` contiguous member ranges, each stepped
end to end (its own env instances' physics, observations, rewards, the rollout's bookkeeping, the policy's
act and learn) on its own thread.

With one batched env the policy, the env's observation and reward code and the bookkeeping of a control
step run on the main thread while the physics waits for them, so at most the physics uses a second core.
With shards, shard ``k``'s policy runs while shard ``j``'s physics does: the physics (``mujoco.batch``)
and the fused numba kernels release the GIL, and what is left between them is a few short Python calls per
shard and step.

Results are the unsharded loop's bit for bit: rows never interact (each has its own MuJoCo instance, its
own reset seed ``seed + row`` and its own policy state), a shard whose first row is ``r0`` is reset with
``seed + r0`` (or its slice of a seed list, of per-row perturbations), and every shard runs as many
control steps as the slowest one (:func:`plasticrl.rollouts.loop.rollout`'s ``sync``), so its env and
policy end in the states the whole population's loop leaves them in and ``env_steps`` counts the same
transitions. ``tests/test_rollout_shards.py`` checks it with resets, terminations and perturbations.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from plasticrl.agents.base import BatchedPolicy
from plasticrl.envs.engine import default_num_threads
from plasticrl.errors import PlasticRLError
from plasticrl.rollouts.loop import RolloutResult, rollout
from plasticrl.rollouts.obs_norm import ObsNormalizer


def shard_bounds(population: int, shards: int) -> list[tuple[int, int]]:
    """Split ``population`` members into ``min(shards, population)`` contiguous ranges whose sizes differ
    by at most one (the larger ones first)."""
    if shards < 1:
        raise PlasticRLError(f"shards must be >= 1; got {shards}")
    shards = min(shards, population)
    base, extra = divmod(population, shards)
    bounds, start = [], 0
    for k in range(shards):
        stop = start + base + (1 if k < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def _shard_seed(seed: int | list[int] | None, first_row: int, rows: int) -> int | list[int] | None:
    """The reset seed(s) of rows ``[first_row, first_row + rows)``: ``seed + first_row`` for an int (the
    env seeds its instance ``i`` with ``seed + i``), the slice of a per-row list."""
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)):
        return int(seed) + first_row
    return list(seed)[first_row:first_row + rows]


def _shard_options(options: dict | None, first_row: int, rows: int, total_rows: int) -> dict | None:
    """Reset options for a shard: a per-row ``perturbations`` list sliced, the rest as given."""
    if not options or "perturbations" not in options:
        return options
    per_row = list(options["perturbations"])
    if len(per_row) != total_rows:
        raise PlasticRLError(f"reset option 'perturbations' has {len(per_row)} entries; expected one per row "
                             f"({total_rows})")
    return {**options, "perturbations": per_row[first_row:first_row + rows]}


class PopulationShards:
    """``shards`` (env, policy) pairs over contiguous member ranges, rolled out on as many threads.

    Args:
        make_env: builds the vector env of one shard from its row count (give it the shard's share of
            the physics threads: one each for as many shards as cores).
        make_policy: builds one shard's policy for its env (same configuration for every shard).
        shards: how many shards; ``1`` is :func:`~plasticrl.rollouts.loop.rollout` on one env exactly.

    Envs and policies are built at the first rollout of a population size and kept while it stays.
    """

    def __init__(self, make_env: Callable[[int], Any], make_policy: Callable[[Any], BatchedPolicy],
                 shards: int) -> None:
        if not isinstance(shards, int) or shards < 1:
            raise PlasticRLError(f"shards must be a positive int; got {shards!r}")
        self.make_env = make_env
        self.make_policy = make_policy
        self.shards = shards
        self._pairs: list[tuple[Any, BatchedPolicy]] = []
        self._sizes: list[int] = []
        self._executor: ThreadPoolExecutor | None = None

    @property
    def pairs(self) -> list[tuple[Any, BatchedPolicy]]:
        """The (env, policy) of each shard of the last rollout, in row order."""
        return list(self._pairs)

    def _build(self, sizes: list[int]) -> None:
        if sizes == self._sizes:
            return
        self.close_envs()
        self._pairs = []
        for rows in sizes:
            env = self.make_env(rows)
            self._pairs.append((env, self.make_policy(env)))
        self._sizes = sizes
        if len(sizes) > 1 and (self._executor is None or self._executor._max_workers < len(sizes) - 1):
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            self._executor = ThreadPoolExecutor(len(sizes) - 1, thread_name_prefix="plasticrl-shard")

    def rollout(self, genome: torch.Tensor, episodes_per_member: int = 1, max_steps: int | None = None,
                seed: int | list[int] | None = None, obs_norm: ObsNormalizer | None = None,
                collect_obs_moments: bool = False, reset_options: dict | None = None) -> RolloutResult:
        """:func:`~plasticrl.rollouts.loop.rollout` of ``genome [P, D]`` over the shards (same arguments,
        same result)."""
        population = genome.shape[0]
        bounds = shard_bounds(population, self.shards)
        self._build([(stop - start) * episodes_per_member for start, stop in bounds])
        total_rows = population * episodes_per_member
        if len(bounds) == 1:
            env, policy = self._pairs[0]
            return rollout(policy, env, genome, episodes_per_member, max_steps, seed, obs_norm,
                           collect_obs_moments, reset_options)
        barrier = threading.Barrier(len(bounds))
        taken = [0] * len(bounds)

        def run(k: int) -> RolloutResult:
            start, stop = bounds[k]
            first_row, rows = start * episodes_per_member, (stop - start) * episodes_per_member

            def sync(steps: int) -> int:
                # every shard runs to the slowest one's step count, as the rows of one env would
                taken[k] = steps
                barrier.wait()
                return max(taken)

            env, policy = self._pairs[k]
            try:
                return rollout(policy, env, genome[start:stop], episodes_per_member, max_steps,
                               _shard_seed(seed, first_row, rows), obs_norm, collect_obs_moments,
                               _shard_options(reset_options, first_row, rows, total_rows), sync=sync)
            except BaseException:
                barrier.abort()  # the other shards stop waiting for this one
                raise

        futures = [self._executor.submit(run, k) for k in range(1, len(bounds))]
        errors: list[BaseException] = []
        try:
            first = run(0)  # this thread steps the first shard
        except BaseException as error:  # noqa: BLE001 - re-raised below, once every shard has stopped
            errors.append(error)
        errors += [e for e in (f.exception() for f in futures) if e is not None]
        if errors:
            # the shard that failed, not the ones its abort woke up
            raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
        return _concatenate([first] + [f.result() for f in futures])

    def close_envs(self) -> None:
        """Close the shards' envs."""
        for env, _ in self._pairs:
            env.close()
        self._pairs, self._sizes = [], []

    def close(self) -> None:
        """Close the envs and stop the threads."""
        self.close_envs()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def _concatenate(parts: list[RolloutResult]) -> RolloutResult:
    """The shards' results as one, members in shard order (every shard ran the same step count)."""
    obs_rows = None
    if parts[0].obs_rows is not None:
        obs_rows = tuple(torch.cat([p.obs_rows[i] for p in parts]) for i in range(3))
    return RolloutResult(returns=torch.cat([p.returns for p in parts]), lengths=torch.cat([p.lengths for p in parts]),
                         invalid=torch.cat([p.invalid for p in parts]), env_steps=sum(p.env_steps for p in parts),
                         obs_rows=obs_rows)


def shard_physics_threads(shards: int) -> int:
    """Physics threads of each shard's env: this process's CPUs shared out, at least one."""
    return max(1, default_num_threads() // shards)
