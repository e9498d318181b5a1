"""Spiking generative sampling: Boltzmann targets, LIF networks that sample them, RBM training and mixing.

Modules: :mod:`~plasticrl.studies.sampling.boltzmann` (exact distributions), :mod:`~plasticrl.studies.sampling.lif_sampler`
(LIF sampler, optional short-term depression), :mod:`~plasticrl.studies.sampling.rbm` (exact RBM quantities, CD-k),
:mod:`~plasticrl.studies.sampling.wake_sleep` (fine-tuning with LIF sleep samples), :mod:`~plasticrl.studies.sampling.tempering`
(Gibbs, parallel tempering), :mod:`~plasticrl.studies.sampling.mixing` (mode switches, class proportions) and
:mod:`~plasticrl.studies.sampling.data` (binarised digits, bars and stripes).
"""
from plasticrl.studies.sampling.boltzmann import (
    all_states,
    boltzmann_distribution,
    empirical_distribution,
    kl_divergence,
    state_codes,
)
from plasticrl.studies.sampling.lif_sampler import (
    ActivationFit,
    LIFSamplerParameters,
    LIFSamplerState,
    boltzmann_to_lif,
    calibrate_activation,
    lif_sampler_initial_state,
    lif_sampler_step,
    sample_lif,
)
from plasticrl.studies.sampling.rbm import (
    RBM,
    CDConfig,
    log_likelihood,
    rbm_to_boltzmann,
    train_cd,
)
from plasticrl.studies.sampling.wake_sleep import WakeSleepConfig, wake_sleep_finetune

__all__ = [
    "RBM", "ActivationFit", "CDConfig", "LIFSamplerParameters", "LIFSamplerState", "WakeSleepConfig", "all_states",
    "boltzmann_distribution", "boltzmann_to_lif", "calibrate_activation", "empirical_distribution", "kl_divergence",
    "lif_sampler_initial_state", "lif_sampler_step", "log_likelihood", "rbm_to_boltzmann", "sample_lif",
    "state_codes", "train_cd", "wake_sleep_finetune",
]
