"""``plasticrl experiment``: train and evaluate the agents of an experiment spec together."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from plasticrl.cli.common import FORCE_HELP, app, console, fail, os_error
from plasticrl.cli.evaluate import EvalProgress, print_summary
from plasticrl.errors import PlasticRLError


@app.command("experiment")
def experiment_cmd(
    args: list[str] = typer.Argument(..., help="EXPERIMENT.yaml followed by key=value overrides "
                                     "(e.g. eval.episodes=20)."),
    out: Optional[Path] = typer.Option(None, help="Experiment directory (default: runs/<name>-<time>); "
                                       "re-use it to continue a killed experiment."),
    wandb_mode: Optional[str] = typer.Option(None, "--wandb-mode", help="offline (default), online, disabled."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Train the plastic agent, its static twin and SB3 baselines, evaluate all on the suite, report."""
    from plasticrl.experiments.comparison import load_spec, run_experiment

    try:
        spec = load_spec(Path(args[0]), args[1:])
        if wandb_mode is not None:
            spec.wandb_mode = wandb_mode
        summary = run_experiment(spec, out, log=lambda m: console.print(f"[bold]experiment[/]: {m}"),
                                 progress=EvalProgress, force=force)
    except PlasticRLError as exc:
        fail(str(exc))
    except OSError as exc:  # read-only or full disk, a file where a directory goes
        fail(os_error(exc))
    print_summary(summary["result"])
    console.print(f"report: {summary['report']}")
