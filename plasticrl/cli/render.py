"""``plasticrl render``: an offscreen video of one episode of an agent."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from plasticrl.cli.common import StepProgress, app, console, fail, os_error
from plasticrl.errors import PlasticRLError


@app.command("render")
def render_cmd(
    agent: Path = typer.Argument(..., help="Agent file (.pt or run directory) or SB3 model (.zip)."),
    out: Path = typer.Option(Path("video.mp4"), help="Video file: .mp4 or .gif."),
    condition: Optional[str] = typer.Option(None, help="A suite condition name (novel, morphology or "
                                            "motor_failure; e.g. remove_limb_mid@mild, short_back_left) or a JSON "
                                            "perturbation; nominal if omitted."),
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
    from plasticrl.report.render import gl_backend, render_video

    try:
        if wandb:  # a bad mode is refused before the episode is rendered
            from plasticrl.config import resolve_wandb_mode

            mode = resolve_wandb_mode(wandb_mode)
        kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
        header = (f"rendering {agent} ({condition or 'nominal'}, at most {steps} steps, {width}x{height}, "
                  f"MUJOCO_GL={gl_backend()}) to {out}")
        with _RenderProgress(header) as progress:
            summary = render_video(agent, out, env, condition, steps, width, height, seed, fps, frames_dir, kwargs,
                                   trust_pickle=trust_pickle, progress=progress)
        if wandb:
            from plasticrl.report.wandb_log import log_video

            log_video(out, summary, mode)
    except PlasticRLError as exc:
        fail(str(exc))
    except OSError as exc:  # read-only or full disk, a file where a directory goes
        fail(os_error(exc))
    console.print(f"rendered {summary['length']} frames of {summary['width']}x{summary['height']} "
                  f"({summary['condition']}, return {summary['return']:.1f}, MUJOCO_GL={summary['backend']}) "
                  f"to {out}")


class _RenderProgress(StepProgress):
    """``header`` once the inputs are valid, then the rendered steps: a bar on a terminal, a line at every
    tenth otherwise; then 'encoding'."""

    def __init__(self, header: str) -> None:
        super().__init__(bar_width=30, label="render", transient=True)
        self.header = header
        self.task = None
        self.shown = 0

    def __call__(self, done: int, steps: int) -> None:
        if done == 0:  # the inputs are valid: said at once, as the render process takes seconds to start
            console.print(self.header, highlight=False, soft_wrap=True)
            return
        if done < 0:  # the episode is over; frames are being encoded
            if self.bars is not None:
                self.bars.stop()
            console.print("encoding the video", highlight=False)
            return
        if self.bars is not None:
            if self.task is None:
                self.task = self.bars.add_task("render", total=steps)
            self.bars.update(self.task, completed=done)
        elif 10 * done // max(steps, 1) > self.shown:
            self.shown = 10 * done // max(steps, 1)
            console.print(f"render: {done}/{steps} steps", highlight=False)
