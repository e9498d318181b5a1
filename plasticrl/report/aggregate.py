"""Multi-seed aggregation of an evaluation with `rliable <https://github.com/google-research/rliable>`_:
interquartile mean (IQM), mean and median with stratified bootstrap confidence intervals, and performance
profiles, over runs (seeds) x tasks (held-out conditions).

Seeds are found in the agent labels: ``NAME_s<k>``, ``NAME-s<k>``, ``NAME_seed<k>`` (and ``NAME`` itself,
as the seed without a suffix, when ``NAME_seed1``... exist beside it); a frozen twin ``LABEL/frozen``
groups with the twins of the other seeds. A group needs at least two seeds. Scores: each run's mean
return under each held-out condition (the task's own units, comparable within one env), and the
retained fraction (condition / the run's own nominal). A (run, condition) cell whose score is not finite
removes that condition from its group's aggregate; removed conditions are counted and named, never
averaged over. Every two groups are also compared: rliable's probability of improvement, and their
difference paired by seed. rliable is an optional dependency: ``pip install "plasticrl[stats]"``.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from plasticrl.errors import PlasticRLError
from plasticrl.eval.result import EvaluationResult, as_result

SEED_PATTERN = re.compile(r"^(?P<base>.+?)[_-](?:s|seed)(?P<seed>\d+)$")
SCORES = {"return": "mean return under the condition", "retained": "retained fraction (condition / own nominal)"}
REPS = 2000  # bootstrap resamples: intervals stable to about 0.01 of their width on a few seeds x tasks


def seed_groups(agents: list[str]) -> dict[str, list[str]]:
    """Group agent labels by seed suffix; only groups of two or more seeds, in seed order."""
    found: dict[str, list[tuple[int, str]]] = {}
    for label in agents:
        head, slash, tail = label.partition("/")
        m = SEED_PATTERN.match(head)
        if m:
            found.setdefault(m["base"] + slash + tail, []).append((int(m["seed"]), label))
    for label in agents:  # NAME beside NAME_seed1, ...: the unsuffixed seed
        if label in found and label not in {lab for _, lab in found[label]}:
            found[label].append((-1, label))
    return {base: [lab for _, lab in sorted(members)] for base, members in sorted(found.items())
            if len(members) >= 2}


def score_matrix(result: EvaluationResult | dict[str, Any], labels: list[str],
                 score: str) -> tuple[np.ndarray, list[str], list[str]]:
    """``[runs, conditions]`` scores of ``labels`` over the held-out conditions they all have, the kept
    condition names, and the names removed because some run's score there is not finite."""
    result = as_result(result)
    conds = [c for c in result.held_out_conditions if all(result.has_row(lab, c) for lab in labels)]

    def value(label: str, cond: str) -> float:
        row = result.row(label, cond)
        v = row.mean_return if score == "return" else row.retained
        return math.nan if v is None else float(v)

    full = np.array([[value(lab, c) for c in conds] for lab in labels], dtype=float).reshape(len(labels), len(conds))
    keep = np.isfinite(full).all(axis=0)
    return full[:, keep], [c for c, k in zip(conds, keep) if k], [c for c, k in zip(conds, keep) if not k]


def _rliable():
    try:
        from rliable import library, metrics
    except ImportError as exc:
        raise PlasticRLError("multi-seed aggregation needs rliable: pip install \"plasticrl[stats]\" "
                             f"({type(exc).__name__}: {exc})") from None
    return library, metrics


def _estimates(library: Any, matrices: dict[str, np.ndarray], func: Any, confidence: float,
               seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """rliable's stratified bootstrap (runs resampled within each condition), seeded: the same report
    every time it is rebuilt."""
    import warnings

    with warnings.catch_warnings():
        # arch (under rliable) deprecates RandomState seeding; rliable 1.2 offers no other way to seed
        warnings.simplefilter("ignore", FutureWarning)
        return library.get_interval_estimates(matrices, func, reps=REPS, confidence_interval_size=confidence,
                                              random_state=np.random.RandomState(seed))


def aggregate(result: EvaluationResult | dict[str, Any], confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Per seed group and score: IQM, mean and median with stratified bootstrap intervals (rliable), and
    the performance profile (fraction of run x condition scores above each threshold, with intervals);
    per two groups and score (``pairs``): the probability of improvement and the seed-paired difference."""
    library, metrics = _rliable()
    result = as_result(result)
    groups = seed_groups(list(result.agents))
    out: dict[str, Any] = {"confidence": confidence, "reps": REPS, "seed": seed, "groups": {}, "profiles": {}}
    for score in SCORES:
        matrices = {}
        for base, labels in groups.items():
            scores, kept, removed = score_matrix(result, labels, score)
            entry = out["groups"].setdefault(base, {"runs": labels})
            entry[score] = {"conditions": len(kept), "removed_conditions": removed}
            if scores.size:
                matrices[base] = scores
        if not matrices:
            continue

        def summary(x: np.ndarray) -> np.ndarray:
            return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_median(x)])

        points, intervals = _estimates(library, matrices, summary, confidence, seed)
        for base in matrices:
            for k, name in enumerate(("iqm", "mean", "median")):
                out["groups"][base][score][name] = float(points[base][k])
                out["groups"][base][score][f"{name}_low"] = float(intervals[base][0, k])
                out["groups"][base][score][f"{name}_high"] = float(intervals[base][1, k])
        out.setdefault("pairs", {})[score] = _pairs(library, metrics, result, groups, score, confidence, seed)
        pooled = np.concatenate([m.ravel() for m in matrices.values()])
        taus = np.linspace(pooled.min(), pooled.max(), 41)
        profile = lambda x: (x.reshape(-1, 1) > taus).mean(axis=0)  # noqa: E731 - the score distribution
        prof, prof_ci = _estimates(library, matrices, profile, confidence, seed)
        out["profiles"][score] = {"taus": taus.tolist(), "groups": {
            b: {"fraction": prof[b].tolist(), "low": prof_ci[b][0].tolist(), "high": prof_ci[b][1].tolist()}
            for b in matrices}}
    return out


def _seed_of(label: str) -> int:
    """The seed in a label's suffix (``NAME_s3`` -> 3; the unsuffixed ``NAME`` beside ``NAME_seed1`` -> -1)."""
    m = SEED_PATTERN.match(label.partition("/")[0])
    return int(m["seed"]) if m else -1


def _pairs(library: Any, metrics: Any, result: EvaluationResult, groups: dict[str, list[str]], score: str,
           confidence: float, seed: int) -> list[dict[str, Any]]:
    """Every two seed groups compared on the conditions where all their runs' scores are finite: rliable's
    probability of improvement P(x > y) (per condition, over run pairs, averaged over conditions; ties
    count a half) with its stratified bootstrap interval, and the difference paired by seed (the mean over
    those conditions of run ``x_s<k>`` minus that of ``y_s<k>``, for the seeds both have) with a bootstrap
    interval over seeds."""
    from plasticrl.eval.stats import bootstrap_mean

    names = list(groups)
    pairs = []
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            lx, ly = groups[x], groups[y]
            scores, kept, _ = score_matrix(result, lx + ly, score)
            entry: dict[str, Any] = {"x": x, "y": y, "conditions": len(kept)}
            if kept:
                sx, sy = scores[:len(lx)], scores[len(lx):]
                point, interval = _estimates(library, {"pair": (sx, sy)}, metrics.probability_of_improvement,
                                             confidence, seed)
                entry.update(probability_of_improvement=float(point["pair"]),
                             probability_of_improvement_low=float(np.ravel(interval["pair"])[0]),
                             probability_of_improvement_high=float(np.ravel(interval["pair"])[1]))
                by_seed_x = {_seed_of(lab): row.mean() for lab, row in zip(lx, sx)}
                by_seed_y = {_seed_of(lab): row.mean() for lab, row in zip(ly, sy)}
                common = sorted(set(by_seed_x) & set(by_seed_y))
                diff = bootstrap_mean([by_seed_x[k] - by_seed_y[k] for k in common], confidence, seed=seed)
                entry.update(paired_seeds=common, paired_difference=diff.estimate,
                             paired_difference_low=diff.low, paired_difference_high=diff.high)
            pairs.append(entry)
    return pairs


def profile_plot(agg: dict[str, Any], path: Path, env_id: str) -> Path | None:
    """Performance profiles, one panel per score: fraction of (run, condition) scores above tau."""
    from plasticrl.report.plots import pyplot

    scores = [s for s in SCORES if s in agg["profiles"]]
    if not scores:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(scores), figsize=(4.6 * len(scores), 3.6), squeeze=False, layout="constrained")
    for ax, score in zip(axes.flat, scores):
        p = agg["profiles"][score]
        for base, g in p["groups"].items():
            n = len(agg["groups"][base]["runs"])
            line, = ax.plot(p["taus"], g["fraction"], label=f"{base} ({n} seeds)")
            ax.fill_between(p["taus"], g["low"], g["high"], color=line.get_color(), alpha=0.2)
        ax.set_xlabel(f"threshold tau on the {SCORES[score]}", fontsize=8)
        ax.set_ylabel("fraction of runs x conditions above tau", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    conf = int(round(100 * agg["confidence"]))
    fig.suptitle(f"{env_id}: performance profiles over held-out conditions ({conf}% stratified bootstrap bands)",
                 fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown(agg: dict[str, Any], image: str | None = None) -> str:
    """The ``seeds.md`` report: one table per score, a row per seed group."""
    conf = int(round(100 * agg["confidence"]))

    def num(v: Any) -> str:
        return "-" if v is None or not math.isfinite(v) else (f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}")

    lines = ["# Across seeds", "",
             "Runs of one setting that differ only in their seed (labels `NAME_s<k>` / `NAME_seed<k>`), aggregated "
             f"over runs x held-out conditions with rliable: interquartile mean (IQM: the mean of the middle 50% of "
             f"all run x condition scores, robust to one outlying run), mean, and median (over conditions, of each "
             f"condition's mean over runs), each with a {conf}% stratified bootstrap "
             f"interval ({agg['reps']} resamples of runs within each condition). Conditions where any run's score is "
             "not finite are removed from that group and named.", ""]
    for score, what in SCORES.items():
        rows = [(b, g) for b, g in agg["groups"].items() if "iqm" in g.get(score, {})]
        if not rows:
            continue
        lines += [f"## Score: {what}", "",
                  f"| setting | seeds | conditions | IQM [{conf}% CI] | mean [{conf}% CI] | median [{conf}% CI] | removed |",
                  "| --- | ---: | ---: | --- | --- | --- | --- |"]
        for base, g in rows:
            s = g[score]
            cells = [f"{num(s[k])} [{num(s[k + '_low'])}, {num(s[k + '_high'])}]" for k in ("iqm", "mean", "median")]
            removed = ", ".join(s["removed_conditions"]) or "-"
            lines.append(f"| {base} | {len(g['runs'])} | {s['conditions']} | {' | '.join(cells)} | {removed} |")
        lines.append("")
        pairs = [q for q in agg.get("pairs", {}).get(score, []) if "probability_of_improvement" in q]
        if pairs:
            lines += [f"Pairs of settings on the conditions both have: rliable's probability of improvement "
                      f"P(x > y) with its {conf}% stratified bootstrap interval, and x minus y paired by seed "
                      f"(each run's mean over those conditions) with a {conf}% bootstrap interval over seeds.", "",
                      f"| x | y | conditions | P(x > y) [{conf}% CI] | seeds paired | x - y [{conf}% CI] |",
                      "| --- | --- | ---: | --- | ---: | --- |"]
            for q in pairs:
                poi = (f"{q['probability_of_improvement']:.2f} [{q['probability_of_improvement_low']:.2f}, "
                       f"{q['probability_of_improvement_high']:.2f}]")
                diff = (f"{num(q['paired_difference'])} [{num(q['paired_difference_low'])}, "
                        f"{num(q['paired_difference_high'])}]" if q["paired_seeds"] else "-")
                lines.append(f"| {q['x']} | {q['y']} | {q['conditions']} | {poi} | {len(q['paired_seeds'])} | {diff} |")
            lines.append("")
    if image:
        lines += [f"![performance profiles]({image})", ""]
    return "\n".join(lines)


def write_aggregate(result: EvaluationResult | dict[str, Any], out_dir: Path, plots: bool = True) -> dict[str, Path]:
    """``seeds.json``, ``seeds.md`` and ``profiles.png`` in ``out_dir`` when ``result`` holds seed groups
    (nothing otherwise)."""
    from plasticrl.io import atomic_write_json

    result = as_result(result)
    if not seed_groups(list(result.agents)):
        return {}
    agg = aggregate(result, result.confidence, result.seed)
    paths = {"seeds_json": atomic_write_json(Path(out_dir) / "seeds.json", agg)}
    image = profile_plot(agg, Path(out_dir) / "profiles.png", result.env_id) if plots else None
    if image is not None:
        paths["profiles"] = image
    paths["seeds_md"] = Path(out_dir) / "seeds.md"
    paths["seeds_md"].write_text(markdown(agg, image.name if image is not None else None))
    return paths
