"""Wake-sleep fine-tuning of a Boltzmann machine whose sampler is the LIF network.

After classical CD training (:mod:`plasticrl.studies.sampling.rbm`) the weights are translated into the
LIF sampler through the activation fit (``alpha``, ``mu0``). The LIF network samples that
Boltzmann machine only approximately (non-logistic activation, exponential instead of
rectangular PSPs), so its samples drift from the data. Fine-tuning closes the loop the way
Leng et al. and Petrovici et al. train spiking samplers: each update moves the Boltzmann
parameters by the data-clamped statistics (wake; ``h`` from ``p(h | v)``, the calibrated
response of a hidden neuron to clamped visible neurons) minus the free-running statistics of
the LIF network itself (sleep). The LIF chains are persistent (carried between updates, as in
PCD), and mapped to the updated weights before every sleep phase.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from plasticrl.errors import PlasticRLError
from plasticrl.studies.sampling.lif_sampler import (
    ActivationFit,
    LIFSamplerParameters,
    _check,
    boltzmann_to_lif,
    lif_sampler_initial_state,
    lif_sampler_step,
)
from plasticrl.studies.sampling.rbm import RBM, data_statistics, rbm_to_boltzmann


class WakeSleepConfig(NamedTuple):
    updates: int = 100
    lr: float = 0.02
    batch: int = 64  # data rows per wake phase
    chains: int = 16  # persistent LIF networks
    samples: int = 20  # states read per chain in each sleep phase (one every tau_ref)
    weight_decay: float = 1e-4


def wake_sleep_finetune(rbm: RBM, data: torch.Tensor, params: LIFSamplerParameters, fit: ActivationFit,
                        config: WakeSleepConfig, seed: int) -> RBM:
    """Fine-tune ``rbm`` with LIF samples in the sleep phase; returns the new RBM (same shapes)."""
    _check(params)
    for name in ("updates", "batch", "chains", "samples"):
        if getattr(config, name) < 1:
            raise PlasticRLError(f"wake-sleep {name}={getattr(config, name)!r} is invalid; valid: >= 1")
    n_v, n_h = rbm.W.shape
    if data.dim() != 2 or data.shape[1] != n_v:
        raise PlasticRLError(f"data has shape {list(data.shape)}; expected [N, {n_v}]")
    g = torch.Generator().manual_seed(seed)
    state = lif_sampler_initial_state(config.chains, n_v + n_h, params, g, rbm.W.dtype)
    every = max(1, round(params.tau_ref / params.dt))  # read one state per refractory period
    for _ in range(config.updates):
        W, b = rbm_to_boltzmann(rbm)
        mu, w = boltzmann_to_lif(W, b, fit, params)
        zs = []
        for t in range(config.samples * every):
            z, state = lif_sampler_step(mu, w, state, params, g)
            if (t + 1) % every == 0:
                zs.append(z)
        z = torch.cat(zs)
        v_s, h_s = z[:, :n_v], z[:, n_v:]
        batch = data[torch.randint(len(data), (config.batch,), generator=g)].to(rbm.W.dtype)
        wake = data_statistics(rbm, batch)
        sleep = (v_s.T @ h_s / len(z), v_s.mean(0), h_s.mean(0))
        rbm = RBM(rbm.W + config.lr * (wake[0] - sleep[0] - config.weight_decay * rbm.W),
                  rbm.b + config.lr * (wake[1] - sleep[1]), rbm.c + config.lr * (wake[2] - sleep[2]))
    return rbm
