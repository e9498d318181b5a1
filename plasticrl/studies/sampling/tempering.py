"""Classical samplers of an RBM for the mixing study: block Gibbs and parallel tempering.

One *sample* is one block-Gibbs sweep (``h | v``, then ``v | h``) of every chain. Parallel
tempering (Swendsen & Wang 1986; Geyer 1991; for RBMs Desjardins et al. 2010) runs ``K``
replicas of each chain at inverse temperatures ``1 = beta_0 > beta_1 > ... > beta_{K-1}``
(``p_beta ∝ exp(-beta E)``: hotter replicas see flatter landscapes and cross barriers) and,
after every sweep, proposes to swap the states of neighbouring replicas, accepted with
probability ``min(1, exp((beta_i - beta_j)(E_i - E_j)))``, which keeps every replica's
distribution exact. Only the ``beta = 1`` replica is returned; a PT sample costs ``K`` sweeps.
Even and odd neighbour pairs alternate (deterministic even-odd scheme).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from plasticrl.errors import PlasticRLError
from plasticrl.studies.sampling.rbm import RBM, sample_hidden, sample_visible


class ChainSamples(NamedTuple):
    v: torch.Tensor  # [samples, chains, n_v]
    h: torch.Tensor  # [samples, chains, n_h]
    swap_rate: float  # accepted / proposed swaps (parallel tempering), nan for plain Gibbs


def _check_counts(chains: int, samples: int) -> None:
    for name, value in (("chains", chains), ("samples", samples)):
        if value < 1:
            raise PlasticRLError(f"sampler {name}={value!r} is invalid; valid: >= 1")


def energy(rbm: RBM, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``E(v, h) = -(v^T W h + b^T v + c^T h)`` over leading dimensions."""
    return -(((v @ rbm.W) * h).sum(-1) + v @ rbm.b + h @ rbm.c)


def gibbs_sample(rbm: RBM, v0: torch.Tensor, samples: int, seed: int, burn_in: int = 0) -> ChainSamples:
    """Block Gibbs from visible states ``v0 [chains, n_v]``: ``samples`` sweeps kept after ``burn_in``."""
    _check_counts(len(v0), samples)
    g = torch.Generator().manual_seed(seed)
    v, vs, hs = v0.to(rbm.W.dtype), [], []
    for t in range(burn_in + samples):
        h = sample_hidden(rbm, v, g)
        v = sample_visible(rbm, h, g)
        if t >= burn_in:
            vs.append(v)
            hs.append(h)
    return ChainSamples(torch.stack(vs), torch.stack(hs), float("nan"))


def geometric_betas(count: int, beta_min: float) -> torch.Tensor:
    """``count`` inverse temperatures from 1 down to ``beta_min``, evenly spaced in log."""
    if count < 2 or not 0 < beta_min < 1:
        raise PlasticRLError(f"tempering needs count >= 2 and 0 < beta_min < 1; got count={count}, beta_min={beta_min}")
    return torch.logspace(0.0, float(torch.log10(torch.tensor(beta_min))), count, dtype=torch.float64)


def parallel_tempering(rbm: RBM, v0: torch.Tensor, betas: torch.Tensor, samples: int, seed: int,
                       burn_in: int = 0) -> ChainSamples:
    """Parallel tempering from ``v0 [chains, n_v]`` (every replica starts there); returns the ``beta = 1`` replica."""
    _check_counts(len(v0), samples)
    if betas.dim() != 1 or len(betas) < 2 or float(betas[0]) != 1.0 or not bool((betas[1:] < betas[:-1]).all()):
        raise PlasticRLError(f"betas={betas.tolist()} are invalid; valid: decreasing, starting at 1, at least 2")
    g = torch.Generator().manual_seed(seed)
    K, C = len(betas), len(v0)
    beta = betas.to(rbm.W.dtype)[:, None, None]  # [K, 1, 1] broadcast over chains and units
    v = v0.to(rbm.W.dtype).expand(K, C, -1).clone()
    vs, hs, accepted, proposed = [], [], 0, 0
    for t in range(burn_in + samples):
        p_h = torch.sigmoid(beta * (v @ rbm.W + rbm.c))
        h = (torch.rand(p_h.shape, generator=g, dtype=p_h.dtype) < p_h).to(p_h.dtype)
        p_v = torch.sigmoid(beta * (h @ rbm.W.T + rbm.b))
        v = (torch.rand(p_v.shape, generator=g, dtype=p_v.dtype) < p_v).to(p_v.dtype)
        e = energy(rbm, v, h)  # [K, C]
        lo = torch.arange(t % 2, K - 1, 2)  # even or odd neighbour pairs (lo, lo + 1)
        if len(lo):
            hi = lo + 1
            log_ratio = (betas[lo] - betas[hi]).to(e.dtype)[:, None] * (e[lo] - e[hi])
            swap = torch.rand(log_ratio.shape, generator=g, dtype=e.dtype).log() < log_ratio  # [pairs, C]
            accepted += int(swap.sum())
            proposed += swap.numel()
            for x in (v, h):
                a, b = x[lo].clone(), x[hi].clone()
                m = swap[..., None]
                x[lo] = torch.where(m, b, a)
                x[hi] = torch.where(m, a, b)
        if t >= burn_in:
            vs.append(v[0].clone())
            hs.append(h[0].clone())
    return ChainSamples(torch.stack(vs), torch.stack(hs), accepted / max(proposed, 1))
