"""Spiking generative sampling: Boltzmann targets and LIF networks that sample them (first cut)."""
from plasticrl.sampling.boltzmann import (
    all_states,
    boltzmann_distribution,
    empirical_distribution,
    kl_divergence,
    state_codes,
)
from plasticrl.sampling.lif_sampler import (
    ActivationFit,
    LIFSamplerParameters,
    LIFSamplerState,
    boltzmann_to_lif,
    calibrate_activation,
    lif_sampler_initial_state,
    lif_sampler_step,
    sample_lif,
)

__all__ = [
    "ActivationFit", "LIFSamplerParameters", "LIFSamplerState", "all_states", "boltzmann_distribution",
    "boltzmann_to_lif", "calibrate_activation", "empirical_distribution", "kl_divergence",
    "lif_sampler_initial_state", "lif_sampler_step", "sample_lif", "state_codes",
]
