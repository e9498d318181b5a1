"""plasticrl: reinforcement learning with plastic spiking controllers."""
__version__ = "0.1.0"


def load(path, device="cpu", frozen=False, obs_std_floor=None):
    """Load a trained agent file (or a run directory's best agent); ``frozen=True`` sets its
    within-episode learning rates to 0; ``obs_std_floor`` bounds the std observations are divided
    by (raw units; for noisy sensors). See :mod:`plasticrl.agent`."""
    from plasticrl.agent import load as _load

    return _load(path, device=device, frozen=frozen, obs_std_floor=obs_std_floor)


__all__ = ["__version__", "load"]
