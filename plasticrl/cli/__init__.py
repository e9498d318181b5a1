"""Command-line interface: ``plasticrl <command> --help`` documents each command.

One module per command group, all registering on the one typer app of :mod:`plasticrl.cli.common`
(which also holds the one error formatter, :func:`~plasticrl.cli.common.fail`):
``train`` (demo, train), ``inspect`` (envs, genome, bench), ``evaluate`` (eval, report), ``baseline``,
``render``, ``experiment``, ``configs`` (the bundled configs).
"""
# Importing a command module registers its commands; this order is the order `plasticrl --help` lists them.
from plasticrl.cli import train  # noqa: F401,I001
from plasticrl.cli import evaluate  # noqa: F401,I001
from plasticrl.cli import experiment  # noqa: F401,I001
from plasticrl.cli import baseline  # noqa: F401,I001
from plasticrl.cli import render  # noqa: F401,I001
from plasticrl.cli import inspect  # noqa: F401,I001
from plasticrl.cli import configs  # noqa: F401,I001
from plasticrl.cli.common import app


def main() -> None:  # pragma: no cover - console-script entry
    """The ``plasticrl`` console script."""
    app()


__all__ = ["app", "main"]
