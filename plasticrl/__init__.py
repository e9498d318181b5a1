"""plasticrl: reinforcement learning with plastic spiking controllers."""
__version__ = "0.1.0"


def load(path, device="cpu"):
    """Load a trained agent file (or a run directory's best agent); see :mod:`plasticrl.agent`."""
    from plasticrl.agent import load as _load

    return _load(path, device=device)


__all__ = ["__version__", "load"]
