"""Report files from an evaluation result: ``eval.json``, ``eval.csv``, ``curves.csv``, ``report.md``.

Everything is derived from the :class:`~plasticrl.eval.result.EvaluationResult` of
:func:`plasticrl.eval.evaluate.evaluate` (``eval.json`` is its ``to_json()``), so ``plasticrl report`` can
rebuild the same files (and the plots) from a saved ``eval.json``. The writers also take an
``eval.json`` dict (read with :meth:`~plasticrl.eval.result.EvaluationResult.from_json`).
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from plasticrl.errors import PlasticRLError
from plasticrl.eval.adaptation import QUICK_RECOVERY_STEPS
from plasticrl.eval.evaluate import with_derived
from plasticrl.eval.plasticity_effect import HELD_OUT, SWITCHED
from plasticrl.eval.result import (
    ConditionSummary,
    EvaluationResult,
    GoalAdaptation,
    PlasticityEffect,
    RatesBeyondSurvival,
    as_result,
)
from plasticrl.eval.stats import bootstrap_mean_over_conditions, bootstrap_mean_retained
from plasticrl.io import atomic_write_json

#: an evaluation result, typed or as its ``eval.json`` dict
Result = EvaluationResult | dict[str, Any]

RESULT_FILE = "eval.json"
CSV_COLUMNS = ("agent", "condition", "family", "severity", "mid_episode", "switch_step", "mean_return",
               "ci_low", "ci_high", "std_return", "retained", "retained_low", "retained_high",
               "mean_length", "invalid_episodes", "time_to_recover", "mean_survival_bonus",
               "mean_return_beyond_survival", "beyond_survival_ci_low", "beyond_survival_ci_high",
               "retained_beyond_survival", "retained_beyond_survival_low", "retained_beyond_survival_high")
CURVE_COLUMNS = ("agent", "condition", "offset", "reward", "pre_switch_reward", "time_to_recover")


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e6 else f"{v:.3g}"
    return str(v)


def invalid_episode_warnings(result: Result) -> list[str]:
    """One sentence per agent with invalid episodes (non-finite controller, observations or rewards,
    or unstable physics): how many, in which conditions. Empty when every episode was valid."""
    result = as_result(result)
    out = []
    for agent in result.agents:
        rows = [r for r in result.rows_of(agent) if r.invalid_episodes]
        if rows:
            total = sum(r.invalid_episodes for r in rows)
            of = len(result.conditions) * result.episodes
            where = ", ".join(f"{r.condition} ({r.invalid_episodes})" for r in rows)
            out.append(f"{agent}: {total} of {of} episodes invalid (non-finite controller, observations or "
                       f"rewards, or unstable physics), left out of its statistics: {where}")
    return out


def invalid_episode_lines(result: Result) -> list[str]:
    """The report's warning section on invalid episodes (none when every episode was valid)."""
    warnings = invalid_episode_warnings(result)
    if not warnings:
        return []
    return ["## Warning: invalid episodes", "", *[f"- **{w}**" for w in warnings], ""]


def load_result(path: str | Path) -> EvaluationResult:
    """Read an ``eval.json`` (or the one inside a directory) and check it is an evaluation result."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULT_FILE
    if not path.is_file():
        raise PlasticRLError(f"no evaluation result at {str(path)!r} (expected {RESULT_FILE})")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlasticRLError(f"{str(path)!r} is not a plasticrl evaluation result (not JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("kind") != "plasticrl-eval":
        kind = data.get("kind") if isinstance(data, dict) else None
        raise PlasticRLError(f"{str(path)!r} is not a plasticrl evaluation result (kind={kind!r})")
    # Derived from the rows: re-derived on reading, so a result saved by an older version (without it,
    # or without the before/after-switch split) is reported like a fresh one.
    data["plasticity_effect"] = []  # not derived twice: with_derived derives it
    return with_derived(EvaluationResult.from_json(data))


def _finite(v: Any) -> bool:
    return v is not None and math.isfinite(v)


def _finite_mean(values) -> float:
    """Mean of the finite values (NaN when there are none)."""
    kept = [v for v in values if _finite(v)]
    return sum(kept) / len(kept) if kept else math.nan


def _mean_retained(nominal: ConditionSummary, others: list[ConditionSummary], key: str,
                   result: EvaluationResult) -> str:
    """``key`` ("retained" or "retained_beyond_survival") averaged over the conditions where it is
    finite, with its interval when the rows carry their episodes (results from before the
    per-episode survival bonus was kept give the mean alone)."""
    kept = [r for r in others if _finite(r.value(key))]
    if not kept:
        return "-"

    def episodes(row: ConditionSummary):
        if key == "retained":
            return row.returns
        bonus = row.beyond_survival.survival_bonus if row.beyond_survival is not None else None
        if row.returns is None or bonus is None:
            return None
        return [a - b for a, b in zip(row.returns, bonus)]

    samples = [episodes(r) for r in [nominal] + kept]
    if any(x is None or None in x for x in samples):
        return _num(_finite_mean(r.value(key) for r in kept))
    iv = bootstrap_mean_retained(samples[1:], samples[0], result.confidence, seed=result.seed)
    return f"{_num(iv.estimate)} [{_num(iv.low)}, {_num(iv.high)}]"


def _mean_held_out_return(others: list[ConditionSummary], result: EvaluationResult) -> str:
    """The return averaged over the held-out conditions: what the agent earns under them, in the
    task's units (a retained fraction rewards a slow gait as much as a sturdy one). The interval
    resamples episode indices, each episode's return averaged over the conditions (they share its seed)."""
    if not others:
        return "-"
    samples = [r.returns for r in others]
    if any(x is None or None in x for x in samples):  # null: an invalid episode, left out of the means
        return _num(_finite_mean(r.mean_return for r in others), 1)
    iv = bootstrap_mean_over_conditions(samples, result.confidence, seed=result.seed)
    return f"{_num(iv.estimate, 1)} [{_num(iv.low, 1)}, {_num(iv.high, 1)}]"


def rows_csv(result: Result) -> str:
    """``eval.csv``: one line per agent and condition, the columns :data:`CSV_COLUMNS` (empty: none)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in as_result(result).rows:
        writer.writerow({k: ("" if row.value(k) is None else row.value(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


def curves_csv(result: Result) -> str:
    """``curves.csv``: one line per window of every adaptation curve."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CURVE_COLUMNS)
    for c in as_result(result).curves:
        for off, rew in zip(c.offsets, c.reward):
            writer.writerow([c.agent, c.condition, off, rew, c.pre_switch_reward,
                             "" if c.time_to_recover is None else c.time_to_recover])
    return buf.getvalue()


def markdown(result: Result, images: list[str] | None = None) -> str:
    """The Markdown report: summary per agent, then one table per agent with every condition."""
    result = as_result(result)
    conf = int(round(100 * result.confidence))
    lines = [f"# Robustness report: {result.env_id}, suite `{result.suite}`", "",
             f"{result.episodes} paired episodes per condition (seeds {result.seed}.."
             f"{result.seed + result.episodes - 1}, identical across conditions); {conf}% percentile "
             f"bootstrap intervals; retained = condition mean / nominal mean (meaningful when the nominal return is "
             "positive).", ""]
    if result.recorded_obs_std_floor is not None:
        lines += [f"Observation std floor: {result.recorded_obs_std_floor:g} (raw units) for every plasticrl agent, "
                  "replacing the floor each was trained with (`--obs-std-floor`).", ""]
    # the return beyond the bonus is shown whenever the task pays one, also when no retained fraction of it
    # is defined (every agent's nominal return beyond the bonus <= 0: agents that stand still)
    survival = result.has_beyond_survival or any(r.mean_return_beyond_survival is not None for r in result.rows)
    if survival:
        lines += ["Beyond survival: the same figures for the return minus the task's bonus for staying healthy "
                  "(`reward_survive`); an agent that never falls keeps all of that bonus under any damage, so "
                  "this is the part of the return its gait earns.", ""]
    extra_head, extra_rule = (f" mean retained beyond survival [{conf}% CI] |", " --- |") if survival else ("", "")
    lines += invalid_episode_lines(result)
    reference = result.reference_conditions
    lines += ["## Summary", "", "Mean return and mean retained (held-out): the mean over held-out conditions, its "
              "interval from resampling episodes jointly across conditions."
              + (f" Evaluated for reference and left out of these means (the agents trained on them): "
                 f"{', '.join(reference)}." if reference else ""), "",
              f"| agent | nominal return | mean return (held-out) [{conf}% CI] | mean retained (held-out) "
              f"[{conf}% CI] | worst condition | worst retained |{extra_head}",
              f"| --- | ---: | --- | --- | --- | ---: |{extra_rule}"]
    for agent in result.agents:
        rows = result.rows_of(agent)
        nominal = next(r for r in rows if r.condition == "nominal")
        held_out = set(result.held_out_conditions)
        others = [r for r in rows if r.condition in held_out]
        mean_ret = _mean_retained(nominal, others, "retained", result)
        ranked = [r for r in others if _finite(r.retained)]
        worst = min(ranked, key=lambda r: r.retained) if ranked else None
        extra = f" {_mean_retained(nominal, others, 'retained_beyond_survival', result)} |" if survival else ""
        lines.append(f"| {agent} | {_num(nominal.mean_return, 1)} | {_mean_held_out_return(others, result)} | "
                     f"{mean_ret} | "
                     f"{worst.condition if worst else '-'} | {_num(worst.retained) if worst else '-'} |{extra}")
    for agent in result.agents:
        extra_head, extra_rule = ((f" return beyond survival | retained beyond survival | {conf}% CI |",
                                   " ---: | ---: | --- |") if survival else ("", ""))
        lines += ["", f"## {agent}", "", f"| condition | mean return | {conf}% CI | retained | {conf}% CI | "
                  f"mean length | time to recover |{extra_head}",
                  f"| --- | ---: | --- | ---: | --- | ---: | ---: |{extra_rule}"]
        for r in result.rows_of(agent):
            ttr = "-" if not r.mid_episode else (_num(r.time_to_recover) if r.time_to_recover is not None
                                                 else "never")
            extra = (f" {_num(r.mean_return_beyond_survival, 1)} | {_num(r.retained_beyond_survival)} | "
                     f"[{_num(r.value('retained_beyond_survival_low'))}, "
                     f"{_num(r.value('retained_beyond_survival_high'))}] |" if survival else "")
            lines.append(f"| {r.condition} | {_num(r.mean_return, 1)} | [{_num(r.ci_low, 1)}, "
                         f"{_num(r.ci_high, 1)}] | {_num(r.retained)} | [{_num(r.retained_low)}, "
                         f"{_num(r.retained_high)}] | {_num(r.mean_length, 1)} | {ttr} |{extra}")
    lines += _plasticity_effect_lines(result, conf)
    lines += _goal_adaptation_lines(result, conf)
    lines += _conditions_lines(result)
    if result.curves:
        lines += ["", "## Mid-episode switches", "", f"Reward per step in windows of {result.window} steps; "
                  "time to recover = steps after the switch until the window from which every window stays at or "
                  "above 80% of the pre-switch reward (`never`: not within the episode), of the mean curve; "
                  f"recovered within {QUICK_RECOVERY_STEPS}: the episodes whose own mean reward over the rest of the "
                  f"episode reaches 80% of their own pre-switch rate from a window starting within "
                  f"{QUICK_RECOVERY_STEPS} steps of the switch, of the valid ones.", "",
                  "| agent | condition | switch step | pre-switch reward/step | time to recover | "
                  f"recovered within {QUICK_RECOVERY_STEPS} steps (episodes) |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for c in result.curves:
            ttr = "never" if c.time_to_recover is None else str(c.time_to_recover)
            row = result.row(c.agent, c.condition) if result.has_row(c.agent, c.condition) else None
            quick = row.after_switch.recovered_within(QUICK_RECOVERY_STEPS) if row and row.after_switch else None
            quick_text = "-" if quick is None else f"{quick[0]}/{quick[1]}"
            lines.append(f"| {c.agent} | {c.condition} | {c.switch_step} | "
                         f"{_num(c.pre_switch_reward)} | {ttr} | {quick_text} |")
    if images:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in images]
    return "\n".join(lines) + "\n"


def _perturbation_text(spec: Any) -> str:
    """A perturbation spec in a table cell: ``name(param=value, ...)`` per part, ``from step N`` when it
    starts mid-episode."""
    if not spec:
        return "-"
    parts = spec if isinstance(spec, list) else [spec]
    out = []
    for p in parts:
        if not isinstance(p, dict):
            out.append(str(p))
            continue
        params = ", ".join(f"{k}={v}" for k, v in p.items() if k not in ("name", "start_step"))
        start = f" from step {p['start_step']}" if p.get("start_step") else ""
        out.append(f"{p.get('name')}({params}){start}")
    return "; ".join(out)


def _conditions_lines(result: Result) -> list[str]:
    """What each condition is: severity defined, then every condition with its exact perturbation."""
    result = as_result(result)
    seen: dict[str, ConditionSummary] = {}
    for r in result.rows:
        seen.setdefault(r.condition, r)
    if len(seen) <= 1:
        return []
    lines = ["", "## Conditions", "",
             "Severity: each held-out family (the name before `@`) is tested at three strengths of the same "
             "perturbation, `mild` < `moderate` < `severe`, e.g. a limb shortened to 0.75, 0.5 and 0.25 of its "
             "length, or 1, 2 and 3 motors failing; the levels are fixed per family (not calibrated to any agent's "
             "return), so a row compares agents under the same physical change. Conditions applied `from step N` "
             "switch on mid-episode (time to recover, adaptation plot); the others hold from the first step.", "",
             "| condition | severity | perturbation |", "| --- | --- | --- |"]
    for name, r in seen.items():
        lines.append(f"| {name} | {r.severity or '-'} | {_perturbation_text(r.perturbation)} |")
    return lines


def _goal_adaptation_lines(result: EvaluationResult, conf: int) -> list[str]:
    """Goal-switching tasks: reward per step before and after each episode's goal switch, the paired
    adaptation ratio against the oracle and the time to adapt (none on other tasks)."""
    entries = result.goal_adaptation
    if not entries:
        return []
    oracle = result.oracle
    lines = ["", "## Adaptation to the goal switch", "",
             "Reward per step before and after each episode's goal switch (the goal is revealed only through the "
             "reward). Adaptation ratio: the after-switch rate over the oracle's"
             + (f" (`{oracle}`, which observes the goal)" if oracle else " (no oracle evaluated)")
             + f", on the same paired episodes, with a {conf}% bootstrap interval over episode pairs. Time to adapt: "
             "median over the episodes that adapt of the steps from the switch until the 20-step mean reward stays "
             "at or above 80% of the oracle's after-switch rate; `adapted`: the share of episodes that do. "
             "`after - twin`: paired after-switch rate minus the frozen twin's.", "",
             f"| agent | condition | episodes | before | after | after / before | ratio | {conf}% CI | "
             f"time to adapt | adapted | after - twin | {conf}% CI |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |"]
    for e in entries:
        t = e.twin_difference
        twin = (f"{_num(t.after_minus_twin)} | [{_num(t.after_minus_twin_low)}, "
                f"{_num(t.after_minus_twin_high)}]") if t is not None else "- | -"
        lines.append(f"| {e.agent} | {e.condition} | {e.episodes_with_switch} | "
                     f"{_num(e.reward_rate_before)} | {_num(e.reward_rate_after)} | "
                     f"{_num(e.after_over_before)} | {_num(e.adaptation_ratio)} | "
                     f"[{_num(e.adaptation_ratio_low)}, {_num(e.adaptation_ratio_high)}] | "
                     f"{_num(e.time_to_adapt_median, 0)} | {_num(e.adapted_fraction)} | {twin} |")
    lines += _rates_table(conf, [(e, e.beyond_survival) for e in entries if e.beyond_survival is not None],
                          "Beyond the survival bonus: the same rates less each episode's bonus for staying healthy per "
                          "step, i.e. what the gait earns toward the goal (an agent that stands still keeps the whole "
                          "bonus, which can make the plain ratio look good). The ratio is undefined ('-') when the "
                          "oracle's rate beyond survival is not positive.")
    lines += _rates_table(conf, [(e, e.goal_term) for e in entries if e.goal_term is not None],
                          "The goal term alone: the part of each step's reward that depends on the goal "
                          "(`reward_forward`: on AntDir and HalfCheetahDir the velocity toward the goal x "
                          "`forward_reward_weight`, 1 by default; on HalfCheetahVel -|v - target|), without the survival "
                          "bonus and the control and contact costs. The ratio is undefined ('-') when the oracle's rate "
                          "is not positive.")
    return lines


def _rates_table(conf: int, rows: list[tuple[GoalAdaptation, RatesBeyondSurvival]], caption: str) -> list[str]:
    """A variant of the adaptation rates (beyond survival, the goal term): caption and table, none without rows."""
    if not rows:
        return []
    return ["", caption, "", f"| agent | condition | before | after | ratio | {conf}% CI |",
            "| --- | --- | ---: | ---: | ---: | --- |", *[_rates_line(e, rates) for e, rates in rows]]


def _rates_line(e: GoalAdaptation, rates: RatesBeyondSurvival) -> str:
    """One row of the adaptation tables of a variant of the rates (beyond survival, the goal term)."""
    return (f"| {e.agent} | {e.condition} | {_num(rates.reward_rate_before)} | {_num(rates.reward_rate_after)} | "
            f"{_num(rates.adaptation_ratio)} | [{_num(rates.adaptation_ratio_low)}, "
            f"{_num(rates.adaptation_ratio_high)}] |")


def _plasticity_effect_lines(result: EvaluationResult, conf: int) -> list[str]:
    """The section comparing each plastic agent with its frozen twin (none without twins)."""
    effects = result.plasticity_effect
    if not effects:
        return []
    lines = ["", "## What within-episode plasticity adds", "",
             "Paired difference in return, agent minus its frozen twin (the same evolved weights with every "
             "learning rate at 0), episode by episode on the same seeds: what the weights changing during the "
             f"episode add. `{HELD_OUT}`: averaged over the held-out conditions, episodes resampled jointly; "
             f"`{SWITCHED}`: over those switched on during the episode. Also as a fraction of the twin's nominal "
             "return, and for mid-episode conditions per step before and after the switch: a plastic agent that "
             "adapts to the change gains on its twin after the switch.", "",
             f"| agent | condition | difference | {conf}% CI | of twin's nominal | {conf}% CI | "
             "per step before switch | per step after switch |",
             "| --- | --- | ---: | --- | ---: | --- | --- | --- |"]

    def per_step(e: PlasticityEffect, key: str) -> str:
        if e.around_switch is None:
            return "-"
        part = e.around_switch
        return (f"{_num(getattr(part, f'{key}_per_step'))} [{_num(getattr(part, f'{key}_per_step_low'))}, "
                f"{_num(getattr(part, f'{key}_per_step_high'))}]")

    for e in effects:
        bold = "**" if e.condition in (HELD_OUT, SWITCHED) else ""
        lines.append(f"| {e.agent} | {bold}{e.condition}{bold} | {_num(e.difference, 1)} | "
                     f"[{_num(e.low, 1)}, {_num(e.high, 1)}] | {_num(e.of_twin_nominal)} | "
                     f"[{_num(e.of_twin_nominal_low)}, {_num(e.of_twin_nominal_high)}] | "
                     f"{per_step(e, 'before_switch')} | {per_step(e, 'after_switch')} |")
    return lines


def write_reports(result: Result, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write JSON, CSVs, PNGs (when ``plots``) and the Markdown report into ``out_dir``; returns the paths.
    A result dict assembled by hand without ``plasticity_effect`` gets it derived from its rows."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = as_result(result)
    paths = {"json": atomic_write_json(out / RESULT_FILE, result.to_json())}
    paths["csv"] = out / "eval.csv"
    paths["csv"].write_text(rows_csv(result))
    if result.curves:
        paths["curves_csv"] = out / "curves.csv"
        paths["curves_csv"].write_text(curves_csv(result))
    images: list[Path] = []
    if plots:
        from plasticrl.report.plots import draw_all

        images = draw_all(result, out)
        paths.update({p.stem: p for p in images})
    paths["markdown"] = out / "report.md"
    paths["markdown"].write_text(markdown(result, [p.name for p in images]))
    return paths
