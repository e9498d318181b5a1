"""The demo's report: ``report.md``, ``training.png`` and ``robustness.png`` in its run directory, and the
same table and plots in W&B (offline by default).

Input: the run directory (its ``metrics.jsonl``) and the rows of ``robustness.json`` (``condition``,
``returns`` per paired episode; an episode whose return is not finite is an invalid episode: counted
and shown, never averaged).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

from plasticrl.report.training_curves import plot_training, read_metrics

ROBUSTNESS_COLUMNS = ("condition", "mean_return", "std_return", "change_vs_nominal", "invalid_episodes")


def robustness_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per condition: mean and std over the finite episode returns, change against nominal, invalid count."""
    out = []
    for r in rows:
        finite = [x for x in r["returns"] if x is not None and math.isfinite(x)]
        mean = sum(finite) / len(finite) if finite else math.nan
        std = math.sqrt(sum((x - mean) ** 2 for x in finite) / len(finite)) if finite else math.nan
        out.append({"condition": r["condition"], "mean_return": mean, "std_return": std,
                    "invalid_episodes": len(r["returns"]) - len(finite)})
    nominal = next((t["mean_return"] for t in out if t["condition"] == "nominal"), math.nan)
    for t in out:
        t["change_vs_nominal"] = t["mean_return"] - nominal
    return out


def _num(v: float) -> str:
    return "-" if not math.isfinite(v) else f"{v:.1f}"


def robustness_plot(table: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Mean return per condition (bars, std as error bars), the nominal return as a line."""
    from plasticrl.report.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    names = [t["condition"] for t in table]
    means = [t["mean_return"] if math.isfinite(t["mean_return"]) else 0.0 for t in table]
    stds = [t["std_return"] if math.isfinite(t["std_return"]) else 0.0 for t in table]
    bars = ax.bar(range(len(names)), means, yerr=stds, capsize=3, color="tab:blue")
    for bar, t in zip(bars, table):
        if t["invalid_episodes"]:
            ax.annotate(f"{t['invalid_episodes']} invalid", (bar.get_x() + bar.get_width() / 2, 0),
                        ha="center", va="bottom", fontsize=7, color="tab:red")
    nominal = next((t["mean_return"] for t in table if t["condition"] == "nominal"), math.nan)
    if math.isfinite(nominal):
        ax.axhline(nominal, color="k", lw=0.8, ls="--", label="nominal")
        ax.legend(fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("mean return (± std over episodes)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_demo_report(run_dir: Path, rows: list[dict[str, Any]], env_id: str, episodes: int,
                      wandb_mode: str = "disabled", project: str = "plasticrl",
                      stages: dict[str, Path] | None = None) -> dict[str, Path]:
    """Write ``training.png``, ``robustness.png`` and ``report.md`` into ``run_dir`` and log the table and
    plots to W&B (a run of job type ``demo-eval`` in the run directory; nothing when ``disabled``).
    ``stages``: the training runs to plot, by name (default: ``run_dir`` itself, a one-stage demo); the
    plastic-vs-frozen-twin report in ``run_dir/eval/report.md`` is linked when it exists."""
    run_dir = Path(run_dir)
    stages = {run_dir.name: run_dir} if stages is None else dict(stages)
    table = robustness_table(rows)
    metrics = {name: read_metrics(path) for name, path in stages.items()}
    paths = {"training": plot_training(metrics, run_dir / "training.png"),
             "robustness": robustness_plot(table, run_dir / "robustness.png",
                                           f"{env_id}: best agent, {episodes} paired episodes per condition")}
    lines = [f"# Demo: {env_id}", ""]
    for name, rows_ in metrics.items():
        evals = [r["eval_return_mean"] for r in rows_ if r.get("eval_return_mean") is not None]
        lines.append(f"- stage `{name}`: {len(rows_)} generations, "
                     f"{rows_[-1].get('env_steps') if rows_ else 0} env steps; best centre evaluation "
                     f"{_num(max(evals)) if evals else '-'}")
    if (run_dir / "eval" / "report.md").is_file():
        lines += ["", "What within-episode learning adds (the plastic agent beside its frozen twin, paired "
                  "held-out episodes): [eval/report.md](eval/report.md)."]
    lines += ["", f"The robustness table evaluates the last stage's `best_agent.pt` on {episodes} paired episodes "
              "per condition (the same seeds in every condition, held out from training and selection); invalid "
              "episodes (non-finite return) are counted, not averaged.", "",
              "| condition | mean return | std | change vs nominal | invalid episodes |",
              "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {t['condition']} | {_num(t['mean_return'])} | {_num(t['std_return'])} | "
              f"{'-' if not math.isfinite(t['change_vs_nominal']) else format(t['change_vs_nominal'], '+.1f')} | "
              f"{t['invalid_episodes']} |" for t in table]
    lines += ["", "![training](training.png)", "", "![robustness](robustness.png)", ""]
    paths["report"] = run_dir / "report.md"
    paths["report"].write_text("\n".join(lines))
    _log_wandb(run_dir, table, [paths["training"], paths["robustness"]], env_id, episodes, wandb_mode, project)
    return paths


def _log_wandb(run_dir: Path, table: list[dict[str, Any]], images: list[Path], env_id: str, episodes: int,
               mode: str, project: str) -> None:
    if mode == "disabled":
        return
    from plasticrl.trainers.logger import RunLogger

    logger = RunLogger(run_dir, {"env_id": env_id, "episodes": episodes}, wandb_mode=mode, project=project,
                       run_name=f"{run_dir.name}-robustness", tags=["demo", "eval"], write_jsonl=False)
    try:
        if logger.wandb_run is not None:
            import wandb

            data = [[t[k] if isinstance(t[k], str) or math.isfinite(t[k]) else None for k in ROBUSTNESS_COLUMNS]
                    for t in table]
            payload: dict[str, Any] = {
                "demo/robustness_table": wandb.Table(columns=list(ROBUSTNESS_COLUMNS), data=data)}
            payload.update({f"demo/{p.stem}_plot": wandb.Image(str(p)) for p in images})
            with logger.staging():  # W&B stores tables as artifacts: staged in the run directory
                logger.wandb_run.log(payload)
    except Exception as exc:  # noqa: BLE001 - W&B must never fail the demo
        warnings.warn(f"W&B logging of the demo's robustness table failed: {exc}", stacklevel=2)
    finally:
        logger.finish()
