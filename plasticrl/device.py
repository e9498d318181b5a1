"""One place where device and dtype are resolved, so CPU and CUDA share the code path."""
from __future__ import annotations

import torch

from plasticrl.errors import PlasticRLError

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(device: str | torch.device | None = "cpu") -> torch.device:
    """Turn a config value (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``) into a device.

    Denormal floats are flushed on CPU: decaying traces and potentials otherwise drift into
    the subnormal range, where CPU arithmetic is orders of magnitude slower.
    """
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise PlasticRLError(f"unknown device {device!r}; valid choices: auto, cpu, cuda, cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PlasticRLError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    if dev.type == "cpu":
        torch.set_flush_denormal(True)
    return dev


def resolve_dtype(dtype: str | torch.dtype = "float32") -> torch.dtype:
    """Map a config dtype name to a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise PlasticRLError(f"unknown dtype {dtype!r}; valid choices: {', '.join(_DTYPES)}")
    return _DTYPES[dtype]
