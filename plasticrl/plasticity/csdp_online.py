"""Online, self-supervised CSDP for a controller's input spiking layer.

At every control step the first hidden layer of a plastic spiking controller runs twice on
the same synapses ``W_0``:

- the *positive* stream is the controller's real forward pass: the current observation
  ``o_t`` arriving on the layer's real state (membrane, adaptation, traces), which the
  previous real observations ``o_{t-1}, o_{t-2}, ...`` left behind; a consecutive sequence;
- the *negative* stream starts from a copy of that same state at the start of the step and
  is driven, for the same ``K`` sub-steps, by a corrupted observation instead of ``o_t``. It
  is thrown away afterwards (nothing downstream of the layer sees it).

Negatives are built inside each row, from that row's own observations, so rows never
influence each other (a member's fitness does not depend on who else is in the batch, and
a deployed agent with a batch of one works the same way):

- ``lagged``: the row's observation from ``lag`` control steps ago, ``o_{t-lag}``, paired
  with the state left by ``o_{t-1}``: a real observation, but not the consecutive one. Until
  a row has seen ``lag + 1`` observations of its episode there is no such negative and the
  row's CSDP update is skipped (sample weight 0 on both streams).
- ``permute``: ``o_t`` with its features permuted. The permutations are a fixed bank of
  cyclic derangements drawn once from a seed; row ``r`` at its step ``t`` (counted from its
  last reset) uses bank entry ``t mod len(bank)``, so there is no randomness at run time.

Each step's update is :func:`plasticrl.plasticity.csdp.csdp_update` over the two samples
(positive ``s = 1`` and negative ``s = 0``): ``goodness = sum_j z_j^2`` of the layer's spike
traces, ``p = sigmoid(goodness - theta)``, ``dW_ji = eta * mean_{pos,neg} (s - p) 2 z_j x_i
- eta * decay * (W - W_init)_ji``: the (optional) decay pulls the fast weights back toward the
member's evolved initial weights rather than toward zero. No reward, no feedback synapses.
"""
from __future__ import annotations

import torch

from plasticrl.errors import check_choice
from plasticrl.plasticity.csdp import csdp_update

NEGATIVE_KINDS = ("lagged", "permute")


def derangement_bank(n: int, count: int, seed: int) -> torch.Tensor:
    """``[count, n]`` permutations of ``range(n)``, each one ``n``-cycle (no fixed point when n > 1).

    Drawn from ``torch.Generator().manual_seed(seed)`` on the CPU: identical on every device.
    """
    gen = torch.Generator().manual_seed(int(seed))
    bank = torch.empty(count, n, dtype=torch.long)
    for k in range(count):
        order = torch.randperm(n, generator=gen)
        # each element maps to its successor along a random cyclic order
        bank[k, order] = order.roll(-1)
    return bank


def push_history(history: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """Shift ``history [N, L, d]`` (oldest first) by one and append ``obs [N, d]``."""
    return torch.cat([history[:, 1:], obs.unsqueeze(1)], dim=1)


def negative_observations(
    kind: str,
    obs: torch.Tensor,
    history: torch.Tensor,
    step: torch.Tensor,
    bank: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(negatives [N, d], valid [N])`` for observations ``obs [N, d]`` at per-row ``step [N]``.

    ``history [N, L, d]`` holds the row's previous ``L`` observations, oldest first
    (``history[:, 0]`` is ``o_{t-L}``), *before* ``obs`` was pushed. ``step`` counts the
    observations the row has already seen in its episode (0 on its first one).
    """
    check_choice("CSDP negative kind", kind, NEGATIVE_KINDS)
    if kind == "lagged":
        lag = history.shape[1]
        return history[:, 0], step >= lag
    index = bank[step.remainder(bank.shape[0])]  # [N, d]
    return obs.gather(1, index), torch.ones_like(step, dtype=torch.bool)


def online_csdp_delta(
    pre_pos: torch.Tensor,
    pre_neg: torch.Tensor,
    z_pos: torch.Tensor,
    z_neg: torch.Tensor,
    valid: torch.Tensor,
    theta: float | torch.Tensor,
    eta: float | torch.Tensor,
    weights: torch.Tensor,
    anchor: torch.Tensor,
    decay: float,
) -> torch.Tensor:
    """One control step's CSDP change ``[N, out, in]`` of the input layer's weights.

    ``pre_* [N, in]``: presynaptic activity of each stream (the encoded current, or the input
    spike trace); ``z_* [N, out]``: the layer's spike traces at the end of the step;
    ``valid [N]``: rows whose negative exists (others get no contrastive term);
    ``theta`` and ``eta``: floats or per-row ``[N]`` tensors; ``anchor``: the weights the
    decay pulls toward (the member's initial ones).
    """
    n = pre_pos.shape[0]
    pre = torch.stack([pre_pos, pre_neg], dim=1)  # [N, 2, in]
    z = torch.stack([z_pos, z_neg], dim=1)  # [N, 2, out]
    positive = torch.tensor([1.0, 0.0], device=z.device, dtype=z.dtype).expand(n, 2)
    weight = valid.to(z.dtype).unsqueeze(1).expand(n, 2)
    if isinstance(theta, torch.Tensor):
        theta = theta.reshape(n, 1)
    delta = csdp_update(pre, z, positive, theta, 1.0, weights - anchor, decay, sample_weight=weight)
    if isinstance(eta, torch.Tensor):
        eta = eta.reshape(n, 1, 1)
    return eta * delta
