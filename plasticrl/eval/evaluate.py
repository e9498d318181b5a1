"""Robustness evaluation of one or more controllers on the nominal condition and a suite.

``evaluate(controllers, env_id, suite="novel", episodes=10, seed=0)`` runs, per controller, every
(condition, episode) row in as few engine batches as ``max_rows`` allows, then summarises each
condition: mean return with a bootstrap interval, retained fraction (condition mean / nominal
mean, paired bootstrap interval) and, for mid-episode conditions, the adaptation curve and the
time to recover. For tasks that pay a bonus for staying healthy (Ant, Hopper, Walker2d,
Humanoid) the same two figures are also given for the return beyond that bonus: a robot that
stands still keeps all of its survival bonus under any damage, so the plain retained fraction
of an agent that never falls is pulled towards 1 whatever its gait does. When an agent's frozen
twin (``NAME/frozen``) is evaluated beside it, ``plasticity_effect`` holds their paired difference
per condition. On goal-switching tasks (HalfCheetahDir, AntDir, HalfCheetahVel) each row also holds
the reward per step before and after every episode's goal switch, and with an ``oracle`` (an agent
trained with ``goal_observed=True``, evaluated on the same paired episodes with the goal in its
observation) ``goal_adaptation`` holds each agent's adaptation ratio and time to adapt (see
:mod:`plasticrl.eval.goal_adaptation`). The result is an
:class:`~plasticrl.eval.result.EvaluationResult`; its ``to_json()`` is ``eval.json``.
"""
from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from plasticrl.errors import PlasticRLError, check_choice
from plasticrl.eval.adaptation import curve_from_sum, episode_times_to_recover, switch_step
from plasticrl.rollouts.batch import EpisodeBatch, join_pieces, plan_chunks, stream_batch
from plasticrl.rollouts.controllers import Controller, frozen_twins
from plasticrl.rollouts.saved_agent import LEARNS_WITHIN_EPISODE
from plasticrl.eval.goal_adaptation import (
    SwitchRates,
    after_switch_difference,
    rates_around_switch,
    summarise_adaptation,
    time_to_adapt,
)
from plasticrl.eval.plasticity_effect import FROZEN_SUFFIX, plasticity_effect
from plasticrl.eval.result import (RESULT_FORMAT, RESULT_KIND, EvaluationResult, GoalAdaptation, GoalSwitch,
                                   PlasticityEffect, as_result)
from plasticrl.eval.settings import EVAL_SUITES, EvalSettings, eval_settings
from plasticrl.eval.stats import CONFIDENCE, bootstrap_mean, bootstrap_ratio

NOMINAL = "nominal"

#: progress(agent_name, agent_count, steps_done_in_agent, steps_total_in_agent); the oracle, when
#: given, is reported first under its own name
Progress = Callable[[str, int, int, int], None]


def suite_conditions(env_id: str, suite: str, only: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Nominal plus the suite's conditions (``{"name", "severity", "perturbation"}``), filtered by
    the glob patterns ``only`` (nominal is always kept: retained fractions are relative to it)."""
    from plasticrl.envs import suite as env_suite

    # "train" is a distribution (ranges), not a list of named conditions, so it has no place here.
    check_choice("suite", suite, EVAL_SUITES)
    conds = [] if suite == NOMINAL else [c for c in env_suite(env_id, suite) if c["name"] != NOMINAL]
    if only:
        kept = [c for c in conds if any(fnmatch.fnmatchcase(c["name"], pat) for pat in only)]
        if not kept:
            raise PlasticRLError(f"--only {list(only)} matches no condition of suite {suite!r}; valid "
                                 f"names: {', '.join(c['name'] for c in conds)}")
        conds = kept
    return [{"name": NOMINAL, "severity": None, "perturbation": None}] + conds


def _family(name: str) -> str:
    return name.split("@", 1)[0]


def evaluate(
    controllers: Sequence[Controller],
    env_id: str,
    settings: EvalSettings | None = None,
    *,
    env_kwargs: dict[str, Any] | None = None,
    progress: Progress | None = None,
    oracle: Controller | None = None,
    force: bool = False,
    **values: Any,
) -> EvaluationResult:
    """Evaluate ``controllers`` under the suite; returns the typed result (see module doc).

    ``settings``: suite, episodes, seed, ``only``, ``max_rows``, ``window``, confidence and episode
    length (:class:`~plasticrl.eval.settings.EvalSettings`); or give them as keyword ``values``
    (``suite="nominal", episodes=5``), not both. ``frozen_twins`` adds, after the controllers, the
    frozen twin (``NAME/frozen``) of every one that learns within the episode; ``obs_std_floor`` acts
    where agent files are loaded (:func:`plasticrl.evaluate`, :mod:`plasticrl.experiments.evaluation`).
    ``oracle``: a controller that observes the goal (run with
    ``goal_observed=True`` added to the env keyword arguments, first, on the same episodes), the
    yardstick of goal adaptation. Episodes stream through engine batches of at most ``max_rows`` rows,
    each reduced as it ends, so memory grows with the episode count only by a few numbers per episode;
    ``force`` skips the memory guard (:mod:`plasticrl.rollouts.memory`)."""
    if settings is None:
        settings = eval_settings(**values)
    elif values:
        raise PlasticRLError(f"give the evaluation settings as settings= or as keywords, not both; got both "
                             f"settings and {', '.join(sorted(values))}")
    suite, episodes, seed = settings.suite, settings.episodes, settings.seed
    only, max_rows, window, confidence = settings.only, settings.max_rows, settings.window, settings.confidence
    controllers = list(controllers)
    if settings.frozen_twins:
        twins = frozen_twins(controllers)
        if not twins:
            raise PlasticRLError(f"frozen twins asked for, but none of the agents "
                                 f"({', '.join(c.name for c in controllers)}) learns within the episode "
                                 f"({LEARNS_WITHIN_EPISODE}); nothing to freeze")
        controllers += twins
    controllers = ([oracle] if oracle is not None else []) + controllers
    names = [c.name for c in controllers]
    if len(set(names)) != len(names):
        raise PlasticRLError(f"agent names must be unique; got {names} (give --name for each)")
    conditions = suite_conditions(env_id, suite, only)
    pairs = [(c["name"], c["perturbation"]) for c in conditions]
    kwargs = dict(env_kwargs or {})
    if settings.max_episode_steps is not None:
        kwargs["max_episode_steps"] = settings.max_episode_steps
    horizon = int(kwargs.get("max_episode_steps") or _default_horizon(env_id))
    chunks = plan_chunks(len(pairs), episodes, max_rows)
    if not force:
        _check_memory(controllers, env_id, kwargs, max(sum(e1 - e0 for _, e0, e1 in c) for c in chunks),
                      len(pairs) * episodes * len(controllers))
    steps_total = len(chunks) * horizon
    switches = {c["name"]: switch_step(c["perturbation"]) for c in conditions}
    rows, curves = [], []
    oracle_rates: dict[str, SwitchRates] = {}
    for a, ctrl in enumerate(controllers):
        is_oracle = oracle is not None and a == 0
        ctrl_kwargs = {**kwargs, "goal_observed": True} if is_oracle else kwargs
        done = [0]

        def on_steps(_rows: int, name: str = ctrl.name) -> None:
            done[0] += 1
            if progress is not None:
                progress(name, len(controllers), done[0], steps_total)

        gathered = {c["name"]: _Gathered(switches[c["name"]], keep_rewards=is_oracle) for c in conditions}
        for name, _, piece in stream_batch(ctrl, env_id, pairs, episodes, seed, ctrl_kwargs, max_rows,
                                           on_steps=on_steps):
            gathered[name].add(piece, oracle_rates.get(name), window)
        if progress is not None:
            progress(ctrl.name, len(controllers), steps_total, steps_total)
        nominal = gathered[NOMINAL].batch()
        for cond in conditions:
            g = gathered[cond["name"]]
            b = g.batch()
            # Invalid episodes (non-finite controller, observations or rewards, unstable physics) are
            # no results: statistics use the valid ones (retained: the pairs valid in both), the row
            # counts them, and their returns are written as null.
            valid = ~b.invalid
            paired = valid & ~nominal.invalid
            mean = bootstrap_mean(b.returns[valid], confidence, seed=seed)
            ret = bootstrap_ratio(b.returns[paired], nominal.returns[paired], confidence, seed=seed)
            start = switches[cond["name"]]
            curve = (curve_from_sum(g.curve_sum, g.curve_episodes, start, window)
                     if start is not None and valid.any() else None)
            if curve is not None:
                curves.append({"agent": ctrl.name, "condition": cond["name"], **curve.as_dict()})
            rows.append({
                "agent": ctrl.name, "condition": cond["name"], "family": _family(cond["name"]),
                "severity": cond["severity"], "perturbation": cond["perturbation"],
                "mid_episode": start is not None, "switch_step": start,
                "mean_return": mean.estimate, "ci_low": mean.low, "ci_high": mean.high,
                "std_return": float(np.std(b.returns[valid])) if valid.any() else math.nan,
                "retained": ret.estimate, "retained_low": ret.low, "retained_high": ret.high,
                "mean_length": float(np.mean(b.lengths)), "invalid_episodes": int(b.invalid.sum()),
                "time_to_recover": curve.time_to_recover if curve is not None else None,
                "returns": [None if bad else float(r) for r, bad in zip(b.returns, b.invalid)],
                "invalid": [bool(x) for x in b.invalid],
                **_after_switch(b, start, horizon, np.concatenate(g.after_switch) if start is not None else None,
                                g.times_to_recover),
                **_beyond_survival(b, nominal, confidence, seed),
                **_goal_switch(g, b, cond["name"], oracle_rates, is_oracle, window),
            })
    result = {"format": RESULT_FORMAT, "kind": RESULT_KIND, "env_id": env_id, "env_kwargs": kwargs,
              "suite": suite, "episodes": episodes, "seed": seed, "confidence": confidence, "window": window,
              "agents": names, "conditions": [c["name"] for c in conditions], "rows": rows, "curves": curves}
    # conditions a suite evaluates for reference only (the training bodies of the morphology split):
    # reported per condition, left out of every held-out mean
    result["reference_conditions"] = [c["name"] for c in conditions if c.get("held_out") is False]
    if oracle is not None:
        result["oracle"] = oracle.name
    # The derived tables are computed from the typed rows, then the dict is complete (eval.json's order).
    rows_only = EvaluationResult.from_json({**result, "plasticity_effect": []})
    result["plasticity_effect"] = plasticity_effect(rows_only)
    result["goal_adaptation"] = goal_adaptation(rows_only)
    return EvaluationResult.from_json(result)


def with_derived(result: EvaluationResult) -> EvaluationResult:
    """``result`` with its plasticity effect and goal adaptation (re)derived from its rows."""
    return result.replace(plasticity_effect=PlasticityEffect.derive(plasticity_effect(result)),
                          goal_adaptation=GoalAdaptation.derive(goal_adaptation(result)))


class _Gathered:
    """One agent's episodes of one condition, reduced batch by batch as the evaluation streams them:
    per episode a handful of scalars (return, length, invalid flag, survival bonus, goal switch step,
    return after a mid-episode switch, reward rates around a goal switch, time to adapt), and for a
    mid-episode condition the per-step reward summed over the valid episodes still running at the
    switch (the adaptation curve). Per-step rewards are kept only with ``keep_rewards`` (the oracle
    of a goal-switching task: its own time to adapt is measured against its mean after-switch rate,
    known only once its last episode has run)."""

    def __init__(self, switch: int | None, keep_rewards: bool = False):
        self.switch = switch
        self.keep_rewards = keep_rewards
        self.pieces: list[EpisodeBatch] = []  # per-step rewards dropped unless keep_rewards
        self.curve_sum = np.zeros(0)
        self.curve_episodes = 0
        self.after_switch: list[np.ndarray] = []
        self.times_to_recover: list[int | None] = []
        self.rates: list[SwitchRates] = []
        self.goal_term_rates: list[SwitchRates] = []
        self.adapt: list[np.ndarray] = []

    def add(self, piece: EpisodeBatch, target: SwitchRates | None, window: int) -> None:
        """Reduce one batch's episodes; ``target``: the oracle's rates of this condition, if known."""
        start = self.switch
        if start is not None:
            # float32 sums per episode, as the per-episode returns after the switch always were
            self.after_switch.append(piece.rewards[start:].sum(axis=0))
            alive = ~piece.invalid & (piece.lengths > start)
            part = np.asarray(piece.rewards, dtype=np.float64)[:, alive].sum(axis=1)
            if part.shape[0] > self.curve_sum.shape[0]:  # the curve spans the longest batch
                self.curve_sum = np.pad(self.curve_sum, (0, part.shape[0] - self.curve_sum.shape[0]))
            self.curve_sum[:part.shape[0]] += part
            self.curve_episodes += int(alive.sum())
            self.times_to_recover += episode_times_to_recover(piece.rewards, piece.lengths, start, window)
        if piece.goal_switch_steps is not None:
            self.rates.append(rates_around_switch(piece.rewards, piece.lengths, piece.goal_switch_steps))
            if piece.goal_term is not None:
                self.goal_term_rates.append(rates_around_switch(piece.goal_term, piece.lengths,
                                                                piece.goal_switch_steps))
            if not self.keep_rewards:
                self.adapt.append(time_to_adapt(piece.rewards, piece.lengths, piece.goal_switch_steps,
                                                _target_rate(target), window=window))
        if not self.keep_rewards:
            piece = EpisodeBatch(piece.returns, piece.lengths, piece.invalid, np.zeros((0, piece.returns.size),
                                 dtype=np.float32), piece.survival, piece.goal_switch_steps)  # goal term dropped too
        self.pieces.append(piece)

    def batch(self) -> EpisodeBatch:
        """The condition's episodes, in order (``rewards`` empty unless kept)."""
        return join_pieces(self.pieces)

    def switch_rates(self) -> SwitchRates:
        """Reward rates before and after each episode's goal switch."""
        return SwitchRates(np.concatenate([r.before for r in self.rates]), np.concatenate([r.after for r in self.rates]))

    def goal_term_switch_rates(self) -> SwitchRates | None:
        """The goal term's rates before and after each episode's switch (``None``: the task reports none)."""
        if not self.goal_term_rates or len(self.goal_term_rates) != len(self.rates):
            return None
        return SwitchRates(np.concatenate([r.before for r in self.goal_term_rates]),
                           np.concatenate([r.after for r in self.goal_term_rates]))


def _target_rate(target: SwitchRates | None) -> float:
    """The oracle's mean after-switch rate (NaN without an oracle or without after-switch episodes)."""
    return float(np.nanmean(target.after)) if target is not None and np.isfinite(target.after).any() else math.nan


def _goal_switch(g: _Gathered, b: EpisodeBatch, condition: str, oracle_rates: dict[str, SwitchRates],
                 is_oracle: bool, window: int) -> dict[str, Any]:
    """Per-episode reward rates around the goal switch (goal-switching tasks only); time to adapt is
    measured against the oracle's mean after-switch rate of the same condition."""
    if b.goal_switch_steps is None:
        return {}
    rates = g.switch_rates()
    if is_oracle:
        oracle_rates[condition] = rates
    target_rate = _target_rate(oracle_rates.get(condition))
    if g.keep_rewards:  # the oracle: its target is its own mean, known only now
        adapt = time_to_adapt(b.rewards, b.lengths, b.goal_switch_steps, target_rate, window=window)
    else:
        adapt = np.concatenate(g.adapt)
    out = {"goal_switch_steps": [int(s) for s in b.goal_switch_steps],
           "reward_rates_before": [float(x) for x in rates.before],
           "reward_rates_after": [float(x) for x in rates.after],
           "time_to_adapt": [float(x) for x in adapt], "oracle_reward_rate_after": target_rate}
    if b.survival is not None:
        # The survival bonus per step of each episode (paid at every healthy step, so constant but for
        # the step that ends a falling episode): subtracted from both rates it leaves what the gait
        # earns toward the goal. On AntDir an agent that stands still keeps ~1.0 per step of bonus.
        per_step = np.asarray(b.survival, dtype=np.float64) / np.maximum(np.asarray(b.lengths), 1)
        out["survival_per_step"] = [float(x) for x in per_step]
    terms = g.goal_term_switch_rates()
    if terms is not None:
        out["goal_term_rates_before"] = [float(x) for x in terms.before]
        out["goal_term_rates_after"] = [float(x) for x in terms.after]
    return out


def goal_adaptation(result: EvaluationResult | Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per agent and condition of a goal-switching task: rates before/after the switch, the paired
    adaptation ratio against the oracle (when one was evaluated), time to adapt, and, for an agent
    with a frozen twin, the paired after-switch difference (agent - twin), as ``eval.json``'s entries
    (the result holds them as :class:`~plasticrl.eval.result.GoalAdaptation`). Empty on other tasks.
    An ``eval.json`` dict is read as the typed result first."""
    result = as_result(result)
    rows = [r for r in result.rows if r.goal_switch is not None and r.goal_switch.reward_rates_after is not None]
    by_key = {(r.agent, r.condition): r.goal_switch for r in rows}
    oracle = result.oracle
    confidence = result.confidence
    seed = int(result.seed)
    out = []
    for r in rows:
        g = r.goal_switch
        rates = _switch_rates(g)
        o = by_key.get((oracle, r.condition)) if oracle else None
        o_rates = _switch_rates(o) if o else None
        adapt = np.asarray(g.time_to_adapt, dtype=np.float64)
        summary = summarise_adaptation(r.agent, rates, adapt, o_rates if r.agent != oracle else None,
                                       confidence, seed).as_dict()
        if g.survival_per_step is not None:
            beyond = _beyond_survival_rates(rates, g)
            o_beyond = _beyond_survival_rates(o_rates, o) if o is not None and o.survival_per_step else None
            part = summarise_adaptation(r.agent, beyond, adapt, o_beyond if r.agent != oracle else None,
                                        confidence, seed)
            summary["beyond_survival"] = {k: getattr(part, k) for k in _RATE_KEYS}
        if g.goal_term_rates_after is not None:
            terms = _goal_term_rates(g)
            o_terms = _goal_term_rates(o) if o is not None and o.goal_term_rates_after is not None else None
            part = summarise_adaptation(r.agent, terms, adapt, o_terms if r.agent != oracle else None,
                                        confidence, seed)
            summary["goal_term"] = {k: getattr(part, k) for k in _RATE_KEYS}
        summary["condition"] = r.condition
        summary["is_oracle"] = r.agent == oracle
        twin_agent = r.agent + FROZEN_SUFFIX
        twin = by_key.get((twin_agent, r.condition))
        if twin is not None:
            est, low, high = after_switch_difference(rates, _switch_rates(twin), confidence, seed)
            summary.update({"twin": twin_agent, "after_minus_twin": est, "after_minus_twin_low": low,
                            "after_minus_twin_high": high})
        out.append(summary)
    return out


def _switch_rates(g: GoalSwitch) -> SwitchRates:
    """The per-episode reward rates before and after the goal switch (``None``, undefined, as NaN)."""
    return SwitchRates(np.asarray(g.reward_rates_before, dtype=np.float64),
                       np.asarray(g.reward_rates_after, dtype=np.float64))


#: The parts of an adaptation summary that the variants (beyond survival, the goal term) report.
_RATE_KEYS = ("reward_rate_before", "reward_rate_after", "adaptation_ratio", "adaptation_ratio_low",
              "adaptation_ratio_high")


def _goal_term_rates(g: GoalSwitch) -> SwitchRates:
    """The goal term's per-episode rates before and after the switch (``None``, undefined, as NaN)."""
    return SwitchRates(np.asarray(g.goal_term_rates_before, dtype=np.float64),
                       np.asarray(g.goal_term_rates_after, dtype=np.float64))


def _beyond_survival_rates(rates: SwitchRates, g: GoalSwitch) -> SwitchRates:
    """``rates`` less each episode's survival bonus per step (``g.survival_per_step``)."""
    per_step = np.asarray(g.survival_per_step, dtype=np.float64)
    return SwitchRates(rates.before - per_step, rates.after - per_step)


def _after_switch(b: EpisodeBatch, start: int | None, horizon: int,
                  after: np.ndarray | None = None, times: list[int | None] | None = None) -> dict[str, Any]:
    """Per-episode return earned from the switch on (mid-episode conditions only): with the
    return before it, this tells a drop at the switch from a difference over the whole episode; and
    each episode's own time to recover (``None``: never, or an invalid episode).
    ``after``/``times``: those values, gathered batch by batch as the evaluation streamed (default:
    from ``b.rewards``)."""
    if start is None:
        return {}
    after = b.rewards[start:].sum(axis=0) if after is None else after
    times = episode_times_to_recover(b.rewards, b.lengths, start) if times is None else times
    return {"returns_after_switch": [None if bad else float(x) for x, bad in zip(after, b.invalid)],
            "steps_after_switch": max(horizon - start, 0),
            "episode_times_to_recover": [None if bad else t for t, bad in zip(times, b.invalid)]}


def _beyond_survival(b, nominal, confidence: float, seed: int) -> dict[str, Any]:
    """Return and retained fraction without the survival bonus (empty when the task pays none)."""
    if b.survival is None or nominal.survival is None:
        return {}
    beyond = b.returns - b.survival
    valid, paired = ~b.invalid, ~b.invalid & ~nominal.invalid  # invalid episodes are no results
    mean = bootstrap_mean(beyond[valid], confidence, seed=seed)
    ret = bootstrap_ratio(beyond[paired], (nominal.returns - nominal.survival)[paired], confidence, seed=seed)
    return {"mean_survival_bonus": float(np.mean(b.survival[valid])) if valid.any() else math.nan,
            "survival_bonus": [float(x) for x in b.survival],
            "mean_return_beyond_survival": mean.estimate, "beyond_survival_ci_low": mean.low,
            "beyond_survival_ci_high": mean.high, "retained_beyond_survival": ret.estimate,
            "retained_beyond_survival_low": ret.low, "retained_beyond_survival_high": ret.high}


def _check_memory(controllers: Sequence[Controller], env_id: str, env_kwargs: dict[str, Any], rows: int,
                  episodes: int) -> None:
    """Refuse (one line, naming ``--force``) an evaluation whose largest batch would not fit in memory."""
    from plasticrl.envs import make_vec
    from plasticrl.rollouts.memory import check_memory, env_row_bytes, evaluation_estimate, policy_row_bytes

    env = make_vec(env_id, 1, **env_kwargs)
    try:
        per_env, obs_dim = env_row_bytes(env), int(np.prod(env.single_observation_space.shape))
    finally:
        env.close()
    per_policy = max((policy_row_bytes(c.policy) for c in controllers if hasattr(c, "policy")
                      and hasattr(c.policy, "load_genome")), default=0)
    check_memory(evaluation_estimate(rows, per_policy, per_env, obs_dim, episodes), hint="lower --max-rows")


def _default_horizon(env_id: str) -> int:
    import gymnasium as gym

    spec = gym.spec(env_id if "/" in env_id else f"plasticrl/{env_id}")
    return int(spec.max_episode_steps or 1000)
