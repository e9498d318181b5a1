"""PPO loss terms as pure functions (Schulman et al. 2017): the Gaussian action head, the
clipped surrogate objective and the value loss. Every reduction is a mean over the entries a
``mask`` keeps (autoreset steps of a next-step-autoreset vector env carry no transition)."""
from __future__ import annotations

import math

import torch

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x`` over ``mask`` (all entries if ``None``); 0 if the mask keeps nothing."""
    if mask is None:
        return x.mean()
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Log density of a diagonal Gaussian, summed over the last (action) dimension."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - _LOG_SQRT_2PI).sum(dim=-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of a diagonal Gaussian with state-independent ``log_std [A]`` (a scalar)."""
    return (log_std + 0.5 + _LOG_SQRT_2PI).sum()


def clipped_surrogate(
    new_log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    clip: float,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO-clip policy loss ``-E[min(r A, clip(r, 1-eps, 1+eps) A)]`` with ``r = exp(new - old)``.

    Also returns diagnostics (detached): the fraction of clipped ratios and the
    ``(r - 1) - log r`` estimator of KL(old || new).
    """
    log_ratio = new_log_prob - old_log_prob
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantages
    loss = -masked_mean(torch.minimum(unclipped, clipped), mask)
    with torch.no_grad():
        info = {
            "clip_fraction": masked_mean(((ratio - 1.0).abs() > clip).to(ratio.dtype), mask),
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
        }
    return loss, info


def value_loss(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``0.5 * E[(V - R)^2]``: the squared error of the value head against the GAE returns."""
    diff = values - returns
    return 0.5 * masked_mean(diff * diff, mask)
