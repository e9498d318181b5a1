"""What every command module shares: the typer app, the console, the one error formatter."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from plasticrl.errors import PlasticRLError

app = typer.Typer(
    help="plasticrl: reinforcement learning with plastic spiking controllers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
#: help of every command's --force (the memory guard of plasticrl.rollouts.memory)
FORCE_HELP = ("Skip the memory guard: run even when the estimated memory exceeds the limit (80% of the "
              "available memory, or $PLASTICRL_MEMORY_LIMIT).")


def _print_version(value: bool) -> None:
    if value:
        from plasticrl import __version__

        console.print(f"plasticrl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """plasticrl: reinforcement learning with plastic spiking controllers."""


def fail(message: str) -> NoReturn:
    """Print one ``error:`` line and exit with code 2 (a user error, never a traceback)."""
    # escape: a message quoting '[...]' must not be read as console markup; soft_wrap: one line, unfolded
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code=2)


def os_error(exc: OSError) -> str:
    """One line for a file-system error (read-only or full disk, a file where a directory should be)."""
    where = f" {str(exc.filename)!r}" if exc.filename else ""
    return f"cannot write or read{where}: {exc.strerror or exc}"


def stamp() -> str:
    """A timestamp for default output directories (``runs/eval-<stamp>``)."""
    return time.strftime("%Y%m%d-%H%M%S")


def load_yaml_file(path: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping, or one error line (missing file, bad YAML, not a mapping)."""
    from plasticrl.config import load_yaml

    if not path.is_file():
        fail(f"config file {str(path)!r} does not exist")
    try:
        data = load_yaml(path.read_bytes(), f"config file {str(path)!r}") or {}
    except PlasticRLError as exc:
        fail(str(exc))
    if not isinstance(data, dict):
        fail(f"config file {str(path)!r} must hold a mapping at the top level, not {type(data).__name__}")
    return data


class StepProgress:
    """Progress over control steps: rich bars on a terminal; when the output is not a terminal
    (``nohup``, SLURM, a pipe) the subclass prints a line at every tenth instead (``self.bars`` is None).
    A context manager: the bars show between enter and exit."""

    def __init__(self, out: Console | None = None, bar_width: int = 20, label: str = "{task.description}",
                 transient: bool = False) -> None:
        self.console = out or console
        self.bars = None
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bars = Progress(TextColumn(label), BarColumn(bar_width=bar_width), MofNCompleteColumn(),
                                 TextColumn("steps"), TimeElapsedColumn(), console=self.console, transient=transient)

    def __enter__(self):
        if self.bars is not None:
            self.bars.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bars is not None:
            self.bars.stop()
