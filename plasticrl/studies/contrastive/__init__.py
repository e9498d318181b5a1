"""Contrastive learning models built on the CSDP rule and the phase schedules.

- ``data``: sklearn's digits with a fixed, seeded 80/20 split.
- ``negatives``: negative samples (wrong labels; mixed or corrupted inputs).
- ``csdp_net``: recurrent spiking layers trained by CSDP, with a local readout.
- ``chl``: a rate network trained by contrastive Hebbian learning (online, flexible phases).
- ``probe``: linear probe (logistic regression) on learned features.
"""
from plasticrl.studies.contrastive.chl import (
    CHL_RULES,
    CHLConfig,
    CHLParams,
    chl_apply,
    chl_init,
    chl_predict,
    chl_train,
    chl_train_epoch,
)
from plasticrl.studies.contrastive.csdp_net import (
    CSDPConfig,
    CSDPParams,
    csdp_features,
    csdp_init,
    csdp_predict,
    csdp_train_epoch,
)
from plasticrl.studies.contrastive.data import DigitsSplit, load_digits_split
from plasticrl.studies.contrastive.negatives import (
    NEGATIVE_KINDS,
    make_negatives,
    mix_inputs,
    wrong_labels,
)
from plasticrl.studies.contrastive.probe import linear_probe

__all__ = [
    "CHL_RULES",
    "NEGATIVE_KINDS",
    "CHLConfig",
    "CHLParams",
    "CSDPConfig",
    "CSDPParams",
    "DigitsSplit",
    "chl_apply",
    "chl_init",
    "chl_predict",
    "chl_train",
    "chl_train_epoch",
    "csdp_features",
    "csdp_init",
    "csdp_predict",
    "csdp_train_epoch",
    "linear_probe",
    "load_digits_split",
    "make_negatives",
    "mix_inputs",
    "wrong_labels",
]
