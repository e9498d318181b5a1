"""The typed evaluation result: what :func:`plasticrl.eval.evaluate.evaluate` returns and ``eval.json`` holds.

:class:`EvaluationResult` is the header (env, suite, episodes, seed, ...), one :class:`ConditionSummary`
per agent and condition, one :class:`ConditionCurve` per mid-episode condition, the plasticity effect
(:class:`PlasticityEffect`, per agent with a frozen twin) and the goal adaptation
(:class:`GoalAdaptation`, goal-switching tasks). Parts that only some tasks have are optional groups:
:class:`AfterSwitch` (mid-episode conditions), :class:`BeyondSurvival` (tasks with a survival bonus),
:class:`GoalSwitch` (goal-switching tasks); ``None`` when the task has none, and absent from the JSON.

Numbers follow the one JSON convention of :mod:`plasticrl.io`: a value that is not finite (undefined: a
retained fraction over a negative nominal return, an invalid episode's return) is ``None``, written as
``null``. :meth:`EvaluationResult.to_json` gives the ``eval.json`` dict (the keys, their order and
values plasticrl has always written) and :meth:`EvaluationResult.from_json` reads one back, also
results saved by older versions or assembled by hand, whose missing keys read as ``None`` (or the
defaults below).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, ClassVar, TypeVar

from plasticrl.eval.settings import CONFIDENCE
from plasticrl.io import json_safe

RESULT_FORMAT = 1
RESULT_KIND = "plasticrl-eval"
#: the adaptation window of a result that does not record one
DEFAULT_WINDOW = 20

_G = TypeVar("_G", bound="_Group")


def _tuple(values: Sequence[Any] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)


def _plain(value: Any) -> Any:
    """Tuples (how the dataclasses hold sequences) back to the lists JSON has."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


class _Group:
    """A dataclass whose field names are its JSON keys, flattened into the enclosing object."""

    _sequences: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The JSON keys of the group, in order."""
        return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    @classmethod
    def present_in(cls, data: Mapping[str, Any]) -> bool:
        """Whether ``data`` holds any key of the group."""
        return any(k in data for k in cls.keys())

    @classmethod
    def read(cls: type[_G], data: Mapping[str, Any]) -> _G:
        """The group from ``data`` (missing keys: ``None``)."""
        return cls(**{k: _tuple(data.get(k)) if k in cls._sequences else data.get(k)  # type: ignore[call-arg]
                      for k in cls.keys()})

    def items(self) -> list[tuple[str, Any]]:
        """``(key, JSON value)`` pairs, in order."""
        return [(k, _plain(getattr(self, k))) for k in self.keys()]


@dataclass(frozen=True)
class AfterSwitch(_Group):
    """Mid-episode conditions: per episode, the return earned from the switch on (``None``: invalid
    episode), the steps from the switch to the horizon, and per episode its own time to recover 80% of
    its pre-switch reward rate (``None``: never, an invalid episode, or a result written before it was
    recorded)."""

    _sequences: ClassVar[tuple[str, ...]] = ("returns_after_switch", "episode_times_to_recover")
    returns_after_switch: tuple[float | None, ...]
    steps_after_switch: int
    episode_times_to_recover: tuple[int | None, ...] | None = None

    def items(self) -> list[tuple[str, Any]]:
        """As the JSON has them: ``episode_times_to_recover`` only where it was recorded."""
        return [(k, v) for k, v in super().items() if k != "episode_times_to_recover" or v is not None]

    def recovered_within(self, steps: int) -> tuple[int, int] | None:
        """``(episodes that recovered within steps, valid episodes)``; ``None`` when the per-episode times
        were not recorded. An episode that never recovered (or ended before the switch) counts in the
        second number only; invalid ones in neither."""
        if self.episode_times_to_recover is None:
            return None
        valid = [t for t, r in zip(self.episode_times_to_recover, self.returns_after_switch) if r is not None]
        return sum(1 for t in valid if t is not None and t <= steps), len(valid)


@dataclass(frozen=True)
class BeyondSurvival(_Group):
    """Tasks that pay a bonus for staying healthy: the bonus per episode and the return and retained
    fraction without it (with their bootstrap intervals)."""

    _sequences: ClassVar[tuple[str, ...]] = ("survival_bonus",)
    mean_survival_bonus: float | None
    survival_bonus: tuple[float, ...] | None
    mean_return_beyond_survival: float | None
    beyond_survival_ci_low: float | None
    beyond_survival_ci_high: float | None
    retained_beyond_survival: float | None
    retained_beyond_survival_low: float | None
    retained_beyond_survival_high: float | None


@dataclass(frozen=True)
class GoalSwitch(_Group):
    """Goal-switching tasks: per episode, the switch step, the reward per step before and after it, the
    steps to adapt (``None``: never), the oracle's mean after-switch rate and, where the task pays a
    survival bonus, that bonus per step (``None``: no such bonus)."""

    _sequences: ClassVar[tuple[str, ...]] = ("goal_switch_steps", "reward_rates_before", "reward_rates_after",
                                             "time_to_adapt", "survival_per_step", "goal_term_rates_before",
                                             "goal_term_rates_after")
    _optional: ClassVar[tuple[str, ...]] = ("survival_per_step", "goal_term_rates_before", "goal_term_rates_after")
    goal_switch_steps: tuple[int, ...]
    reward_rates_before: tuple[float | None, ...]
    reward_rates_after: tuple[float | None, ...]
    time_to_adapt: tuple[float | None, ...]
    oracle_reward_rate_after: float | None
    survival_per_step: tuple[float, ...] | None = None
    goal_term_rates_before: tuple[float | None, ...] | None = None
    """the goal term of the reward (``info["reward_forward"]``) per step before the switch; ``None``: the task
    reports no such term"""
    goal_term_rates_after: tuple[float | None, ...] | None = None

    def items(self) -> list[tuple[str, Any]]:
        """As the JSON has them: ``survival_per_step`` only on tasks with a survival bonus, the goal term's
        rates only on tasks that report it."""
        return [(k, v) for k, v in super().items() if k not in self._optional or v is not None]


@dataclass(frozen=True)
class ConditionSummary:
    """One agent under one condition over the paired episodes: mean return with its bootstrap interval,
    retained fraction (condition mean / nominal mean, paired interval), episode lengths, invalid
    episodes, time to recover from a mid-episode switch, and the per-episode returns (``None``: an
    invalid episode, left out of every statistic)."""

    agent: str
    condition: str
    family: str | None
    severity: str | None
    perturbation: Any
    mid_episode: bool
    switch_step: int | None
    mean_return: float | None
    ci_low: float | None
    ci_high: float | None
    std_return: float | None
    retained: float | None
    retained_low: float | None
    retained_high: float | None
    mean_length: float | None
    invalid_episodes: int
    time_to_recover: int | None
    returns: tuple[float | None, ...] | None
    invalid: tuple[bool, ...] | None
    after_switch: AfterSwitch | None = None
    beyond_survival: BeyondSurvival | None = None
    goal_switch: GoalSwitch | None = None

    _GROUPS: ClassVar[tuple[tuple[str, type[_Group]], ...]] = (
        ("after_switch", AfterSwitch), ("beyond_survival", BeyondSurvival), ("goal_switch", GoalSwitch))
    _CORE: ClassVar[tuple[str, ...]] = (
        "agent", "condition", "family", "severity", "perturbation", "mid_episode", "switch_step", "mean_return",
        "ci_low", "ci_high", "std_return", "retained", "retained_low", "retained_high", "mean_length",
        "invalid_episodes", "time_to_recover", "returns", "invalid")

    @property
    def retained_beyond_survival(self) -> float | None:
        """The retained fraction of the return beyond the survival bonus (``None``: no bonus, or undefined)."""
        return self.beyond_survival.retained_beyond_survival if self.beyond_survival is not None else None

    @property
    def mean_return_beyond_survival(self) -> float | None:
        """The mean return beyond the survival bonus (``None``: no bonus, or no valid episode)."""
        return self.beyond_survival.mean_return_beyond_survival if self.beyond_survival is not None else None

    def value(self, key: str) -> Any:
        """The value of JSON key ``key`` (``None`` when the row has no such part): for tables over columns."""
        if key in self._CORE:
            return getattr(self, key)
        for name, group in self._GROUPS:
            if key in group.keys():
                part = getattr(self, name)
                return None if part is None else getattr(part, key)
        raise KeyError(key)

    def to_json(self) -> dict[str, Any]:
        """The row as ``eval.json`` holds it."""
        out = {k: _plain(getattr(self, k)) for k in self._CORE}
        for name, _ in self._GROUPS:
            part = getattr(self, name)
            if part is not None:
                out.update(part.items())
        return out

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> ConditionSummary:
        """A row of ``eval.json`` (missing keys read as ``None``; ``family`` from the condition's name)."""
        condition = row["condition"]
        return cls(
            agent=row["agent"], condition=condition, family=row.get("family", condition.split("@", 1)[0]),
            severity=row.get("severity"), perturbation=row.get("perturbation"),
            mid_episode=bool(row.get("mid_episode", False)), switch_step=row.get("switch_step"),
            mean_return=row.get("mean_return"), ci_low=row.get("ci_low"), ci_high=row.get("ci_high"),
            std_return=row.get("std_return"), retained=row.get("retained"), retained_low=row.get("retained_low"),
            retained_high=row.get("retained_high"), mean_length=row.get("mean_length"),
            invalid_episodes=int(row.get("invalid_episodes") or 0), time_to_recover=row.get("time_to_recover"),
            returns=_tuple(row.get("returns")), invalid=_tuple(row.get("invalid")),
            **{name: group.read(row) if group.present_in(row) else None for name, group in cls._GROUPS})


@dataclass(frozen=True)
class ConditionCurve:
    """Reward per step in windows around one agent's mid-episode switch (the adaptation curve):
    ``offsets[k]`` is window k's first step relative to the switch, ``reward[k]`` its mean reward per
    step over the episodes still running at the switch; time to recover (``None``: never)."""

    agent: str
    condition: str
    switch_step: int
    window: int
    offsets: tuple[int, ...]
    reward: tuple[float | None, ...]
    pre_switch_reward: float | None
    time_to_recover: int | None
    episodes_used: int

    def to_json(self) -> dict[str, Any]:
        """The curve as ``eval.json`` holds it."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConditionCurve:
        """A curve of ``eval.json``."""
        return cls(**{f.name: _tuple(data.get(f.name)) if f.name in ("offsets", "reward") else data.get(f.name)
                      for f in fields(cls)})


@dataclass(frozen=True)
class SwitchDifference(_Group):
    """The paired difference (agent - twin) per step before and after a mid-episode switch."""

    before_switch_per_step: float | None
    before_switch_per_step_low: float | None
    before_switch_per_step_high: float | None
    after_switch_per_step: float | None
    after_switch_per_step_low: float | None
    after_switch_per_step_high: float | None


@dataclass(frozen=True)
class PlasticityEffect:
    """What within-episode learning adds: the paired difference in return, agent minus its frozen twin,
    on one condition (or averaged over the held-out or the mid-episode ones), with its bootstrap
    interval, also as a fraction of the twin's nominal return (``None``: that return is 0)."""

    agent: str
    twin: str
    condition: str
    difference: float | None
    low: float | None
    high: float | None
    of_twin_nominal: float | None
    of_twin_nominal_low: float | None
    of_twin_nominal_high: float | None
    around_switch: SwitchDifference | None = None

    _CORE: ClassVar[tuple[str, ...]] = ("agent", "twin", "condition", "difference", "low", "high", "of_twin_nominal",
                                        "of_twin_nominal_low", "of_twin_nominal_high")

    def to_json(self) -> dict[str, Any]:
        """The entry as ``eval.json`` holds it."""
        out = {k: getattr(self, k) for k in self._CORE}
        if self.around_switch is not None:
            out.update(self.around_switch.items())
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlasticityEffect:
        """An entry of ``eval.json``'s ``plasticity_effect``."""
        return cls(**{k: data.get(k) for k in cls._CORE},
                   around_switch=SwitchDifference.read(data) if SwitchDifference.present_in(data) else None)

    @classmethod
    def derive(cls, entries: Sequence[Mapping[str, Any]]) -> tuple[PlasticityEffect, ...]:
        """Entries as :func:`~plasticrl.eval.plasticity_effect.plasticity_effect` computes them, typed
        (non-finite numbers as ``None``, as ``eval.json`` holds them)."""
        return tuple(cls.from_json(e) for e in json_safe(list(entries)))


@dataclass(frozen=True)
class RatesBeyondSurvival(_Group):
    """Goal adaptation of the rates less the survival bonus per step (tasks that pay one)."""

    reward_rate_before: float | None
    reward_rate_after: float | None
    adaptation_ratio: float | None
    adaptation_ratio_low: float | None
    adaptation_ratio_high: float | None


@dataclass(frozen=True)
class GoalTermRates(RatesBeyondSurvival):
    """Goal adaptation of the goal term of the reward alone (``info["reward_forward"]``: on AntDir and
    HalfCheetahDir the velocity toward the goal times ``forward_reward_weight``), without the survival bonus
    and the control and contact costs."""


@dataclass(frozen=True)
class TwinAfterSwitch(_Group):
    """The paired after-switch reward rate of an agent minus its frozen twin's, with its interval."""

    twin: str
    after_minus_twin: float | None
    after_minus_twin_low: float | None
    after_minus_twin_high: float | None


@dataclass(frozen=True)
class GoalAdaptation:
    """One agent's adaptation to the goal switch under one condition: reward per step before and after,
    the paired adaptation ratio against the oracle, time to adapt (median over the episodes that
    adapt) and the share that adapt (see :mod:`plasticrl.eval.goal_adaptation`)."""

    agent: str
    episodes_with_switch: int
    reward_rate_before: float | None
    reward_rate_after: float | None
    after_over_before: float | None
    adaptation_ratio: float | None
    adaptation_ratio_low: float | None
    adaptation_ratio_high: float | None
    time_to_adapt_median: float | None
    adapted_fraction: float | None
    beyond_survival: RatesBeyondSurvival | None
    condition: str
    is_oracle: bool
    twin_difference: TwinAfterSwitch | None = None
    goal_term: GoalTermRates | None = None

    _HEAD: ClassVar[tuple[str, ...]] = (
        "agent", "episodes_with_switch", "reward_rate_before", "reward_rate_after", "after_over_before",
        "adaptation_ratio", "adaptation_ratio_low", "adaptation_ratio_high", "time_to_adapt_median",
        "adapted_fraction")

    def to_json(self) -> dict[str, Any]:
        """The entry as ``eval.json`` holds it."""
        out = {k: getattr(self, k) for k in self._HEAD}
        if self.beyond_survival is not None:
            out["beyond_survival"] = dict(self.beyond_survival.items())
        if self.goal_term is not None:
            out["goal_term"] = dict(self.goal_term.items())
        out["condition"], out["is_oracle"] = self.condition, self.is_oracle
        if self.twin_difference is not None:
            out.update(self.twin_difference.items())
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GoalAdaptation:
        """An entry of ``eval.json``'s ``goal_adaptation``."""
        beyond, term = data.get("beyond_survival"), data.get("goal_term")
        return cls(**{k: data.get(k) for k in cls._HEAD},
                   beyond_survival=RatesBeyondSurvival.read(beyond) if beyond is not None else None,
                   condition=data["condition"], is_oracle=bool(data.get("is_oracle", False)),
                   twin_difference=TwinAfterSwitch.read(data) if TwinAfterSwitch.present_in(data) else None,
                   goal_term=GoalTermRates.read(term) if term is not None else None)

    @classmethod
    def derive(cls, entries: Sequence[Mapping[str, Any]]) -> tuple[GoalAdaptation, ...]:
        """Entries as :func:`~plasticrl.eval.evaluate.goal_adaptation` computes them, typed (non-finite
        numbers as ``None``, as ``eval.json`` holds them)."""
        return tuple(cls.from_json(e) for e in json_safe(list(entries)))


class _NotRecorded:
    """The value of a header field the result does not record (absent from its JSON, unlike ``None``)."""

    def __repr__(self) -> str:
        return "NOT_RECORDED"

    def __reduce__(self) -> str:
        return "NOT_RECORDED"


#: ``EvaluationResult.obs_std_floor`` of a result that does not record one (``evaluate()`` alone, the demo)
NOT_RECORDED = _NotRecorded()


@dataclass(frozen=True)
class EvaluationResult:
    """Agents x conditions x paired episodes, summarised (see :mod:`plasticrl.eval.evaluate`).

    ``agents`` and ``conditions`` are in evaluation order (the oracle first, nominal first);
    ``rows`` hold one :class:`ConditionSummary` per agent and condition, agent by agent;
    ``reference_conditions`` are evaluated for reference and left out of every held-out mean;
    ``obs_std_floor`` is :data:`NOT_RECORDED` unless the evaluation of agent files recorded it."""

    format: int
    kind: str
    env_id: str
    env_kwargs: dict[str, Any]
    suite: str
    episodes: int
    seed: int
    confidence: float
    window: int
    agents: tuple[str, ...]
    conditions: tuple[str, ...]
    rows: tuple[ConditionSummary, ...]
    curves: tuple[ConditionCurve, ...] = ()
    reference_conditions: tuple[str, ...] = ()
    oracle: str | None = None
    plasticity_effect: tuple[PlasticityEffect, ...] = ()
    goal_adaptation: tuple[GoalAdaptation, ...] = ()
    obs_std_floor: float | None | _NotRecorded = NOT_RECORDED

    def rows_of(self, agent: str) -> list[ConditionSummary]:
        """The rows of ``agent``, in condition order."""
        return [r for r in self.rows if r.agent == agent]

    @cached_property
    def _row_index(self) -> dict[tuple[str, str], ConditionSummary]:
        # built once per result (the rows never change); the first row of a pair wins, as a scan would
        index: dict[tuple[str, str], ConditionSummary] = {}
        for r in self.rows:
            index.setdefault((r.agent, r.condition), r)
        return index

    def row(self, agent: str, condition: str) -> ConditionSummary:
        """The row of ``agent`` under ``condition`` (``KeyError`` when there is none)."""
        try:
            return self._row_index[(agent, condition)]
        except KeyError:
            raise KeyError((agent, condition)) from None

    def has_row(self, agent: str, condition: str) -> bool:
        """Whether ``agent`` was evaluated under ``condition``."""
        return (agent, condition) in self._row_index

    @property
    def held_out_conditions(self) -> list[str]:
        """The conditions the held-out means average over: all but nominal and the reference conditions."""
        from plasticrl.eval.plasticity_effect import held_out_conditions

        return held_out_conditions(self)

    @property
    def has_beyond_survival(self) -> bool:
        """Whether the rows hold retained fractions of the return beyond the survival bonus."""
        return any(r.retained_beyond_survival is not None for r in self.rows)

    @property
    def recorded_obs_std_floor(self) -> float | None:
        """The observation std floor the evaluation replaced every plasticrl agent's with (``None``: none,
        or not recorded)."""
        return None if isinstance(self.obs_std_floor, _NotRecorded) else self.obs_std_floor

    def replace(self, **changes: Any) -> EvaluationResult:
        """A copy with ``changes`` (e.g. ``obs_std_floor``)."""
        import dataclasses

        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The ``eval.json`` dict: strict JSON (non-finite numbers as ``None``), the keys in the order
        plasticrl has always written them."""
        out: dict[str, Any] = {
            "format": self.format, "kind": self.kind, "env_id": self.env_id, "env_kwargs": self.env_kwargs,
            "suite": self.suite, "episodes": self.episodes, "seed": self.seed, "confidence": self.confidence,
            "window": self.window, "agents": list(self.agents), "conditions": list(self.conditions),
            "rows": [r.to_json() for r in self.rows], "curves": [c.to_json() for c in self.curves],
            "reference_conditions": list(self.reference_conditions)}
        if self.oracle is not None:
            out["oracle"] = self.oracle
        out["plasticity_effect"] = [e.to_json() for e in self.plasticity_effect]
        out["goal_adaptation"] = [e.to_json() for e in self.goal_adaptation]
        if not isinstance(self.obs_std_floor, _NotRecorded):
            out["obs_std_floor"] = self.obs_std_floor
        return json_safe(out)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvaluationResult:
        """A result from its ``eval.json`` dict. Non-finite numbers read as ``None``; a result without
        ``plasticity_effect`` (assembled by hand) gets it derived from its rows."""
        from plasticrl.eval.plasticity_effect import plasticity_effect

        data = json_safe(dict(data))  # a copy: the defaults below do not change the caller's dict
        for key in ("agents", "conditions", "rows"):
            data[key] = data.get(key) or []
        result = cls(
            format=data.get("format", RESULT_FORMAT), kind=data.get("kind", RESULT_KIND),
            env_id=data.get("env_id", ""), env_kwargs=dict(data.get("env_kwargs") or {}),
            suite=data.get("suite", ""), episodes=int(data.get("episodes", 0)), seed=int(data.get("seed", 0)),
            confidence=data.get("confidence", CONFIDENCE), window=int(data.get("window", DEFAULT_WINDOW)),
            agents=tuple(data["agents"]), conditions=tuple(data["conditions"]),
            rows=tuple(ConditionSummary.from_json(r) for r in data["rows"]),
            curves=tuple(ConditionCurve.from_json(c) for c in data.get("curves") or ()),
            reference_conditions=tuple(data.get("reference_conditions") or ()), oracle=data.get("oracle"),
            plasticity_effect=tuple(PlasticityEffect.from_json(e) for e in data.get("plasticity_effect") or ()),
            goal_adaptation=tuple(GoalAdaptation.from_json(e) for e in data.get("goal_adaptation") or ()),
            obs_std_floor=data["obs_std_floor"] if "obs_std_floor" in data else NOT_RECORDED)
        if "plasticity_effect" not in data:
            result = result.replace(plasticity_effect=PlasticityEffect.derive(plasticity_effect(result)))
        return result


def as_result(result: EvaluationResult | Mapping[str, Any]) -> EvaluationResult:
    """``result`` as an :class:`EvaluationResult` (an ``eval.json`` dict is read with
    :meth:`EvaluationResult.from_json`)."""
    return result if isinstance(result, EvaluationResult) else EvaluationResult.from_json(result)
