"""Command-line interface: ``plasticrl <command> --help`` documents each command."""
from plasticrl.cli.app import app, main

__all__ = ["app", "main"]
