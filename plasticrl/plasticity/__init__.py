"""Local plasticity rules as pure functions of pre/post activity, weights and coefficients."""
from plasticrl.plasticity.bcm import bcm_threshold_step, bcm_update
from plasticrl.plasticity.csdp import (
    contrastive_signal,
    csdp_update,
    goodness,
    goodness_probability,
    readout_update,
)
from plasticrl.plasticity.bounds import BOUND_KINDS, bound_weights, clip_weights, normalise_by_max
from plasticrl.plasticity.hebbian import hebbian_abcd_update
from plasticrl.plasticity.modulation import (
    MODULATION_SOURCES,
    MODULATOR_SCOPES,
    eligibility_step,
    modulate,
    modulatory_neurons,
    rpe_step,
)
from plasticrl.plasticity.oja import oja_update
from plasticrl.plasticity.rules import RULES, RuleSpec, get_rule, register_rule, rule_delta
from plasticrl.plasticity.sharing import SHARING_LEVELS, coefficient_shape
from plasticrl.plasticity.synapse import SynapseSettings, SynapseState, global_modulator, synapse_step

__all__ = [
    "contrastive_signal", "csdp_update", "goodness", "goodness_probability",
    "readout_update",
    "BOUND_KINDS", "MODULATION_SOURCES", "MODULATOR_SCOPES", "RULES", "RuleSpec", "register_rule", "SHARING_LEVELS",
    "bcm_threshold_step", "bcm_update", "bound_weights", "clip_weights", "coefficient_shape",
    "eligibility_step", "get_rule", "hebbian_abcd_update", "modulate", "modulatory_neurons",
    "normalise_by_max", "oja_update", "rpe_step", "rule_delta",
    "SynapseSettings", "SynapseState", "global_modulator", "synapse_step",
]
