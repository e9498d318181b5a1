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
    """One PNG: per run, mean (solid) and max (faint) fitness and centre evaluations (markers)."""
    from plasticrl.report.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rows in runs.items():
        steps = [r.get("env_steps") for r in rows if r.get("fitness_mean") is not None]
        if steps:
            line, = ax.plot(steps, [r["fitness_mean"] for r in rows if r.get("fitness_mean") is not None],
                            label=f"{name} fitness mean")
            color = line.get_color()
            if any(r.get("fitness_max") is not None for r in rows):
                ax.plot(steps, [r.get("fitness_max") for r in rows if r.get("fitness_mean") is not None],
                        color=color, alpha=0.3)
        else:
            color = None
        ev = [(r["env_steps"], r["eval_return_mean"]) for r in rows if r.get("eval_return_mean") is not None]
        if ev:
            ax.plot(*zip(*ev), "o", ms=3, color=color, label=f"{name} evaluation")
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
