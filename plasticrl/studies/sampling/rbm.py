"""Restricted Boltzmann machines: exact quantities for small hidden layers and CD-k training.

``p(v, h) ∝ exp(v^T W h + b^T v + c^T h)`` with binary visible ``v [n_v]`` and hidden ``h [n_h]``.
The hidden layer is kept small (``n_h <= 16``) so that everything can be computed exactly by
summing over the ``2^n_h`` hidden states, whatever the number of visible units: the partition
function, the data log-likelihood and its gradient, the hidden marginal ``p(h)`` and i.i.d.
samples of the model (draw ``h`` from ``p(h)``, then ``v | h``). These exact answers are the
references for the samplers (Gibbs, tempering, LIF) and for the tests of training.

Training is classical contrastive divergence (Hinton 2002): the data-clamped statistics
``<v h>_data`` (with ``h`` replaced by ``p(h | v)``) minus those after ``k`` block-Gibbs sweeps
started at the data; ``persistent=True`` keeps the negative chains between updates (PCD,
Tieleman 2008), which gives a less biased gradient. A trained RBM becomes a fully connected
Boltzmann machine over ``[v, h]`` (:func:`rbm_to_boltzmann`) for the LIF sampler.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from plasticrl.errors import PlasticRLError
from plasticrl.studies.sampling.boltzmann import MAX_ENUMERATED_NEURONS, all_states


class RBM(NamedTuple):
    W: torch.Tensor  # [n_v, n_h]
    b: torch.Tensor  # visible biases [n_v]
    c: torch.Tensor  # hidden biases [n_h]


class CDConfig(NamedTuple):
    """Contrastive-divergence training settings."""

    n_hidden: int = 10
    epochs: int = 200
    lr: float = 0.05
    k: int = 1  # Gibbs sweeps in the negative phase
    batch: int = 32
    persistent: bool = False  # PCD: negative chains carried over between updates
    weight_decay: float = 1e-4
    init_std: float = 0.01
    lr_final: float = 1.0  # the learning rate decays linearly to lr * lr_final over training (PCD needs < 1)


def rbm_init(n_visible: int, n_hidden: int, data_mean: torch.Tensor | None, generator: torch.Generator,
             init_std: float = 0.01) -> RBM:
    """Small random weights, visible biases at the data's log-odds (Hinton's practical guide), zero hidden biases."""
    if not 1 <= n_hidden <= MAX_ENUMERATED_NEURONS:
        raise PlasticRLError(f"n_hidden={n_hidden} is invalid; valid: 1 <= n_hidden <= {MAX_ENUMERATED_NEURONS}")
    W = init_std * torch.randn(n_visible, n_hidden, generator=generator, dtype=torch.float64)
    if data_mean is None:
        b = torch.zeros(n_visible, dtype=torch.float64)
    else:
        p = data_mean.to(torch.float64).clamp(0.01, 0.99)
        b = torch.log(p / (1 - p))
    return RBM(W, b, torch.zeros(n_hidden, dtype=torch.float64))


def _check_data(rbm: RBM, v: torch.Tensor) -> None:
    if v.dim() != 2 or v.shape[1] != rbm.W.shape[0]:
        raise PlasticRLError(f"data has shape {list(v.shape)}; expected [N, {rbm.W.shape[0]}] binary rows")


def free_energy(rbm: RBM, v: torch.Tensor) -> torch.Tensor:
    """``-log sum_h exp(-E(v, h))`` for each row of ``v [N, n_v]`` (hidden units summed out)."""
    return -(v @ rbm.b) - torch.nn.functional.softplus(v @ rbm.W + rbm.c).sum(-1)


def hidden_log_weights(rbm: RBM) -> tuple[torch.Tensor, torch.Tensor]:
    """All hidden states ``H [2^n_h, n_h]`` and ``log sum_v exp(-E(v, h))`` for each (visible units summed out)."""
    H = all_states(rbm.W.shape[1], rbm.W.dtype)
    return H, H @ rbm.c + torch.nn.functional.softplus(H @ rbm.W.T + rbm.b).sum(-1)


def log_partition(rbm: RBM) -> torch.Tensor:
    """Exact ``log Z`` by summing over the hidden states."""
    return torch.logsumexp(hidden_log_weights(rbm)[1], 0)


def log_likelihood(rbm: RBM, v: torch.Tensor) -> float:
    """Exact mean ``log p(v)`` over the rows of ``v`` (nats per example)."""
    _check_data(rbm, v)
    return float((-free_energy(rbm, v)).mean() - log_partition(rbm))


def hidden_marginal(rbm: RBM) -> torch.Tensor:
    """Exact ``p(h)`` over all hidden states, code order (first hidden unit = most significant bit)."""
    return torch.softmax(hidden_log_weights(rbm)[1], 0)


def model_statistics(rbm: RBM) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact ``(<v h^T>, <v>, <h>)`` under the model."""
    H, logw = hidden_log_weights(rbm)
    ph = torch.softmax(logw, 0)  # p(h)
    pv_given_h = torch.sigmoid(H @ rbm.W.T + rbm.b)  # E[v | h]
    vh = (pv_given_h * ph[:, None]).T @ H
    return vh, ph @ pv_given_h, ph @ H


def data_statistics(rbm: RBM, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Data-clamped ``(<v h^T>, <v>, <h>)`` with ``h`` replaced by ``p(h | v)`` (Rao-Blackwellised)."""
    ph = torch.sigmoid(v @ rbm.W + rbm.c)
    return v.T @ ph / len(v), v.mean(0), ph.mean(0)


def exact_gradient(rbm: RBM, v: torch.Tensor) -> RBM:
    """Exact gradient of the mean log-likelihood: data statistics minus model statistics."""
    _check_data(rbm, v)
    d, m = data_statistics(rbm, v), model_statistics(rbm)
    return RBM(d[0] - m[0], d[1] - m[1], d[2] - m[2])


def sample_hidden(rbm: RBM, v: torch.Tensor, generator: torch.Generator, beta: float = 1.0) -> torch.Tensor:
    """``h ~ p(h | v)`` at inverse temperature ``beta``."""
    p = torch.sigmoid(beta * (v @ rbm.W + rbm.c))
    return (torch.rand(p.shape, generator=generator, dtype=p.dtype) < p).to(p.dtype)


def sample_visible(rbm: RBM, h: torch.Tensor, generator: torch.Generator, beta: float = 1.0) -> torch.Tensor:
    """``v ~ p(v | h)`` at inverse temperature ``beta``."""
    p = torch.sigmoid(beta * (h @ rbm.W.T + rbm.b))
    return (torch.rand(p.shape, generator=generator, dtype=p.dtype) < p).to(p.dtype)


def sample_exact(rbm: RBM, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` independent samples ``(v, h)`` of the model itself: ``h ~ p(h)`` exactly, then ``v | h``."""
    H = all_states(rbm.W.shape[1], rbm.W.dtype)
    index = torch.multinomial(hidden_marginal(rbm), count, replacement=True, generator=generator)
    h = H[index]
    return sample_visible(rbm, h, generator), h


def cd_gradient(rbm: RBM, v: torch.Tensor, k: int, generator: torch.Generator,
                negative_start: torch.Tensor | None = None) -> tuple[RBM, torch.Tensor]:
    """CD-k estimate of the log-likelihood gradient on the batch ``v``.

    The negative chains start at ``negative_start`` (PCD) or at the data (CD). Returns the
    gradient estimate and the negative chains' final visible states.
    """
    if k < 1:
        raise PlasticRLError(f"CD k={k!r} is invalid; valid: k >= 1")
    d = data_statistics(rbm, v)
    neg = v if negative_start is None else negative_start
    for _ in range(k):
        neg = sample_visible(rbm, sample_hidden(rbm, neg, generator), generator)
    ph = torch.sigmoid(neg @ rbm.W + rbm.c)  # Rao-Blackwellised hidden statistics of the negative samples
    grad = RBM(d[0] - neg.T @ ph / len(neg), d[1] - neg.mean(0), d[2] - ph.mean(0))
    return grad, neg


def train_cd(data: torch.Tensor, config: CDConfig, seed: int, log_every: int = 0) -> tuple[RBM, list[float]]:
    """Train an RBM by CD-k (or PCD-k) with plain SGD; returns it and the exact log-likelihood every ``log_every`` epochs.

    ``log_every = 0`` logs only before and after training.
    """
    if data.dim() != 2 or not bool(((data == 0) | (data == 1)).all()):
        raise PlasticRLError("training data must be a [N, n_visible] tensor of zeros and ones")
    for name in ("epochs", "batch", "k"):
        if getattr(config, name) < 1:
            raise PlasticRLError(f"CD {name}={getattr(config, name)!r} is invalid; valid: >= 1")
    if not config.lr > 0:
        raise PlasticRLError(f"CD lr={config.lr!r} is invalid; valid: > 0")
    data = data.to(torch.float64)
    g = torch.Generator().manual_seed(seed)
    rbm = rbm_init(data.shape[1], config.n_hidden, data.mean(0), g, config.init_std)
    history = [log_likelihood(rbm, data)]
    persistent = None
    if config.persistent:
        persistent = data[torch.randint(len(data), (config.batch,), generator=g)]
    for epoch in range(config.epochs):
        lr = config.lr * (1.0 + (config.lr_final - 1.0) * epoch / config.epochs)
        order = torch.randperm(len(data), generator=g)
        for start in range(0, len(data), config.batch):
            v = data[order[start:start + config.batch]]
            start_state = None if persistent is None else persistent[: len(v)]
            grad, neg = cd_gradient(rbm, v, config.k, g, start_state)
            if persistent is not None:
                persistent = torch.cat([neg, persistent[len(v):]])
            rbm = RBM(rbm.W + lr * (grad.W - config.weight_decay * rbm.W), rbm.b + lr * grad.b, rbm.c + lr * grad.c)
        if log_every and (epoch + 1) % log_every == 0 and epoch + 1 < config.epochs:
            history.append(log_likelihood(rbm, data))
    history.append(log_likelihood(rbm, data))
    return rbm, history


def rbm_to_boltzmann(rbm: RBM) -> tuple[torch.Tensor, torch.Tensor]:
    """The same distribution as a fully connected Boltzmann machine over ``z = [v, h]``: ``(W [n, n], b [n])``."""
    n_v, n_h = rbm.W.shape
    W = torch.zeros(n_v + n_h, n_v + n_h, dtype=rbm.W.dtype)
    W[:n_v, n_v:] = rbm.W
    W[n_v:, :n_v] = rbm.W.T
    return W, torch.cat([rbm.b, rbm.c])


def boltzmann_to_rbm(weights: torch.Tensor, bias: torch.Tensor, n_visible: int) -> RBM:
    """Inverse of :func:`rbm_to_boltzmann` (the visible-visible and hidden-hidden blocks must be zero)."""
    n = bias.shape[0]
    if not 0 < n_visible < n or weights.shape != (n, n):
        raise PlasticRLError(f"n_visible={n_visible} does not split a {n}-unit Boltzmann machine; valid: 0 < n_visible < {n}")
    if bool(weights[:n_visible, :n_visible].ne(0).any()) or bool(weights[n_visible:, n_visible:].ne(0).any()):
        raise PlasticRLError("not a restricted Boltzmann machine: visible-visible or hidden-hidden weights are nonzero")
    return RBM(weights[:n_visible, n_visible:].clone(), bias[:n_visible].clone(), bias[n_visible:].clone())
