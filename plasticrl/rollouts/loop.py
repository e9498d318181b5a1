"""Batched rollout: one policy step and one vector-env step per control step for all rows.

Each row (member x episode) runs one episode; rows that finish are masked out of the
return and their later (autoreset) transitions are ignored, so no Python loop runs over
members and the episode accounting stays exact under Gymnasium's next-step autoreset.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from plasticrl.agents.base import BatchedPolicy
from plasticrl.errors import PlasticRLError, check_choice
from plasticrl.rollouts import compiled
from plasticrl.rollouts.obs_norm import ObsBatchMoments, ObsNormalizer

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
_NO_CAP = np.iinfo(np.int64).max  # max_steps None: no cap on the control steps


#: ``train.fitness`` choices: how a member's ``[E]`` episode returns become one fitness
_EPISODE_AGGREGATES = {"mean": lambda returns: returns.mean(dim=1), "min": lambda returns: returns.min(dim=1).values}


@dataclass
class RolloutResult:
    returns: torch.Tensor  # [P, E] episode return per member and episode
    lengths: torch.Tensor  # [P, E] control steps until termination/truncation (or the step cap)
    invalid: torch.Tensor  # [P] members whose weights or actions went non-finite, or with an invalid episode
    env_steps: int  # transitions simulated, finished rows included
    obs_rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # per-row count, sum, sum of squares

    @property
    def obs_moments(self) -> ObsBatchMoments | None:
        """Raw-observation moments of the active rows, reduced over rows in row order."""
        if self.obs_rows is None:
            return None
        count, total, total_sq = self.obs_rows
        # Only valid members' rows: one member that met a non-finite observation or an unstable
        # simulation must not poison the statistics every later generation is normalised with.
        keep = ~self.invalid.repeat_interleave(self.returns.shape[1])
        if bool(keep.all()):
            return ObsBatchMoments(float(count.sum()), total.sum(0), total_sq.sum(0))
        return ObsBatchMoments(float(count[keep].sum()), total[keep].sum(0), total_sq[keep].sum(0))

    def return_stats(self, member: int = 0) -> tuple[float, float]:
        """Mean (``-inf`` if the member went invalid) and population std of one member's returns."""
        returns = self.returns[member]
        mean = float(returns.mean()) if not bool(self.invalid[member]) else -float("inf")
        return mean, float(returns.std(unbiased=False))

    @property
    def fitness(self) -> torch.Tensor:
        """``[P]`` mean return over episodes; invalid members get ``-inf`` (ranked worst)."""
        return self.member_fitness("mean")

    def member_fitness(self, aggregate: str = "mean") -> torch.Tensor:
        """``[P]`` fitness over each member's episodes: their ``mean`` return, or their ``min``, the
        worst episode (a risk-averse objective: with several training conditions per member, a member
        ranks by the condition it copes with worst); invalid members get ``-inf``."""
        reduce = _EPISODE_AGGREGATES[check_choice("fitness aggregate", aggregate, _EPISODE_AGGREGATES)]
        value = reduce(self.returns)
        return torch.where(self.invalid, torch.full_like(value, -float("inf")), value)


def rollout(
    policy: BatchedPolicy,
    env,
    genome: torch.Tensor,
    episodes_per_member: int = 1,
    max_steps: int | None = None,
    seed: int | list[int] | None = None,
    obs_norm: ObsNormalizer | None = None,
    collect_obs_moments: bool = False,
    reset_options: dict | None = None,
    sync: Callable[[int], int] | None = None,
) -> RolloutResult:
    """Run every member of ``genome [P, D]`` for ``episodes_per_member`` episodes in ``env``.

    ``env`` is a Gymnasium vector env with exactly ``P * E`` sub-envs (row-major by member).
    Stops when every row has finished an episode, or after ``max_steps`` control steps.
    Observations pass through the (frozen) ``obs_norm``; with ``collect_obs_moments`` the raw
    observations of active rows are summed so the caller can update the statistics afterwards.
    An episode that meets a non-finite observation or reward, or that the env reports
    ``unstable`` (MuJoCo's instability warning), makes its member invalid.

    ``sync`` (used by :mod:`plasticrl.rollouts.shards`): called once with the number of control steps
    taken when this call's rows are done (or ``max_steps`` is reached); it returns the step count to
    run to, and the loop runs on (every row finished, nothing added to the results) until then, so
    that a population shard ends in the state the whole population's loop would leave it in.
    """
    population = genome.shape[0]
    rows = population * episodes_per_member
    if env.num_envs != rows:
        raise PlasticRLError(f"env has {env.num_envs} sub-envs; expected population x episodes = "
                             f"{population} x {episodes_per_member} = {rows}")
    # the policy learns each row's episode seed as the env gets it (random initial weights follow it)
    policy.load_genome(genome, episodes_per_member, seeds=seed)
    obs, _ = env.reset(seed=seed, options=reset_options) if reset_options else env.reset(seed=seed)
    device, dtype = policy.device, policy.dtype
    # Bookkeeping runs in numpy float64: per control step it is a dozen tiny array ops, where
    # torch's per-op dispatch cost would exceed the arithmetic (same IEEE results either way).
    returns = np.zeros(rows)
    lengths = np.zeros(rows, dtype=np.int64)
    active = np.ones(rows, dtype=bool)
    bad = np.zeros(rows, dtype=bool)  # episodes with a non-finite observation or reward, or unstable physics
    steps = 0
    env_steps = 0
    obs_dim = policy.obs_dim
    affine = obs_norm.affine() if obs_norm is not None else None
    clip = obs_norm.clip if obs_norm is not None else 0.0
    # Per-row sums, reduced over rows in row order at the end: a sharded evaluation that
    # concatenates its shards' rows reproduces the statistics bit for bit.
    row_count = np.zeros(rows)
    row_sum = np.zeros((rows, obs_dim))
    row_sumsq = np.zeros((rows, obs_dim))
    # With a split step (step_async / step_wait) the observation statistics of this step are summed
    # while the physics of the next one runs on the worker threads; step_wait is the engine's lean one
    # (the same values without the infos, which the loop does not read) or Gymnasium's with the
    # unstable flags taken from its infos; None: env.step only.
    step_wait = None
    if hasattr(env, "step_async") and hasattr(env, "step_wait"):
        step_wait = getattr(env, "step_wait_lean", None) or _with_unstable_flags(env.step_wait)
    if compiled.available() and device.type == "cpu" and dtype in _NUMPY_DTYPES:
        return _rollout_compiled(policy, env, obs, population, episodes_per_member, max_steps, affine, clip,
                                 collect_obs_moments, step_wait, sync)

    def step(limit: int = 0, stop_when_idle: bool = True) -> None:  # one control step (see _run)
        nonlocal obs, steps, env_steps, bad, returns, lengths, active, row_count, row_sum, row_sumsq
        # A copy: with a split step, a vector env may refill its observation buffer while the
        # statistics of this step are still being summed.
        raw = np.array(obs, dtype=np.float64).reshape(rows, obs_dim)
        if affine is not None:
            policy_obs = np.clip((raw - affine[0]) / affine[1], -clip, clip)
        else:
            policy_obs = raw
        actions = policy.act(torch.from_numpy(policy_obs).to(device=device, dtype=dtype))
        actions = actions.cpu().numpy().astype(np.float64)
        if step_wait is not None:
            env.step_async(actions)
        bad |= active & ~np.isfinite(raw).all(axis=1)
        if collect_obs_moments:
            counted = active & ~bad
            live = np.where(counted[:, None], raw, 0.0)
            row_count += counted
            row_sum += live
            row_sumsq += live * live
        if step_wait is not None:
            obs, reward, terminated, truncated, unstable = step_wait()
        else:
            obs, reward, terminated, truncated, info = env.step(actions)
            unstable = _unstable(info)
        reward = np.asarray(reward, dtype=np.float64)
        bad |= active & ~np.isfinite(reward)
        bad |= active & unstable
        returns += np.where(active, reward, 0.0)
        lengths += active
        policy.learn(torch.from_numpy(reward).to(device=device, dtype=dtype))
        active &= ~np.logical_or(terminated, truncated)
        steps += 1
        env_steps += rows

    _run(step, active, lambda: steps, max_steps, sync)
    return _result(policy, returns, lengths, bad, population, episodes_per_member, env_steps,
                   (row_count, row_sum, row_sumsq) if collect_obs_moments else None)


def _run(step: Callable[[int, bool], None], active: np.ndarray, steps: Callable[[], int], max_steps: int | None,
         sync: Callable[[int], int] | None) -> None:
    """Call ``step`` until no row is active or ``max_steps`` steps are taken; then, with ``sync``, on
    to the step count it returns (see :func:`rollout`). ``step(limit, stop_when_idle)`` takes at least one
    control step and may take more (compiled env steps), never past ``limit`` and, with ``stop_when_idle``,
    never past the step that leaves no row active."""
    cap = _NO_CAP if max_steps is None else max_steps
    with torch.inference_mode():
        while active.any() and steps() < cap:
            step(cap, True)
        if sync is not None:
            target = sync(steps())
            while steps() < target:
                step(target, False)


def _with_unstable_flags(step_wait: Callable[[], tuple]) -> Callable[[], tuple]:
    """A Gymnasium ``step_wait`` returning the unstable flags in place of the infos, as the lean step does."""
    def lean() -> tuple:
        obs, reward, terminated, truncated, info = step_wait()
        return obs, reward, terminated, truncated, _unstable(info)
    return lean


def _row_flags(flags: np.ndarray | bool, rows: int) -> np.ndarray:
    """Per-row bool flags (``unstable``: an array, or one bool for every row) as a contiguous array."""
    flags = np.asarray(flags, dtype=np.bool_)
    return np.full(rows, bool(flags)) if flags.ndim == 0 else np.ascontiguousarray(flags)


def _unstable(info: Any) -> np.ndarray | bool:
    """The rows MuJoCo flagged unstable this step (``info["unstable"]``), or False."""
    unstable = info.get("unstable") if isinstance(info, dict) else None
    return False if unstable is None else np.asarray(unstable, dtype=bool)


def _result(policy: BatchedPolicy, returns: np.ndarray, lengths: np.ndarray, bad: np.ndarray, population: int,
            episodes_per_member: int, env_steps: int,
            obs_rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> RolloutResult:
    """Both loops' result: per-member views, a member invalid if its weights went non-finite or any of its
    episodes went bad."""
    return RolloutResult(
        returns=torch.from_numpy(returns).view(population, episodes_per_member),
        lengths=torch.from_numpy(lengths).view(population, episodes_per_member),
        invalid=policy.member_invalid().cpu() | torch.from_numpy(bad.reshape(population, episodes_per_member).any(1)),
        env_steps=env_steps,
        obs_rows=tuple(torch.from_numpy(a) for a in obs_rows) if obs_rows is not None else None,
    )


def _rollout_compiled(policy: BatchedPolicy, env, obs, population: int, episodes_per_member: int,
                      max_steps: int | None, affine: tuple[np.ndarray, np.ndarray] | None, clip: float,
                      collect_obs_moments: bool, step_wait: Callable[[], tuple] | None,
                      sync: Callable[[int], int] | None = None) -> RolloutResult:
    """:func:`rollout`'s loop with its per-step bookkeeping in the compiled loops of
    :mod:`plasticrl.rollouts.compiled`: the same operations in the same order, so the same bits, with
    preallocated buffers instead of a dozen numpy temporaries per step."""
    rows = population * episodes_per_member
    obs_dim = policy.obs_dim
    returns = np.zeros(rows)
    lengths = np.zeros(rows, dtype=np.int64)
    active = np.ones(rows, dtype=bool)
    row_count = np.zeros(rows)
    row_sum = np.zeros((rows, obs_dim))
    row_sumsq = np.zeros((rows, obs_dim))
    raw = np.zeros((rows, obs_dim))  # this step's observations (the env may refill its buffer meanwhile)
    bad = np.zeros(rows, dtype=bool)  # episodes with a non-finite observation or reward, or unstable physics
    normalise = affine is not None
    mean, std = affine if normalise else (np.zeros(obs_dim), np.ones(obs_dim))
    clip = float(clip)
    steps = env_steps = 0
    # A fused policy's act and learn (spiking or Hebbian MLP) run inside the compiled step (fused_step
    # below), on these buffers
    np_dtype = _NUMPY_DTYPES[policy.dtype]
    # (the policy's input: the observation, then the reward input's column if it has one)
    fused_obs = np.zeros((rows, getattr(policy, "input_dim", obs_dim)), dtype=np_dtype)
    fused_actions = np.zeros((rows, policy.act_dim), dtype=np_dtype)
    fused_reward = np.zeros(rows, dtype=np_dtype)
    kernels = None
    kernel_step = getattr(policy, "kernel_step", None)  # (a duck-typed policy may not have one)
    replaced = getattr(policy, "__dict__", {})
    if kernel_step is not None and "act" not in replaced and "learn" not in replaced:
        # (an act or learn replaced on the instance, a wrapper or a timer, is called as it is)
        with torch.inference_mode():  # as act and learn run in _run (the fused glue takes its state views here)
            kernels = kernel_step(fused_obs, fused_actions, fused_reward)
    if kernels is not None and kernels.kind in ("spiking", "mlp"):
        # the compiled step of the policy's kind: its act kernel (the learn kernel is the same)
        begin, finish = ((compiled.begin_spiking, compiled.finish_spiking) if kernels.kind == "spiking"
                         else (compiled.begin_mlp, compiled.finish_mlp))
        began = False
        actions = np.zeros((rows, policy.act_dim))

        def fused_step(limit: int = 0, stop_when_idle: bool = True) -> None:
            """:func:`step` with one compiled call per control step once the env has stepped: its
            bookkeeping, the policy's learn, and the next step's observations and act (begun only if the loop
            goes on, which it decides as :func:`_run` does; otherwise the next step, if any, begins here)."""
            nonlocal obs, steps, env_steps, began, actions
            if not began:
                actions = np.empty((rows, policy.act_dim))
                begin(np.asarray(obs, dtype=np.float64).reshape(rows, obs_dim), mean, std, clip,
                      normalise, active, bad, raw, fused_obs, kernels.act, fused_actions, actions,
                      kernels.reward_scale, fused_reward)
            if step_wait is not None:
                env.step_async(actions)
                obs, reward, terminated, truncated, unstable = step_wait()
            else:
                obs, reward, terminated, truncated, info = env.step(actions)
                unstable = _unstable(info)
            steps += 1
            env_steps += rows
            actions = np.empty((rows, policy.act_dim))  # the env may keep the last one until its next step
            began = finish(
                collect_obs_moments, raw, row_count, row_sum, row_sumsq, _row_flags(unstable, rows),
                np.ascontiguousarray(reward, dtype=np.float64), compiled.as_bool(terminated),
                compiled.as_bool(truncated), active, bad, returns, lengths, fused_reward, kernels.learn_on,
                kernels.learn, max_steps is None or steps < max_steps,
                np.asarray(obs, dtype=np.float64).reshape(rows, obs_dim), mean, std, clip, normalise, fused_obs,
                kernels.act, fused_actions, actions, kernels.reward_scale)

        run_compiled = compiled.run_spiking if kernels.kind == "spiking" else compiled.run_mlp
        compiled_step = getattr(env, "compiled_step", None) if run_compiled is not None else None
        cap = _NO_CAP if max_steps is None else max_steps

        def advance(limit: int, stop_when_idle: bool) -> None:
            """Control steps: as many as the env can take in compiled code (:func:`compiled.run_spiking`: the
            env's physics and task, then the same calls as :func:`fused_step`), up to ``limit`` (and, with
            ``stop_when_idle``, until no row is active), or else one :func:`fused_step`."""
            nonlocal obs, steps, env_steps, began, actions
            step_args = compiled_step() if compiled_step is not None else None
            if step_args is None:
                fused_step()
                return
            taken, began = run_compiled(
                step_args.physics, step_args.task, step_args.state, actions, began, steps, limit, stop_when_idle,
                cap, collect_obs_moments, raw, row_count, row_sum, row_sumsq, active, bad, returns, lengths,
                fused_reward, kernels.learn_on, kernels.learn, mean, std, clip, normalise, fused_obs, kernels.act,
                fused_actions, kernels.reward_scale)
            steps += taken
            env_steps += rows * taken
            obs = step_args.state[0].copy()  # the env's observations, as its step returns them
            actions = actions.copy()  # (the next step's, if begun) in a buffer no env step holds

        _run(advance, active, lambda: steps, max_steps, sync)
        return _result(policy, returns, lengths, bad, population, episodes_per_member, env_steps,
                       (row_count, row_sum, row_sumsq) if collect_obs_moments else None)

    def step(limit: int = 0, stop_when_idle: bool = True) -> None:  # one control step (see _run)
        nonlocal obs, steps, env_steps, bad
        # fresh tensors each step: a policy may keep references to its inputs
        policy_obs = torch.empty((rows, obs_dim), dtype=policy.dtype)
        compiled.prepare_obs(np.asarray(obs, dtype=np.float64).reshape(rows, obs_dim), mean, std, clip,
                             normalise, active, bad, raw, policy_obs.numpy())
        actions = policy.act(policy_obs).numpy().astype(np.float64)
        if step_wait is not None:
            env.step_async(actions)
        if collect_obs_moments:
            compiled.accumulate_moments(raw, active, bad, row_count, row_sum, row_sumsq)
        if step_wait is not None:
            obs, reward, terminated, truncated, unstable = step_wait()
        else:
            obs, reward, terminated, truncated, info = env.step(actions)
            unstable = _unstable(info)
        bad |= active & unstable
        policy_reward = torch.empty(rows, dtype=policy.dtype)
        compiled.after_step(np.ascontiguousarray(reward, dtype=np.float64), compiled.as_bool(terminated),
                            compiled.as_bool(truncated), active, bad, returns, lengths, policy_reward.numpy())
        policy.learn(policy_reward)
        steps += 1
        env_steps += rows

    _run(step, active, lambda: steps, max_steps, sync)
    return _result(policy, returns, lengths, bad, population, episodes_per_member, env_steps,
                   (row_count, row_sum, row_sumsq) if collect_obs_moments else None)
