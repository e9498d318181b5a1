"""Every random draw of the package names its stream (plasticrl.seeding.Stream): no bare stream numbers."""
from __future__ import annotations

import ast
from pathlib import Path

from plasticrl.seeding import Stream

ROOT = Path(__file__).resolve().parents[1]
#: the seeding functions and the position of their stream argument
DERIVERS = {"derive_seed": 2, "derive_env_seed": 2, "derive_generator": 3}


def _stream_argument(call: ast.Call, position: int) -> ast.expr | None:
    if len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == "stream"), None)


def test_every_derived_seed_names_its_stream():
    bare = []
    for path in sorted([*ROOT.joinpath("plasticrl").rglob("*.py"), *ROOT.joinpath("agents").rglob("*.py"),
                        *ROOT.joinpath("envs").rglob("*.py")]):
        if path.is_relative_to(ROOT / "plasticrl" / "envs") or path.is_relative_to(ROOT / "plasticrl" / "agents"):
            continue  # symlinks to envs/ and agents/, read once
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DERIVERS):
                continue
            stream = _stream_argument(node, DERIVERS[node.func.id])
            named = (isinstance(stream, ast.Attribute) and isinstance(stream.value, ast.Name)
                     and stream.value.id == "Stream")
            passed_on = isinstance(stream, ast.Name) and stream.id == "stream"  # a helper's own parameter
            if not (named or passed_on):
                bare.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert bare == [], f"seeds derived without a named Stream: {bare}"


def test_stream_values_are_distinct_and_keep_their_numbers():
    # An IntEnum makes a repeated value an alias silently: two consumers would share draws.
    values = [member.value for member in Stream.__members__.values()]
    assert len(values) == len(set(values))
    # The numbers the ES draws used before they were named (saved runs repeat their draws with them).
    assert (Stream.ES_SAMPLING, Stream.CMA_ES_SAMPLER, Stream.ES_INIT_NOISE) == (0, 1, 7)
