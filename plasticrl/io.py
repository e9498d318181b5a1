"""Crash-safe file writes: write to a temporary file in the same directory, then rename.

``os.replace`` is atomic on POSIX and Windows, so a reader (or a resumed run) sees either
the old complete file or the new complete file, never a torn one. A write killed before its
rename leaves a ``.<name>.<random>.tmp`` file behind; :func:`remove_stale_temporaries` clears
them when a run starts or resumes.

JSON has no NaN or infinity: every JSON file and line plasticrl writes goes through
:func:`json_safe`, which writes each non-finite float as ``null`` (the one convention for
``summary.json``, ``metrics.jsonl``, ``eval.json`` and the rest).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

#: how the temporary file of an atomic write of ``name`` is named: ``.<name>.<random>.tmp``
TMP_PREFIX = "."
TMP_SUFFIX = ".tmp"


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +inf, -inf, also as numpy or 0-d torch scalars) as
    ``None``, inside dicts, lists and tuples too: strict JSON has no such numbers, so they are written
    as ``null``. Readers treat ``null`` as "no finite value"."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0 and not isinstance(value, (str, bytes)):
        # numpy and torch scalars: a numpy float64 is a float already; float32 and 0-d tensors are not
        return json_safe(value.item())
    return value


def json_dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`json_safe` (``obj``) that can only produce strict JSON (``allow_nan=False``)."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def _umask() -> int:
    """The process umask, read without changing it where ``/proc`` tells it (``os.umask`` must set it
    to read it, which races with other threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that atomic writes killed before their rename left in ``directory``
    (not in its subdirectories); returns what was removed. Call it only while no other process writes
    there (a run holds its directory's lock)."""
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for path in directory.glob(f"{TMP_PREFIX}*{TMP_SUFFIX}"):
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a synced temporary file and an atomic rename; return the path.

    Missing parent directories are created; on any error the temporary file is removed and
    ``path`` keeps its previous content. The file gets the mode an ordinary ``open`` would give it
    (``0o666`` less the umask), not ``mkstemp``'s private ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.", suffix=TMP_SUFFIX)
    try:
        if hasattr(os, "fchmod"):  # POSIX; Windows files have no such mode bits
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented strict JSON with sorted keys to ``path`` atomically: non-finite floats
    as ``null`` (:func:`json_safe`), ``str`` for other types."""
    return atomic_write_text(path, json_dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` through a temporary file and an atomic rename."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def torch_load(path: str | os.PathLike) -> Any:
    """Load a file written by :func:`atomic_torch_save` (plain data only: no code runs). A file that is
    missing, empty, truncated, not a torch file or holds more than plain data raises
    :class:`~plasticrl.errors.PlasticRLError` naming it and the cause (one line)."""
    import torch

    from plasticrl.errors import PlasticRLError

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever the file holds: one line, no traceback
        size = os.path.getsize(path) if os.path.isfile(path) else None
        why = "it is empty" if size == 0 else "it is truncated, corrupt or not a plasticrl file"
        detail = " ".join(str(exc).split())[:200]
        raise PlasticRLError(f"cannot read {str(path)!r}: {why} ({type(exc).__name__}: {detail})") from None
