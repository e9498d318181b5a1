"""``plasticrl demo`` (the main job) and ``plasticrl train`` (ES or recurrent PPO, with exact resume)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from plasticrl.cli.common import app, console, fail
from plasticrl.errors import PlasticRLError


@app.command()
def demo(
    args: Optional[list[str]] = typer.Argument(
        None, help="Optional CONFIG.yaml (default: the embedded demo) and key=value overrides."),
    out: Path = typer.Option(Path("runs"), help="Base directory for the run directory."),
    episodes: int = typer.Option(5, help="Paired episodes per robustness condition."),
    wandb_mode: Optional[str] = typer.Option(None, "--wandb-mode", help="offline (default), online or disabled."),
) -> None:
    """The main job: train a plastic spiking controller briefly, then test it under perturbations."""
    from plasticrl.config import load_config
    from plasticrl.experiments.demo import demo_config, run_demo

    args = list(args or [])
    if wandb_mode is not None:
        args.append(f"logging.wandb.mode={wandb_mode}")
    try:
        if args and "=" not in args[0]:
            path = Path(args.pop(0))
            cfg = load_config(path, args)
        else:
            cfg = demo_config(args)
        console.print(f"[bold]demo[/]: {cfg.env.id}, {cfg.policy.kind} "
                      f"({getattr(getattr(cfg.policy, 'plasticity', None), 'rule', '-')}), "
                      f"{cfg.es.algorithm}, {cfg.train.generations} generations")
        progress = _TrainProgress(cfg.train.generations) if cfg.logging.progress else None
        if progress:
            progress.start(None)
        try:
            result, robustness, run_dir = run_demo(cfg, out, episodes=episodes,
                                                   on_generation=progress.update if progress else None)
        finally:
            if progress:
                progress.stop()
    except PlasticRLError as exc:
        fail(str(exc))
    console.print(f"trained: best centre return {result.best_eval_return:.1f} (generation {result.best_generation}), "
                  f"{result.env_steps} env steps; run directory {run_dir}")
    nominal = next((r.mean for r in robustness if r.perturbation is None), None)
    table = Table(title=f"robustness of the best agent ({episodes} paired episodes per condition)")
    for col in ("condition", "mean return", "std", "change vs nominal"):
        table.add_column(col, justify="left" if col == "condition" else "right")
    for r in robustness:
        rel = "-" if nominal is None else f"{r.mean - nominal:+.1f}"
        table.add_row(r.name, f"{r.mean:.1f}", f"{r.std:.1f}", rel)
    console.print(table)
    _demo_ending(cfg, run_dir, robustness, episodes)


def _demo_ending(cfg, run_dir: Path, robustness: list, episodes: int) -> None:
    """The demo's last words: its report and plots (also in W&B), then the commands to run next."""
    from plasticrl.report.demo_report import write_demo_report

    paths = write_demo_report(run_dir, [r.as_dict() for r in robustness], cfg.env.id, episodes,
                              wandb_mode=cfg.wandb_mode())
    agent = run_dir / "best_agent.pt"
    say = lambda text: console.print(text, highlight=False, soft_wrap=True)  # noqa: E731 - paths unwrapped
    say(f"report: {paths['report']}")
    say(f"plots: {paths['training']}, {paths['robustness']}")
    say(f"also written: {run_dir / 'robustness.json'}, {run_dir / 'metrics.jsonl'}, {agent}, "
        f"{run_dir / 'final_agent.pt'}" + ("" if cfg.wandb_mode() == "disabled" else f", W&B runs in {run_dir / 'wandb'}"))
    say("next:")
    say(f"  plasticrl eval {agent} --frozen-twins --episodes 10   # the whole held-out suite, with the "
        "agent's frozen twin: report.md and plots")
    say(f"  plasticrl render {agent} --condition dead_actuator_mid@mild --out {run_dir / 'video.mp4'}")
    from plasticrl.config import list_configs

    full = f"{cfg.env.id.split('-')[0].lower()}/bcm_modulated"
    say(f"  plasticrl train {full}   # a full training run (plasticrl configs lists the configs)"
        if full in list_configs() else "  plasticrl configs   # the bundled configs, for a full training run")


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
) -> None:
    """Train with evolution strategies (or recurrent PPO: trainer=ppo); --resume continues a killed run exactly."""
    from plasticrl.config import load_config, parse_overrides
    from plasticrl.trainers.runs import new_run_dir, read_run_config
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
            for key, value in parse_overrides(overrides):
                set_dotted(data, key, value)
            cfg = config_from_dict(data, "resumed config")
            run_dir = resume
        else:
            cfg = load_config(config_path, overrides)
            run_dir = new_run_dir(out or Path(cfg.logging.dir), cfg.name)
        console.print(f"run directory: {run_dir}")
        progress = None if quiet or not cfg.logging.progress else _TrainProgress(cfg.train.generations)
        trainer = make_trainer(cfg, run_dir, on_generation=progress.update if progress else None)
        if progress:
            progress.start(trainer)
        try:
            result = trainer.train(resume=resume is not None)
        finally:
            if progress:
                progress.stop()
    except PlasticRLError as exc:
        fail(str(exc))
    console.print(f"done: {result.generations} generations, {result.env_steps} env steps; best evaluation "
                  f"return {result.best_eval_return:.1f} (generation {result.best_generation}); "
                  f"final {result.final_eval_return:.1f}", soft_wrap=True)
    console.print(f"agents: {run_dir / 'best_agent.pt'}, {run_dir / 'final_agent.pt'}", soft_wrap=True)


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
