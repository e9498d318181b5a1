"""Training curves from run directories: fitness (and centre evaluation) against env steps.

Reads each run's ``metrics.jsonl`` (one JSON object per generation, written by the trainer);
SB3 baseline runs write the same file with ``env_steps`` and ``eval_return_mean`` only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plasticrl.errors import PlasticRLError


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``run_dir/metrics.jsonl``; lines torn by a kill are skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise PlasticRLError(f"{str(run_dir)!r} has no metrics.jsonl; is it a plasticrl run directory?")
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def curve_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Last env steps, best centre evaluation and last mean fitness of one run."""
    evals = [r["eval_return_mean"] for r in rows if r.get("eval_return_mean") is not None]
    fit = [r["fitness_mean"] for r in rows if r.get("fitness_mean") is not None]
    return {"points": len(rows), "env_steps": rows[-1].get("env_steps") if rows else None,
            "best_eval_return": max(evals) if evals else None, "last_fitness_mean": fit[-1] if fit else None}


def plot_training(runs: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    """One PNG: per run, population mean fitness (solid), best member's fitness (faint) and centre
    evaluations (markers), every line named in the legend (outside the axes when there are many)."""
    from plasticrl.report.plots import pyplot

    fig = training_figure(runs)
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path


def training_figure(runs: dict[str, list[dict[str, Any]]]) -> Any:
    """The matplotlib figure of :func:`plot_training`."""
    from plasticrl.report.plots import pyplot

    plt = pyplot()
    many = len(runs) > 3
    fig, ax = plt.subplots(figsize=(9.5 if many else 7, 4.2))
    for name, rows in runs.items():
        fit = [r for r in rows if r.get("fitness_mean") is not None]
        color = None
        if fit:
            line, = ax.plot([r.get("env_steps") for r in fit], [r["fitness_mean"] for r in fit],
                            label=f"{name}: population mean fitness")
            color = line.get_color()
            top = [r for r in fit if r.get("fitness_max") is not None]
            if top:
                ax.plot([r.get("env_steps") for r in top], [r["fitness_max"] for r in top], color=color, alpha=0.3,
                        label=f"{name}: best member's fitness")
        ev = [(r["env_steps"], r["eval_return_mean"]) for r in rows if r.get("eval_return_mean") is not None]
        if ev:
            ax.plot(*zip(*ev), "o", ms=3, color=color, label=f"{name}: centre evaluation")
    ax.set_xlabel("env steps")
    ax.set_ylabel("return per episode")
    ax.grid(alpha=0.3)
    if many:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
