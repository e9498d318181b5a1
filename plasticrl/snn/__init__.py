"""Spiking core: neuron steps, surrogate spikes, encoders and decoders (pure functions)."""
from plasticrl.snn.decoders import membrane_decode, rate_decode
from plasticrl.snn.encoders import direct_encode, gaussian_centres, population_encode
from plasticrl.snn.neurons import (
    ALIFParameters,
    ALIFState,
    LIFParameters,
    LIFState,
    LIState,
    alif_initial_state,
    alif_step,
    decay_factor,
    lif_initial_state,
    lif_step,
    li_step,
    trace_step,
)
from plasticrl.snn.stp import (
    STPEventState,
    STPParameters,
    STPState,
    check_stp_parameters,
    stp_event,
    stp_event_initial_state,
    stp_first_efficacy,
    stp_initial_state,
    stp_retention,
    stp_step,
    stp_step_retained,
    stp_train_efficacies,
)
from plasticrl.snn.surrogate import fast_sigmoid_grad, spike_fn

__all__ = [
    "ALIFParameters", "ALIFState", "LIFParameters", "LIFState", "LIState",
    "alif_initial_state", "alif_step", "decay_factor", "direct_encode", "fast_sigmoid_grad",
    "gaussian_centres", "li_step", "lif_initial_state", "lif_step", "membrane_decode",
    "population_encode", "rate_decode", "spike_fn", "trace_step",
    "STPEventState", "STPParameters", "STPState", "check_stp_parameters", "stp_event",
    "stp_event_initial_state", "stp_first_efficacy", "stp_initial_state", "stp_retention",
    "stp_step", "stp_step_retained", "stp_train_efficacies",
]
