"""Surrogate-gradient spike functions: a Heaviside step forward, a smooth derivative backward.

The same neuron step then serves both gradient-free rollouts (ES) and backpropagation
through time. The fast-sigmoid derivative is SuperSpike's (Zenke & Ganguli 2018).
"""
from __future__ import annotations

import torch


class _FastSigmoidSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        grad = grad_output / (ctx.slope * x.abs() + 1.0) ** 2
        return grad, None


def spike_fn(x: torch.Tensor, slope: float = 10.0) -> torch.Tensor:
    """Spike (1.0) where ``x > 0``; gradient ``1 / (slope*|x| + 1)^2``.

    ``x`` is the membrane potential minus the threshold. Outside autograd (ES rollouts under
    ``torch.no_grad``) the plain comparison is used, which skips the autograd bookkeeping.
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return _FastSigmoidSpike.apply(x, slope)
    return (x > 0).to(x.dtype)


def fast_sigmoid_grad(x: torch.Tensor, slope: float = 10.0) -> torch.Tensor:
    """The surrogate derivative itself, exposed for tests and analysis."""
    return 1.0 / (slope * x.abs() + 1.0) ** 2
