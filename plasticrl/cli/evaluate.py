"""``plasticrl eval`` (agents x conditions, paired episodes, reports) and ``plasticrl report`` (rebuild reports, training curves)."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.console import Console
from rich.table import Table

from plasticrl.cli.common import FORCE_HELP, StepProgress, app, console, fail, os_error, stamp
from plasticrl.errors import PlasticRLError
from plasticrl.eval.result import EvaluationResult
from plasticrl.eval.settings import EvalSettings, eval_settings


def _default(name: str):
    """The default of an :class:`EvalSettings` field: one definition for the option and the model."""
    return EvalSettings.model_fields[name].default


class EvalProgress(StepProgress):
    """Progress over control steps, one bar per agent on a terminal (the oracle, when given, included);
    when the output is not a terminal (``nohup``, SLURM, a pipe), one line per agent at every tenth of
    its steps."""

    def __init__(self, names: list[str], out: Console | None = None):
        super().__init__(out)
        self.names = names
        self.tasks: dict[str, int] = {}
        self.shown: dict[str, int] = {}  # agent -> tenths already printed (lines mode)
        self.started = time.monotonic()

    def __call__(self, agent: str, _count: int, done: int, total: int) -> None:
        if self.bars is not None:
            if agent not in self.tasks:
                self.tasks[agent] = self.bars.add_task(f"eval {agent}", total=total)
            self.bars.update(self.tasks[agent], completed=done, total=total)
            return
        tenths = 10 * done // max(total, 1)
        if tenths > self.shown.get(agent, 0):
            self.shown[agent] = tenths
            self.console.print(f"eval {agent}: {done}/{total} steps ({100 * done // max(total, 1)}%), "
                               f"elapsed {time.monotonic() - self.started:.0f} s", highlight=False, soft_wrap=True)


def print_summary(result: EvaluationResult) -> None:
    """The evaluation table (agent x condition) and the plasticity effect, on the console."""
    table = Table(title=f"{result.env_id} / {result.suite}: {result.episodes} paired episodes")
    survival = result.has_beyond_survival
    invalid = any(r.invalid_episodes for r in result.rows)
    cols = ["agent", "condition", "mean return", "95% CI", "retained", "time to recover"]
    for col in cols + (["retained beyond survival"] if survival else []) + (["invalid episodes"] if invalid else []):
        table.add_column(col, justify="left" if col in ("agent", "condition") else "right")

    def fraction(v) -> str:
        return "-" if v is None or not math.isfinite(v) else f"{v:.3f}"

    def ret(v) -> str:
        return "-" if v is None or not math.isfinite(v) else f"{v:.1f}"

    for r in result.rows:
        ttr = "" if not r.mid_episode else ("never" if r.time_to_recover is None else str(r.time_to_recover))
        cells = [r.agent, r.condition, ret(r.mean_return), f"[{ret(r.ci_low)}, {ret(r.ci_high)}]",
                 fraction(r.retained), ttr]
        table.add_row(*cells, *([fraction(r.retained_beyond_survival)] if survival else []),
                      *([f"{r.invalid_episodes}/{result.episodes}"] if invalid else []))
    console.print(table)
    from plasticrl.eval.plasticity_effect import HELD_OUT

    print_goal_adaptation(result)
    nan = lambda v: math.nan if v is None else v  # noqa: E731 - None: not finite, printed as before
    for e in result.plasticity_effect:
        if e.condition == HELD_OUT:
            console.print(f"within-episode plasticity adds, {e.agent} minus {e.twin} (paired, held-out mean): "
                          f"{nan(e.difference):+.1f} [{nan(e.low):+.1f}, {nan(e.high):+.1f}] per episode")


def print_goal_adaptation(result: EvaluationResult) -> None:
    """Goal-switching tasks: reward per step before/after the switch, adaptation ratio, time to adapt."""
    entries = result.goal_adaptation
    if not entries:
        return

    def num(v, fmt: str) -> str:
        return "-" if v is None or not math.isfinite(v) else format(v, fmt)

    table = Table(title="adaptation to the goal switch (reward per step; ratio = after-switch rate / oracle's)")
    for col in ("agent", "condition", "before", "after", "ratio", "95% CI", "time to adapt", "adapted",
                "after - frozen twin"):
        table.add_column(col, justify="left" if col in ("agent", "condition") else "right")
    for e in entries:
        t = e.twin_difference
        twin = "" if t is None else (
            f"{num(t.after_minus_twin, '+.2f')} [{num(t.after_minus_twin_low, '+.2f')}, "
            f"{num(t.after_minus_twin_high, '+.2f')}]")
        table.add_row(e.agent, e.condition, num(e.reward_rate_before, ".2f"),
                      num(e.reward_rate_after, ".2f"), num(e.adaptation_ratio, ".2f"),
                      f"[{num(e.adaptation_ratio_low, '.2f')}, {num(e.adaptation_ratio_high, '.2f')}]",
                      num(e.time_to_adapt_median, ".0f"), num(e.adapted_fraction, ".0%"), twin)
    console.print(table)
    for e in entries:
        if e.beyond_survival is not None:
            b = e.beyond_survival
            console.print(f"{e.agent} / {e.condition} beyond the survival bonus: before "
                          f"{num(b.reward_rate_before, '.2f')}, after {num(b.reward_rate_after, '.2f')} per step, "
                          f"ratio {num(b.adaptation_ratio, '.2f')} [{num(b.adaptation_ratio_low, '.2f')}, "
                          f"{num(b.adaptation_ratio_high, '.2f')}]", highlight=False, soft_wrap=True)


def run_eval_command(agents: list[Path], env: Optional[str], settings: EvalSettings, out: Path, names: list[str],
                     wandb_mode: Optional[str], plots: bool, quiet: bool, trust_pickle: bool = False,
                     oracle: Optional[Path] = None, force: bool = False,
                     env_kwargs_update: Optional[dict] = None) -> EvaluationResult:
    """Body of ``plasticrl eval``; returns the result."""
    from plasticrl.experiments.evaluation import evaluate_agents

    result, paths = evaluate_agents(
        agents, out, settings, names=names, env=env, wandb_mode=wandb_mode, plots=plots,
        progress=None if quiet else EvalProgress, trust_pickle=trust_pickle, oracle=oracle, force=force,
        env_kwargs_update=env_kwargs_update)
    if not quiet:
        print_summary(result)
    from plasticrl.report.writer import invalid_episode_warnings

    for warning in invalid_episode_warnings(result):  # loud even with --quiet: these are no results
        console.print(f"[bold yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    console.print(f"written: {', '.join(str(p) for p in paths.values())}")
    return result


def _env_kwargs_update(items: list[str]) -> dict:
    """``--env-kwarg KEY=VALUE`` items as a dict (values parsed as YAML by the config overrides' parser)."""
    from plasticrl.config.experiment import parse_overrides

    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise PlasticRLError(f"--env-kwarg {item!r} is not KEY=VALUE with one env keyword argument as KEY "
                                 "(e.g. direction=1)")
    update: dict = {}
    for key, value in parse_overrides(items):
        if key in update:
            raise PlasticRLError(f"--env-kwarg {key!r} given twice")
        update[key] = value
    return update


@app.command("eval")
def eval_cmd(
    agents: list[Path] = typer.Argument(..., help="Agent files (.pt or run directories) and SB3 models (.zip)."),
    env: Optional[str] = typer.Option(None, help="Env id (default: the one the agents were trained on)."),
    env_kwarg: Optional[list[str]] = typer.Option(
        None, "--env-kwarg", help="KEY=VALUE (repeatable, VALUE read as YAML): change one of the env keyword "
        "arguments the agents were trained with, e.g. direction=1 or 'switch_step=[300, 700]'."),
    suite: str = typer.Option(_default("suite"), help="Suite of conditions: novel (held out, 3 severities), nominal, "
                                "morphology (Ant: shortened lower legs) or motor_failure (one dead motor from step 500)."),
    episodes: int = typer.Option(_default("episodes"), help="Paired episodes per condition (seeds SEED..SEED+N-1)."),
    seed: int = typer.Option(_default("seed"), help="First episode seed."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Glob on condition names (repeatable), "
                                             "e.g. 'remove_limb_mid@*'."),
    out: Optional[Path] = typer.Option(None, help="Output directory (default: runs/eval-<time>)."),
    name: Optional[list[str]] = typer.Option(None, "--name", help="Label per agent (repeatable, in order)."),
    max_rows: int = typer.Option(_default("max_rows"), help="Most (condition x episode) rows stepped in one engine batch."),
    window: int = typer.Option(_default("window"), help="Window (steps) of the adaptation curves."),
    max_episode_steps: Optional[int] = typer.Option(None, help="Override the episode length."),
    wandb_mode: Optional[str] = typer.Option(None, "--wandb-mode", help="offline (default), online, disabled."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress display or table."),
    frozen_twins: bool = typer.Option(False, "--frozen-twins", help="Also evaluate each plastic agent with its "
                                      "learning rates set to 0 (label NAME/frozen), on the same episodes."),
    obs_std_floor: Optional[float] = typer.Option(
        None, "--obs-std-floor", help="Divide each plasticrl agent's observations by at least this std (raw "
        "units) instead of the floor it was trained with; SB3 models keep their own normalisation."),
    oracle: Optional[Path] = typer.Option(
        None, "--oracle", help="Goal-switching tasks: an agent trained with env.kwargs.goal_observed=true, run "
        "first on the same episodes; adaptation ratio and time to adapt are measured against it."),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="Let Stable-Baselines3 unpickle the parts of a .zip that plasticrl cannot "
        "rebuild (e.g. custom policy classes). Unpickling runs code from the file: only for files you trust."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Evaluate agents on nominal and every suite condition: returns, bootstrap CIs, retained
    fraction, adaptation curves; writes eval.json, eval.csv, curves.csv, report.md and PNGs."""
    try:
        # every setting checked before an agent is loaded or a file written
        settings = eval_settings("eval options", as_options=True, suite=suite, episodes=episodes, seed=seed, only=tuple(only or ()),
                                 max_rows=max_rows, window=window, max_episode_steps=max_episode_steps,
                                 frozen_twins=frozen_twins, obs_std_floor=obs_std_floor)
        kwargs_update = _env_kwargs_update(env_kwarg or [])
        run_eval_command(agents, env, settings, out or Path("runs") / f"eval-{stamp()}", list(name or []),
                         wandb_mode, not no_plots, quiet, trust_pickle, oracle, force, kwargs_update)
    except PlasticRLError as exc:
        fail(str(exc))
    except OSError as exc:  # read-only or full disk, a file where a directory goes
        fail(os_error(exc))


@app.command("report")
def report_cmd(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories (metrics.jsonl) and/or eval directories "
                                          "(eval.json)."),
    out: Optional[Path] = typer.Option(None, help="Where training.png/training.md go (default: the single "
                                       "directory given, else runs/report-<time>)."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots."),
    combine: bool = typer.Option(False, "--combine", help="Put the evaluations given (same env, suite, "
                                 "episodes and seed; different agents) into one eval.json in --out and "
                                 "report them together, seeds.md included."),
) -> None:
    """Rebuild evaluation reports from saved eval.json files and draw training curves; with --combine,
    join evaluations of different agents on the same paired episodes."""
    from plasticrl.report.rebuild import combine as combine_dirs, rebuild

    try:
        if combine:
            if out is None:
                raise PlasticRLError("--combine needs --out: the directory for the combined eval.json")
            written = combine_dirs(run_dirs, out, plots=not no_plots)
        else:
            target = out or (run_dirs[0] if len(run_dirs) == 1 else Path("runs") / f"report-{stamp()}")
            written = rebuild(run_dirs, target, plots=not no_plots)
    except PlasticRLError as exc:
        fail(str(exc))
    except OSError as exc:  # read-only or full disk, a file where a directory goes
        fail(os_error(exc))
    console.print(f"written: {', '.join(str(p) for p in written)}")
