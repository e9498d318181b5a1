"""PNG plots of an evaluation result (matplotlib, Agg backend: no display needed).

- ``retained.png``: retained fraction per condition, one bar per agent, with its interval (and a
  second panel for the return beyond the survival bonus, for tasks that pay one).
- ``severity.png``: mean return against severity per condition family, one line per agent.
- ``adaptation.png``: reward per window around each mid-episode switch, one panel per condition.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from plasticrl.eval.adaptation import recover_threshold
from plasticrl.eval.result import EvaluationResult, as_result

SEVERITY_ORDER = ("mild", "moderate", "severe")


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only; never try to open a window
    import matplotlib.pyplot as plt

    return plt


def retained_plot(result: EvaluationResult | dict[str, Any], path: Path) -> Path:
    """Retained fraction per condition; a second panel without the survival bonus where the task pays one."""
    result = as_result(result)
    plt = pyplot()
    conds = [c for c in result.conditions if c != "nominal"]
    panels = [("retained", "retained fraction (condition / nominal)")]
    if result.has_beyond_survival:
        panels.append(("retained_beyond_survival", "retained, return beyond survival bonus"))
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, sharex=True,
                             figsize=(max(6.0, 0.35 * len(conds) * max(1, len(result.agents))),
                                      4.5 + 3.0 * (len(panels) - 1)))
    for ax, (key, label) in zip(axes.flat, panels):
        _retained_bars(ax, result, conds, key)
        ax.set_ylabel(label, fontsize=8)
    axes.flat[0].set_title(f"{result.env_id}: retained fraction, suite {result.suite}")
    axes.flat[0].legend(fontsize=7)
    axes.flat[-1].set_xticks(np.arange(len(conds)), conds, rotation=70, ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _retained_bars(ax, result: EvaluationResult, conds: list[str], key: str) -> None:
    agents = result.agents
    width = 0.8 / max(1, len(agents))
    x = np.arange(len(conds))
    for k, agent in enumerate(agents):
        by = {r.condition: r for r in result.rows_of(agent)}
        est = np.array([_nan(by[c].value(key)) for c in conds])
        lo = np.array([_nan(by[c].value(f"{key}_low")) for c in conds])
        hi = np.array([_nan(by[c].value(f"{key}_high")) for c in conds])
        yerr = np.vstack([np.clip(est - lo, 0, None), np.clip(hi - est, 0, None)])
        ax.bar(x + (k - (len(agents) - 1) / 2) * width, est, width, yerr=np.nan_to_num(yerr), label=agent,
               capsize=2)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(0.8, color="grey", lw=0.8, ls="--")


def severity_plot(result: EvaluationResult | dict[str, Any], path: Path) -> Path | None:
    """Mean return against severity, one panel per condition family (none without severities)."""
    result = as_result(result)
    plt = pyplot()
    families = sorted({r.family for r in result.rows if r.severity in SEVERITY_ORDER})
    if not families:
        return None
    cols = min(4, len(families))
    rows = int(np.ceil(len(families) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, fam in zip(axes.flat, families):
        for agent in result.agents:
            nominal = result.row(agent, "nominal")
            pts = {r.severity: r for r in result.rows_of(agent) if r.family == fam}
            levels = ["nominal"] + [s for s in SEVERITY_ORDER if s in pts]
            ys = [nominal.mean_return] + [pts[s].mean_return for s in levels[1:]]
            lo = [nominal.ci_low] + [pts[s].ci_low for s in levels[1:]]
            hi = [nominal.ci_high] + [pts[s].ci_high for s in levels[1:]]
            line, = ax.plot(levels, ys, marker="o", label=agent)
            ax.fill_between(levels, lo, hi, color=line.get_color(), alpha=0.15)
        ax.set_title(fam, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(families):]:
        ax.set_visible(False)
    axes.flat[0].set_ylabel("mean return")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(f"{result.env_id}: return against severity", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def adaptation_plot(result: EvaluationResult | dict[str, Any], path: Path) -> Path | None:
    """Reward per window around each mid-episode switch: a grid with one row per condition family and one
    column per severity (mild, moderate, severe) when the names are ``family@severity``, else panels
    wrapped four to a row; rows share their y axis, one legend for the figure."""
    result = as_result(result)
    plt = pyplot()
    conds = sorted({c.condition for c in result.curves})
    if not conds:
        return None
    cells = _adaptation_cells(conds)
    nrows = max(r for r, _ in cells.values()) + 1
    ncols = max(c for _, c in cells.values()) + 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols + 0.6, 2.3 * nrows + 1.0), squeeze=False,
                             sharex=True, sharey="row", layout="constrained")
    colors: dict[str, Any] = {}
    for cond, (row, col) in cells.items():
        ax = axes[row, col]
        for c in (c for c in result.curves if c.condition == cond):
            line, = ax.plot(list(c.offsets), list(c.reward), marker=".", ms=3, color=colors.get(c.agent),
                            label=c.agent)
            colors[c.agent] = line.get_color()
            # the recovery threshold of this agent, dotted in its colour
            ax.axhline(recover_threshold(c.pre_switch_reward), color=line.get_color(), ls=":", lw=0.8)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(cond, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    used = set(cells.values())
    for r in range(nrows):
        for c in range(ncols):
            if (r, c) not in used:
                axes[r, c].set_visible(False)
        axes[r, 0].set_ylabel("reward / step", fontsize=8)
    for c in range(ncols):
        axes[nrows - 1, c].set_xlabel("steps from switch", fontsize=8)
    handles = [plt.Line2D([], [], color=col, marker=".", label=agent) for agent, col in colors.items()]
    handles += [plt.Line2D([], [], color="grey", ls=":", label="recovered: 80% of pre-switch reward"),
                plt.Line2D([], [], color="k", lw=0.8, label="switch")]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), fontsize=7, frameon=False)
    fig.suptitle(f"{result.env_id}: reward per step around the mid-episode switch "
                 f"({result.window}-step windows)", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _adaptation_cells(conds: list[str]) -> dict[str, tuple[int, int]]:
    """Grid position per condition: (family row, severity column) when every name is ``family@severity``
    with a known severity, else reading order four to a row."""
    parts = [c.split("@", 1) for c in conds]
    if all(len(p) == 2 and p[1] in SEVERITY_ORDER for p in parts):
        families = sorted({p[0] for p in parts})
        return {c: (families.index(p[0]), SEVERITY_ORDER.index(p[1])) for c, p in zip(conds, parts)}
    return {c: (i // 4, i % 4) for i, c in enumerate(conds)}


def draw_all(result: EvaluationResult | dict[str, Any], out_dir: Path) -> list[Path]:
    """Every plot that applies to ``result``, as PNG files in ``out_dir``."""
    result = as_result(result)
    drawn = [retained_plot(result, out_dir / "retained.png"), severity_plot(result, out_dir / "severity.png"),
             adaptation_plot(result, out_dir / "adaptation.png")]
    return [p for p in drawn if p is not None]


def _nan(v: Any) -> float:
    return float("nan") if v is None else float(v)
