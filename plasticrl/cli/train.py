"""``plasticrl demo`` (the main job) and ``plasticrl train`` (ES or recurrent PPO, with exact resume)."""
from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from plasticrl.cli.common import FORCE_HELP, app, console, fail, os_error
from plasticrl.errors import PlasticRLError


@app.command()
def demo(
    args: Optional[list[str]] = typer.Argument(
        None, help="Optional CONFIG.yaml (one stage instead of the embedded two) and key=value overrides."),
    out: Path = typer.Option(Path("runs"), help="Base directory for the run directory."),
    episodes: int = typer.Option(10, help="Held-out paired episodes per evaluated condition."),
    wandb_mode: Optional[str] = typer.Option(None, "--wandb-mode", help="offline (default), online or disabled."),
) -> None:
    """The main job: train a plastic spiking controller on a task whose goal flips mid-episode, then
    measure what its within-episode learning adds against its frozen twin, and its robustness."""
    from plasticrl.config import load_config
    from plasticrl.experiments.demo import demo_configs, run_demo

    args = list(args or [])
    if wandb_mode is not None:
        args.append(f"logging.wandb.mode={wandb_mode}")
    if episodes < 1:
        fail(f"--episodes must be >= 1; got {episodes}")
    try:
        if args and "=" not in args[0]:
            configs = [load_config(Path(args.pop(0)), args)]
        else:
            configs = list(demo_configs(args))
        for cfg in configs:
            rule = getattr(getattr(cfg.policy, "plasticity", None), "rule", "-")
            console.print(f"[bold]demo[/] stage {cfg.name}: {cfg.env.id} {dict(cfg.env.kwargs)}, {cfg.policy.kind} "
                          f"({rule}), {cfg.es.algorithm}, {cfg.train.generations} generations")
        bars = {cfg.name: _TrainProgress(cfg.train.generations) for cfg in configs if cfg.logging.progress}
        started: list[str] = []

        def on_generation(stage: str, metrics: dict) -> None:
            if stage not in bars:
                return
            if stage not in started:
                for name in started:
                    bars[name].stop()
                bars[stage].start(None)
                started.append(stage)
            bars[stage].update(metrics)

        try:
            result = run_demo(configs, out, episodes=episodes, on_generation=on_generation)
        finally:
            for name in started:
                bars[name].stop()
    except PlasticRLError as exc:
        fail(str(exc))
    except OSError as exc:  # read-only or full disk, a file where a directory goes
        fail(os_error(exc))
    for cfg, stage in zip(configs, result.stages):
        console.print(f"stage {cfg.name}: best centre return {stage.best_eval_return:.1f} (generation "
                      f"{stage.best_generation}), {stage.env_steps} env steps")
    _print_demo_effect(result, episodes)
    nominal = next((r.mean for r in result.robustness if r.perturbation is None), None)
    table = Table(title=f"robustness of the plastic agent ({episodes} paired episodes per condition)")
    for col in ("condition", "mean return", "std", "change vs nominal"):
        table.add_column(col, justify="left" if col == "condition" else "right")
    for r in result.robustness:
        rel = "-" if nominal is None else f"{r.mean - nominal:+.1f}"
        table.add_row(r.name, f"{r.mean:.1f}", f"{r.std:.1f}", rel)
    console.print(table)
    _demo_ending(configs, result, episodes)


def _print_demo_effect(result, episodes: int) -> None:
    """Plastic vs frozen twin: return and reward per step after the flip, paired, with intervals."""
    effect = result.plasticity_effect()
    table = Table(title=f"plastic agent vs its frozen twin ({episodes} held-out paired episodes)")
    for col in ("agent", "mean return", "95% CI", "reward/step before flip", "after flip"):
        table.add_column(col, justify="left" if col == "agent" else "right")
    for row in result.evaluation.rows:
        rates = result.goal_adaptation(row.agent)
        table.add_row(row.agent, f"{_f(row.mean_return):.1f}", f"[{_f(row.ci_low):.1f}, {_f(row.ci_high):.1f}]",
                      f"{_f(rates.reward_rate_before if rates else None):.2f}",
                      f"{_f(rates.reward_rate_after if rates else None):.2f}")
    console.print(table)
    if effect is not None:
        console.print(f"within-episode plasticity adds {_f(effect.difference):+.1f} per episode "
                      f"[{_f(effect.low):+.1f}, {_f(effect.high):+.1f}] (plastic minus frozen twin, paired, 95% CI)")
    plastic = result.goal_adaptation("plastic")
    after = plastic.twin_difference if plastic is not None else None
    if after is not None:
        console.print(f"after the flip: {_f(after.after_minus_twin):+.2f} reward per step "
                      f"[{_f(after.after_minus_twin_low):+.2f}, {_f(after.after_minus_twin_high):+.2f}]")


def _f(value: float | None) -> float:
    """A result's number for a format: ``None`` (not finite, as the result holds it) shows as ``nan``."""
    return math.nan if value is None else value


def _demo_ending(configs: list, result, episodes: int) -> None:
    """The demo's last words: its report and plots (also in W&B), then the commands to run next."""
    from plasticrl.report.demo_report import write_demo_report

    run_dir = result.run_dir
    final = configs[-1]
    stages = {cfg.name: run_dir / (f"{i + 1}-{cfg.name}" if len(configs) > 1 else "train")
              for i, cfg in enumerate(configs)}
    paths = write_demo_report(run_dir, [r.as_dict() for r in result.robustness], final.env.id, episodes,
                              wandb_mode=final.wandb_mode(), stages=stages)
    agent = stages[final.name] / "best_agent.pt"
    say = lambda text: console.print(text, highlight=False, soft_wrap=True)  # noqa: E731 - paths unwrapped
    say(f"report: {paths['report']}")
    say(f"plots: {paths['training']}, {paths['robustness']}")
    say(f"also written: {run_dir / 'eval' / 'report.md'} (plastic vs frozen twin, with plots), "
        f"{run_dir / 'robustness.json'}, {agent}"
        + ("" if final.wandb_mode() == "disabled" else f", W&B runs under {run_dir}"))
    say("next:")
    say(f"  plasticrl eval {agent} --frozen-twins --suite novel --episodes 10   # the held-out damage suite, "
        "with the agent's frozen twin")
    say(f"  plasticrl render {agent} --out {run_dir / 'video.mp4'}   # watch what it does after the flip "
        "(it stops; it does not turn round)")
    say("  plasticrl eval pretrained:halfcheetah-dir-plastic --frozen-twins --suite nominal   # a shipped agent "
        "that does turn round (one reward-latched plastic synapse, policy.context_unit)")
    say("  plasticrl experiment configs/experiments/adaptation.yaml   # the full study: plastic vs recurrent "
        "memory vs an oracle that sees the goal (plasticrl configs lists the bundled configs)")


_RESUME_OVERRIDABLE = ("train.generations", "train.max_env_steps", "train.eval_every", "train.checkpoint_every",
                       "logging.", "distributed.")


@app.command(context_settings={"allow_extra_args": False})
def train(
    args: Optional[list[str]] = typer.Argument(
        None, help="CONFIG.yaml followed by key=value overrides (e.g. es.params.population_size=128)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory."),
    out: Optional[Path] = typer.Option(None, help="Base directory for new runs (default: logging.dir)."),
    wandb_mode: Optional[str] = typer.Option(None, "--wandb-mode", help="offline (default), online or disabled."),
    backend: Optional[str] = typer.Option(None, "--backend", help="local (default) or ray."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Existing Ray cluster (implies ray)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress display."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Train with evolution strategies (or recurrent PPO: trainer=ppo); --resume continues a killed run exactly."""
    from plasticrl.config import load_config, parse_overrides
    from plasticrl.rollouts.env_setup import check_config
    from plasticrl.trainers.runs import hold_run, new_run_dir, read_run_config
    from plasticrl.trainers.train import make_trainer

    args = list(args or [])
    config_path = None
    if args and "=" not in args[0]:
        config_path = Path(args.pop(0))
    overrides = args
    if wandb_mode is not None:
        overrides.append(f"logging.wandb.mode={wandb_mode}")
    if ray_address is not None:
        overrides += ["distributed.backend=ray", f"distributed.address={ray_address}"]
    elif backend is not None:
        overrides.append(f"distributed.backend={backend}")
    held = contextlib.ExitStack()
    try:
        if resume is not None:
            if config_path is not None:
                fail(f"give either CONFIG ({str(config_path)!r}) or --resume RUN_DIR, not both (the run keeps "
                      f"its own config.yaml; change what may change with key=value overrides)")
            for key, _ in parse_overrides(overrides):
                if not key.startswith(_RESUME_OVERRIDABLE):
                    fail(f"override {key!r} would change the run being resumed; allowed on resume: "
                          f"{', '.join(_RESUME_OVERRIDABLE)}*")
            from plasticrl.config import config_to_dict, config_from_dict, set_dotted

            data = config_to_dict(read_run_config(resume))
            # Held from here to the end, so a second process is refused before it builds anything.
            held.enter_context(hold_run(resume))
            for key, value in parse_overrides(overrides):
                set_dotted(data, key, value)
            cfg = config_from_dict(data, "resumed config")
            check_config(cfg, force=force, resuming=True)  # e.g. a --ray-address where nobody listens
            run_dir = resume
        else:
            cfg = load_config(config_path, overrides)
            check_config(cfg, force=force)  # every setting, before the run directory exists
            run_dir = new_run_dir(out or Path(cfg.logging.dir), cfg.name)
        if resume is None:  # a resume's errors (e.g. too few generations) stay one line
            console.print(f"run directory: {run_dir}")
        progress = None if quiet or not cfg.logging.progress else _TrainProgress(cfg.train.generations)
        trainer = make_trainer(cfg, run_dir, on_generation=progress.update if progress else None)
        policy = getattr(trainer, "policy", None) or getattr(trainer, "actor", None)  # ES / PPO; SB3 has none
        if getattr(policy, "kernel_reason", None):  # what policy.kernel: auto picked on this machine
            console.print(f"policy kernel: {policy.kernel} ({policy.kernel_reason})")
        if progress:
            progress.start(trainer)
        try:
            result = trainer.train(resume=resume is not None)
        finally:
            if progress:
                progress.stop()
    except PlasticRLError as exc:
        fail(str(exc))
    except OSError as exc:  # read-only or full disk, a file where a directory goes
        fail(os_error(exc))
    finally:
        held.close()
    console.print(f"done: {result.generations} generations, {result.env_steps} env steps; best evaluation "
                  f"return {result.best_eval_return:.1f} (generation {result.best_generation}); "
                  f"final {result.final_eval_return:.1f}", soft_wrap=True)
    agents = [str(run_dir / name) for name in ("best_agent.pt", "final_agent.pt") if (run_dir / name).is_file()]
    console.print(f"agents: {', '.join(agents) or 'none written'}", soft_wrap=True)


class _TrainProgress:
    """Training progress: a live bar on a terminal (fits 80 columns), plain lines otherwise.

    Shown per generation: the generation's mean fitness, the best centre evaluation so far (what
    ``best_agent.pt`` holds), env steps per second and the time left. When the output is not a
    terminal (``nohup``, SLURM, a pipe) a live bar would only appear at the end, so one line is
    printed every ``every`` generations instead (default: about 50 lines per run), plus the last.
    """

    def __init__(self, generations: int, out: Console | None = None, every: int | None = None):
        self.console = out or console
        self.generations = generations
        self.every = every or max(1, generations // 50)
        self.best: float | None = None
        self.started = 0.0
        self._before: int | None = None  # generations done before this process started
        self.progress = None
        self.task = None
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("gen"), MofNCompleteColumn(), BarColumn(bar_width=12),
                TextColumn("mean {task.fields[mean]:>8}  best {task.fields[best]:>8}"),
                TextColumn("{task.fields[sps]:>6} st/s"), TimeRemainingColumn(compact=True),
                console=self.console, transient=False,
            )

    def start(self, trainer=None) -> None:
        """Show the bar (terminal) or note the start time (lines)."""
        import time

        self.started = time.monotonic()
        if self.progress is not None:
            self.progress.start()
            self.task = self.progress.add_task("train", total=self.generations, mean="-", best="-", sps="-")

    def update(self, m: dict) -> None:
        """One generation's metrics row (``metrics.jsonl``)."""
        if m.get("best_eval_return") is not None and math.isfinite(m["best_eval_return"]):
            self.best = m["best_eval_return"]
        mean, best, sps = _fmt(m.get("fitness_mean")), _fmt(self.best), f"{m.get('env_steps_per_s', 0):.0f}"
        g = m["generation"]
        if self._before is None:
            self._before = g - 1
        if self.progress is not None:
            self.progress.update(self.task, completed=g, mean=mean, best=best, sps=sps)
        elif g % self.every == 0 or g >= self.generations or g == self._before + 1:
            import time

            elapsed = time.monotonic() - self.started
            # the rate of this process's generations (a resumed run starts part way)
            done = g - self._before
            left = _clock(elapsed / done * (self.generations - g)) if done > 0 else "-"
            width = len(str(self.generations))
            self.console.print(f"gen {g:>{width}}/{self.generations}  mean {mean}  best {best}  {sps} steps/s  "
                               f"elapsed {_clock(elapsed)}  left {left}", highlight=False, soft_wrap=True)

    def stop(self) -> None:
        """Close the bar."""
        if self.progress is not None:
            self.progress.stop()


def _fmt(value: float | None) -> str:
    """A fitness or return for the progress display; ``nan``/``inf`` shown as such, never hidden."""
    if value is None:
        return "-"
    return f"{value:.1f}" if math.isfinite(value) else str(value)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
