"""Contrastive-signal-dependent plasticity (CSDP; Ororbia 2023/2024) as pure functions.

A layer's *goodness* is the sum of its squared activity traces, ``g = sum_j z_j^2``. The layer
reads it as the probability that what it sees is a positive (real, correctly labelled)
sample: ``p = sigmoid(g - theta)``. Each neuron's *contrastive signal* is the derivative of
the log-likelihood of the true sample type ``s`` (1 positive, 0 negative) with respect to its
own trace::

    d_j = d/dz_j log p(s | z) = (s - p) * 2 z_j

and a synapse ``i -> j`` moves along that signal times its presynaptic activity::

    dW_ji = eta * mean_b  w_b * d_bj * x_bi  -  eta * decay * W_ji

so positives are potentiated (Hebbian) until the layer is confident and negatives are
depressed (anti-Hebbian) until it is confident the other way. Everything a synapse needs is
local: its presynaptic activity, its postsynaptic trace, and the layer's own goodness (a
scalar that the layer computes, no feedback from other layers).

Shapes: the sample (batch) dimension ``B`` sits just before the feature dimension, and any
leading dimensions (population ``P``) are carried through, so ``pre [P, B, in]`` and
``post [P, B, out]`` give ``dW [P, out, in]``; plain ``[B, in]`` / ``[B, out]`` give
``[out, in]``.
"""
from __future__ import annotations

import torch

from plasticrl.errors import PlasticRLError

Scalar = float | torch.Tensor


def goodness(trace: torch.Tensor) -> torch.Tensor:
    """Sum of squared traces over the last (neuron) dimension: ``[..., n] -> [...]``."""
    return (trace * trace).sum(dim=-1)


def goodness_probability(trace: torch.Tensor, theta: Scalar) -> torch.Tensor:
    """``sigmoid(goodness - theta)``: the layer's belief that its input is a positive sample."""
    return torch.sigmoid(goodness(trace) - theta)


def contrastive_signal(trace: torch.Tensor, positive: torch.Tensor, theta: Scalar) -> torch.Tensor:
    """Per-neuron signal ``(s - p) * 2 z``: the gradient of ``log p(s | z)`` w.r.t. the trace.

    ``trace [..., B, n]``, ``positive [..., B]`` (1 for positive samples, 0 for negatives; a
    float tensor or bool). Returns ``[..., B, n]``.
    """
    s = positive.to(trace.dtype)
    p = goodness_probability(trace, theta)
    return ((s - p) * 2.0).unsqueeze(-1) * trace


def csdp_update(
    pre: torch.Tensor,
    post_trace: torch.Tensor,
    positive: torch.Tensor,
    theta: Scalar,
    eta: Scalar,
    weights: torch.Tensor | None = None,
    decay: float = 0.0,
    sample_weight: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """CSDP weight change ``[..., out, in]`` for ``pre [..., B, in]``, ``post_trace [..., B, out]``.

    ``positive [..., B]`` marks each sample positive (1) or negative (0). ``theta`` is the
    goodness threshold of the postsynaptic layer. ``sample_weight`` (scalar or ``[..., B]``)
    scales each sample's contribution, which is where importance weights of a flexible phase
    schedule enter. ``decay`` adds ``-eta * decay * weights`` (needs ``weights``), a slow pull
    to zero that keeps weights bounded when both phases keep pushing. The change is averaged
    over ``B`` so the step size does not depend on the batch size.
    """
    if pre.shape[:-1] != post_trace.shape[:-1]:
        raise PlasticRLError(
            f"pre has shape {list(pre.shape)} and post_trace {list(post_trace.shape)}; "
            "they must agree on every dimension but the last ([..., B, in] and [..., B, out])"
        )
    signal = contrastive_signal(post_trace, positive, theta)  # [..., B, out]
    if sample_weight is not None:
        if isinstance(sample_weight, torch.Tensor) and sample_weight.dim() > 0:
            signal = signal * sample_weight.unsqueeze(-1)
        else:
            signal = signal * sample_weight
    batch = pre.shape[-2]
    delta = torch.matmul(signal.transpose(-1, -2), pre) / batch  # [..., out, in]
    if decay:
        if weights is None:
            raise PlasticRLError("csdp_update: decay > 0 needs the current weights")
        delta = delta - decay * weights
    return eta * delta


def readout_update(
    features: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor, eta: Scalar
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local delta rule for a softmax readout: ``dU = eta * mean_b (y - softmax(U f + c)) f^T``.

    The readout's error is its own (target minus prediction at the readout neurons), so the
    rule stays local; nothing flows back into the spiking layers. ``features [..., B, n]``,
    ``target [..., B, k]`` (one-hot), ``weights [..., k, n]``, ``bias [..., k]``.
    Returns ``(dU, dc)``.
    """
    logits = torch.matmul(features, weights.transpose(-1, -2)) + bias.unsqueeze(-2)
    error = target - torch.softmax(logits, dim=-1)  # [..., B, k]
    batch = features.shape[-2]
    return eta * torch.matmul(error.transpose(-1, -2), features) / batch, eta * error.mean(dim=-2)
