"""Evaluation commands of the CLI: ``eval``, ``report``, ``baseline``, ``experiment``, ``render``.

Registered on the main typer app by :mod:`plasticrl.cli`; each command is a thin shell over a
library function so the same work can be done from Python.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from plasticrl.errors import PlasticRLError

console = Console()


def _fail(message: str) -> None:
    # escape: a message quoting '[...]' must not be read as console markup; soft_wrap: one line, unfolded
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code=2)


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


class _EvalProgress:
    """Rich progress bar over control steps, one task per agent."""

    def __init__(self, names: list[str]):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("steps"), TimeElapsedColumn(), console=console)
        self.names = names
        self.tasks: dict[int, int] = {}

    def __enter__(self) -> "_EvalProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def __call__(self, agent: int, _count: int, done: int, total: int) -> None:
        if agent not in self.tasks:
            self.tasks[agent] = self.progress.add_task(f"eval {self.names[agent]}", total=total)
        self.progress.update(self.tasks[agent], completed=done, total=total)


def _print_summary(result: dict) -> None:
    table = Table(title=f"{result['env_id']} / {result['suite']}: {result['episodes']} paired episodes")
    from plasticrl.eval.evaluate import has_beyond_survival

    survival = has_beyond_survival(result)
    cols = ["agent", "condition", "mean return", "95% CI", "retained", "time to recover"]
    for col in cols + (["retained beyond survival"] if survival else []):
        table.add_column(col, justify="left" if col in ("agent", "condition") else "right")

    def fraction(v) -> str:
        return "-" if v is None or not math.isfinite(v) else f"{v:.3f}"

    for r in result["rows"]:
        ttr = "" if not r["mid_episode"] else ("never" if r["time_to_recover"] is None else str(r["time_to_recover"]))
        cells = [r["agent"], r["condition"], f"{r['mean_return']:.1f}", f"[{r['ci_low']:.1f}, {r['ci_high']:.1f}]",
                 fraction(r["retained"]), ttr]
        table.add_row(*cells, *([fraction(r.get("retained_beyond_survival"))] if survival else []))
    console.print(table)
    from plasticrl.eval.plasticity_effect import HELD_OUT

    _print_goal_adaptation(result)
    for e in result.get("plasticity_effect", []):
        if e["condition"] == HELD_OUT:
            console.print(f"within-episode plasticity adds, {e['agent']} minus {e['twin']} (paired, held-out mean): "
                          f"{e['difference']:+.1f} [{e['low']:+.1f}, {e['high']:+.1f}] per episode")


def _print_goal_adaptation(result: dict) -> None:
    """Goal-switching tasks: reward per step before/after the switch, adaptation ratio, time to adapt."""
    entries = result.get("goal_adaptation") or []
    if not entries:
        return

    def num(v, fmt: str) -> str:
        return "-" if v is None or not math.isfinite(v) else format(v, fmt)

    table = Table(title="adaptation to the goal switch (reward per step; ratio = after-switch rate / oracle's)")
    for col in ("agent", "condition", "before", "after", "ratio", "95% CI", "time to adapt", "adapted",
                "after - frozen twin"):
        table.add_column(col, justify="left" if col in ("agent", "condition") else "right")
    for e in entries:
        twin = "" if "after_minus_twin" not in e else (
            f"{num(e['after_minus_twin'], '+.2f')} [{num(e['after_minus_twin_low'], '+.2f')}, "
            f"{num(e['after_minus_twin_high'], '+.2f')}]")
        table.add_row(e["agent"], e["condition"], num(e["reward_rate_before"], ".2f"),
                      num(e["reward_rate_after"], ".2f"), num(e["adaptation_ratio"], ".2f"),
                      f"[{num(e['adaptation_ratio_low'], '.2f')}, {num(e['adaptation_ratio_high'], '.2f')}]",
                      num(e["time_to_adapt_median"], ".0f"), num(e["adapted_fraction"], ".0%"), twin)
    console.print(table)


def run_eval_command(agents: list[Path], env: Optional[str], suite: str, episodes: int, seed: int,
                     only: list[str], out: Path, names: list[str], max_rows: int, window: int,
                     max_episode_steps: Optional[int], wandb_mode: Optional[str], plots: bool,
                     quiet: bool, frozen: bool = False, obs_std_floor: Optional[float] = None,
                     trust_pickle: bool = False, oracle: Optional[Path] = None) -> dict:
    """Body of ``plasticrl eval``; returns the result dict."""
    from plasticrl.experiments.evaluation import evaluate_agents

    result, paths = evaluate_agents(
        agents, out, names=names, env=env, suite=suite, episodes=episodes, seed=seed, only=only,
        max_rows=max_rows, window=window, max_episode_steps=max_episode_steps, frozen=frozen,
        obs_std_floor=obs_std_floor, wandb_mode=wandb_mode, plots=plots, progress=None if quiet else _EvalProgress,
        trust_pickle=trust_pickle, oracle=oracle)
    if not quiet:
        _print_summary(result)
    console.print(f"written: {', '.join(str(p) for p in paths.values())}")
    return result


def register(app: typer.Typer) -> None:
    """Add the evaluation commands to ``app``."""

    @app.command("eval")
    def eval_cmd(
        agents: list[Path] = typer.Argument(..., help="Agent files (.pt or run directories) and SB3 models (.zip)."),
        env: Optional[str] = typer.Option(None, help="Env id (default: the one the agents were trained on)."),
        suite: str = typer.Option("novel", help="Suite of conditions: novel (held out, 3 severities) or nominal."),
        episodes: int = typer.Option(10, help="Paired episodes per condition (seeds SEED..SEED+N-1)."),
        seed: int = typer.Option(0, help="First episode seed."),
        only: Optional[list[str]] = typer.Option(None, "--only", help="Glob on condition names (repeatable), "
                                                 "e.g. 'remove_limb_mid@*'."),
        out: Optional[Path] = typer.Option(None, help="Output directory (default: runs/eval-<time>)."),
        name: Optional[list[str]] = typer.Option(None, "--name", help="Label per agent (repeatable, in order)."),
        max_rows: int = typer.Option(512, help="Most (condition x episode) rows stepped in one engine batch."),
        window: int = typer.Option(20, help="Window (steps) of the adaptation curves."),
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
    ) -> None:
        """Evaluate agents on nominal and every suite condition: returns, bootstrap CIs, retained
        fraction, adaptation curves; writes eval.json, eval.csv, curves.csv, report.md and PNGs."""
        try:
            run_eval_command(agents, env, suite, episodes, seed, list(only or []),
                             out or Path("runs") / f"eval-{_stamp()}", list(name or []), max_rows, window,
                             max_episode_steps, wandb_mode, not no_plots, quiet, frozen_twins, obs_std_floor,
                             trust_pickle, oracle)
        except PlasticRLError as exc:
            _fail(str(exc))

    @app.command("report")
    def report_cmd(
        run_dirs: list[Path] = typer.Argument(..., help="Run directories (metrics.jsonl) and/or eval directories "
                                              "(eval.json)."),
        out: Optional[Path] = typer.Option(None, help="Where training.png/training.md go (default: the single "
                                           "directory given, else runs/report-<time>)."),
        no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots."),
    ) -> None:
        """Rebuild evaluation reports from saved eval.json files and draw training curves."""
        from plasticrl.report.rebuild import rebuild

        try:
            target = out or (run_dirs[0] if len(run_dirs) == 1 else Path("runs") / f"report-{_stamp()}")
            written = rebuild(run_dirs, target, plots=not no_plots)
        except PlasticRLError as exc:
            _fail(str(exc))
        console.print(f"written: {', '.join(str(p) for p in written)}")

    @app.command("baseline")
    def baseline_cmd(
        algo: Optional[str] = typer.Option(None, "--algo", help="ppo, sac or td3."),
        env: Optional[str] = typer.Option(None, "--env", help="Env id, e.g. Ant-v5."),
        steps: Optional[int] = typer.Option(None, "--steps", help="Env steps of training (default 1000000; "
                                            "with --resume the run's own budget)."),
        seed: int = typer.Option(0, help="Seed of the model, the envs and the perturbation draws."),
        out: Optional[Path] = typer.Option(None, help="Run directory (default: runs/<algo>-<env>-<time>)."),
        train_perturbation: Optional[str] = typer.Option(
            None, "--train-perturbation", help="Train every episode under: train (the env's domain randomisation), "
            "damage (limbs the novel suite leaves intact) or one perturbation in YAML, e.g. "
            "'{name: mass_scale, scale: 1.5}' (as the ES trainer's env.train_perturbation)."),
        train_perturbations: bool = typer.Option(False, "--train-perturbations",
                                                 help="Same as --train-perturbation train."),
        hp: Optional[list[str]] = typer.Option(None, "--hp", help="Hyperparameter override key=value (YAML "
                                               "value), repeatable, e.g. --hp learning_starts=1000."),
        eval_every: int = typer.Option(10_000, help="Env steps between nominal evaluations (metrics.jsonl)."),
        eval_episodes: int = typer.Option(5, help="Episodes per evaluation."),
        max_episode_steps: Optional[int] = typer.Option(None, help="Override the episode length."),
        wandb_mode: Optional[str] = typer.Option(None, "--wandb-mode", help="offline (default), online, disabled."),
        resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a killed baseline run from its "
                                              "checkpoint.pt (settings from its config.yaml; --steps may "
                                              "raise the budget)."),
    ) -> None:
        """Train a Stable-Baselines3 baseline (rl-zoo-like hyperparameters); saves model.zip and best_model.zip."""
        from plasticrl.config import load_yaml
        from plasticrl.report.wandb_log import resolve_mode
        from plasticrl.trainers.sb3 import train_baseline
        from plasticrl.trainers.sb3.trainer import check_settings

        try:
            if resume is not None:
                from plasticrl.trainers.sb3.trainer import saved_settings

                saved = saved_settings(resume)
                budget = steps if steps is not None else saved["steps"]
                path = train_baseline(saved["algo"], saved["env_id"], budget, resume, seed=saved["seed"],
                                      env_kwargs=saved["env_kwargs"],
                                      train_perturbation=saved["train_perturbation"],
                                      overrides=saved["hyperparams"], eval_every=saved["eval_every"],
                                      eval_episodes=saved["eval_episodes"], wandb_mode=resolve_mode(wandb_mode),
                                      resume=True)
                console.print(f"saved {path} (evaluate with: plasticrl eval {path.parent / 'best_model.zip'})")
                return
            if algo is None or env is None:
                raise PlasticRLError("--algo and --env are required (or --resume RUN_DIR)")
            overrides = {}
            for item in hp or []:
                if "=" not in item:
                    raise PlasticRLError(f"--hp {item!r} is not key=value")
                key, value = item.split("=", 1)
                overrides[key] = load_yaml(value, f"--hp {item!r}")
            if train_perturbations and train_perturbation not in (None, "train"):
                raise PlasticRLError(f"--train-perturbations means --train-perturbation train; got both it and "
                                     f"--train-perturbation {train_perturbation!r}")
            condition = (load_yaml(train_perturbation, f"--train-perturbation {train_perturbation!r}")
                         if train_perturbation is not None else None)
            if train_perturbations:
                condition = "train"
            env_kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
            check_settings(algo, env, env_kwargs, condition)
            run_dir = out or Path("runs") / f"{algo}-{env.lower()}-{_stamp()}"
            console.print(f"run directory: {run_dir}")
            budget = steps if steps is not None else 1_000_000
            path = train_baseline(algo, env, budget, run_dir, seed=seed, env_kwargs=env_kwargs,
                                  train_perturbation=condition, overrides=overrides,
                                  eval_every=eval_every, eval_episodes=eval_episodes,
                                  wandb_mode=resolve_mode(wandb_mode))
        except PlasticRLError as exc:
            _fail(str(exc))
        console.print(f"saved {path} (evaluate with: plasticrl eval {path.parent / 'best_model.zip'})")

    @app.command("render")
    def render_cmd(
        agent: Path = typer.Argument(..., help="Agent file (.pt or run directory) or SB3 model (.zip)."),
        out: Path = typer.Option(Path("video.mp4"), help="Video file: .mp4 or .gif."),
        condition: Optional[str] = typer.Option(None, help="A novel-suite condition name (e.g. remove_limb_mid@mild) "
                                                "or a JSON perturbation; nominal if omitted."),
        env: Optional[str] = typer.Option(None, help="Env id (default: the agent's)."),
        steps: int = typer.Option(1000, help="Most steps rendered (the episode may end earlier)."),
        width: int = typer.Option(480, help="Frame width in pixels."),
        height: int = typer.Option(320, help="Frame height in pixels."),
        seed: int = typer.Option(0, help="Episode seed."),
        fps: int = typer.Option(30, help="Frames per second of the video."),
        frames_dir: Optional[Path] = typer.Option(None, help="Also write every frame as PNG here."),
        max_episode_steps: Optional[int] = typer.Option(None, help="Override the episode length."),
        wandb: bool = typer.Option(False, "--wandb", help="Log the video to a W&B run (mode from --wandb-mode)."),
        wandb_mode: Optional[str] = typer.Option(None, "--wandb-mode", help="offline (default), online, disabled."),
        trust_pickle: bool = typer.Option(
            False, "--trust-pickle", help="Let Stable-Baselines3 unpickle the parts of a .zip that plasticrl cannot "
            "rebuild (e.g. custom policy classes). Unpickling runs code from the file: only for files you trust."),
    ) -> None:
        """Render one episode offscreen (OSMesa on CPU, EGL with a GPU; $MUJOCO_GL overrides) to a video."""
        from plasticrl.report.render import render_video

        try:
            kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
            summary = render_video(agent, out, env, condition, steps, width, height, seed, fps, frames_dir, kwargs,
                                   trust_pickle=trust_pickle)
            if wandb:
                from plasticrl.report.wandb_log import log_video, resolve_mode

                log_video(out, summary, resolve_mode(wandb_mode))
        except PlasticRLError as exc:
            _fail(str(exc))
        console.print(f"rendered {summary['length']} frames of {summary['width']}x{summary['height']} "
                      f"({summary['condition']}, return {summary['return']:.1f}, MUJOCO_GL={summary['backend']}) "
                      f"to {out}")

    @app.command("experiment")
    def experiment_cmd(
        args: list[str] = typer.Argument(..., help="EXPERIMENT.yaml followed by key=value overrides "
                                         "(e.g. eval.episodes=20)."),
        out: Optional[Path] = typer.Option(None, help="Experiment directory (default: runs/<name>-<time>); "
                                           "re-use it to continue a killed experiment."),
        wandb_mode: Optional[str] = typer.Option(None, "--wandb-mode", help="offline (default), online, disabled."),
    ) -> None:
        """Train the plastic agent, its static twin and SB3 baselines, evaluate all on the suite, report."""
        from plasticrl.experiments.comparison import load_spec, run_experiment

        try:
            spec = load_spec(Path(args[0]), args[1:])
            if wandb_mode is not None:
                spec.wandb_mode = wandb_mode
            summary = run_experiment(spec, out, log=lambda m: console.print(f"[bold]experiment[/]: {m}"),
                                     progress=_EvalProgress)
        except PlasticRLError as exc:
            _fail(str(exc))
        _print_summary(summary["result"])
        console.print(f"report: {summary['report']}")
