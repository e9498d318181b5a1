"""What every CLI error path must look like (imported by the tests of bad input)."""
from __future__ import annotations

from pathlib import Path


def assert_one_line_error(res, *named: str) -> str:
    """``res`` (a typer CliRunner result) failed with exit code != 0 through the CLI's own error
    path (not an uncaught exception), printing exactly one non-empty line that starts with
    ``error:``, names every string in ``named`` and holds no traceback. Returns the line."""
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code != 0, res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)  # typer.Exit, not a crash
    assert "Traceback" not in res.output, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for text in named:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def entries(directory: Path) -> list[str]:
    """Names in ``directory`` (empty if it does not exist): to show that no run directory appeared."""
    return sorted(p.name for p in Path(directory).iterdir()) if Path(directory).exists() else []
