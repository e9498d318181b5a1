"""Gradients against finite differences, in double precision.

Rule steps are smooth functions, so ``torch.autograd.gradcheck`` applies directly.

A spiking unroll is not: its forward pass is a Heaviside step, whose true derivative is zero
almost everywhere (and undefined at threshold), while backward uses the fast-sigmoid
surrogate. Finite differences would either see nothing (an epsilon too small to flip a spike)
or a jump. To check the *plumbing* of BPTT (traces, rules, modulators, fast weights, sub-steps,
the readout) we therefore swap the spike for a smooth sigmoid whose backward is its exact
derivative; then analytic and numerical gradients of the whole plastic unroll must agree.
"""
import pytest
import torch

import plasticrl.snn.neurons as neurons
from plasticrl.studies.bptt import CueAssociationTask, build_policy, unroll
from plasticrl.plasticity import (
    bcm_threshold_step,
    bcm_update,
    eligibility_step,
    hebbian_abcd_update,
    modulatory_neurons,
    oja_update,
)

D = torch.float64


def rand(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=D)).requires_grad_(True)


def test_hebbian_abcd_step_matches_finite_differences():
    pre, post = rand(2, 4, seed=1), rand(2, 3, seed=2)
    A, B, C, Dc = (rand(2, 3, 4, seed=s) for s in (3, 4, 5, 6))   # per synapse
    eta, m = rand(2, 3, 1, seed=7), rand(2, seed=8)                # per post-neuron rate, per-row modulator
    assert torch.autograd.gradcheck(hebbian_abcd_update, (pre, post, A, B, C, Dc, eta, m))


def test_oja_step_matches_finite_differences():
    pre, post, w = rand(2, 4, seed=1), rand(2, 3, seed=2), rand(2, 3, 4, seed=3)
    eta, m = rand(2, 1, 1, seed=4), rand(2, 3, seed=5)             # per-post-neuron modulator
    assert torch.autograd.gradcheck(oja_update, (pre, post, w, eta, m))


def test_bcm_step_and_threshold_match_finite_differences():
    pre, post, theta = rand(2, 4, seed=1), rand(2, 3, seed=2), rand(2, 3, seed=3)
    eta, m = rand(2, 3, 4, seed=4), rand(2, seed=5)
    assert torch.autograd.gradcheck(bcm_update, (pre, post, theta, eta, m))
    decay = torch.tensor(0.8, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(bcm_threshold_step, (theta, post, decay))


def test_modulatory_neurons_and_eligibility_match_finite_differences():
    activity, reward = rand(2, 4, seed=1), rand(2, seed=2)
    w, b = rand(2, 3, 5, seed=3), rand(2, 3, seed=4)
    assert torch.autograd.gradcheck(modulatory_neurons, (activity, reward, w, b))
    trace, term = rand(2, 3, 4, seed=5), rand(2, 3, 4, seed=6)
    assert torch.autograd.gradcheck(eligibility_step, (trace, term, torch.tensor(0.7, dtype=D, requires_grad=True)))


class _SmoothSpike(torch.autograd.Function):
    """Forward ``sigmoid(slope*x)``, backward its exact derivative (unlike the surrogate pair)."""

    @staticmethod
    def forward(ctx, x, slope):
        s = torch.sigmoid(slope * x)
        ctx.save_for_backward(s)
        ctx.slope = slope
        return s

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return grad * ctx.slope * s * (1.0 - s), None


# (plasticity config, input spiking?): the spiking-input case also runs the input LIF layer.
PLASTIC = [
    ({"rule": "hebbian_abcd", "modulation": "none", "sharing": "post"}, False),
    ({"rule": "oja", "modulation": "reward", "sharing": "layer"}, True),
    ({"rule": "bcm", "modulation": "neurons", "sharing": "synapse", "eligibility_tau": 0.05}, True),
]


@pytest.mark.parametrize("plasticity, spiking_input", PLASTIC, ids=lambda p: f"{p['rule']}-{p['modulation']}"
                         if isinstance(p, dict) else f"spiking_input={p}")
def test_plastic_unroll_gradient_matches_finite_differences_with_smooth_spikes(monkeypatch, plasticity, spiking_input):
    monkeypatch.setattr(neurons, "spike_fn", lambda x, slope=10.0: _SmoothSpike.apply(x, 4.0))
    task = CueAssociationTask(n_pairs=2, cue_dim=2, present_steps=1, gap_steps=0, query_steps=1, n_queries=2)
    batch = task.sample(3, 0.2, torch.Generator().manual_seed(0), dtype=D)
    # Unbounded weights: the clip's kink is not differentiable, and it is not what is checked here.
    policy = build_policy(task, {"hidden": [3], "substeps": 2, "output_init_gain": 1.0, "zero_output_init": False,
                                 "encoder": {"spiking": spiking_input, "gain": 2.0, "bias": 0.5},
                                 "plasticity": {**plasticity, "bounds": "none", "layers": "all", "eta_scale": 1.0}},
                          dtype=D)
    start = policy.initial_genome(1) + 0.1 * torch.randn(1, policy.genome.dim, generator=torch.Generator().manual_seed(1),
                                                         dtype=D)
    eta = [policy.genome.slice_of(n) for n in policy.genome.searched_names if n.endswith("eta")]
    for cols in eta:
        start[:, cols] = 0.5  # rates large enough that plasticity visibly shapes the readout

    def loss(flat):
        policy.load_genome(flat, episodes_per_member=batch.batch_size)
        total = flat.sum() * 0.0
        for t in range(batch.steps):
            total = total + task.step_loss(policy.act(batch.obs[t]), batch, t)
            policy.learn(batch.signal[t])
        return total

    flat = start.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(loss, (flat,), eps=1e-6, atol=1e-6, rtol=1e-4)
    # ... and unroll's own backward accumulates the same gradient.
    (expected,) = torch.autograd.grad(loss(flat), flat)
    leaf = start.clone().requires_grad_(True)
    unroll(policy, leaf, batch, task, backward=True)
    torch.testing.assert_close(leaf.grad, expected)
    for cols in eta:
        assert leaf.grad[:, cols].abs().sum() > 0  # the rule's rate is actually learned


def test_truncation_keeps_the_forward_pass_and_cuts_gradients_at_segment_edges():
    task = CueAssociationTask(n_pairs=2, cue_dim=4)
    batch = task.sample(4, 0.1, torch.Generator().manual_seed(0), dtype=D)
    policy = build_policy(task, {"hidden": [8], "zero_output_init": False,
                                 "plasticity": {"rule": "hebbian_abcd", "sharing": "layer", "eta_scale": 1.0}}, dtype=D)
    start = policy.initial_genome(1)
    grads, losses, segments = {}, {}, {}
    for window in (None, batch.steps, 3):
        leaf = start.clone().requires_grad_(True)
        seen = []
        result = unroll(policy, leaf, batch, task, truncation=window, backward=True,
                        on_segment=lambda a, b: seen.append((a, b)))
        grads[window], losses[window], segments[window] = leaf.grad, result.loss, seen
    assert losses[3] == pytest.approx(losses[None], rel=1e-12)          # detaching does not change values
    torch.testing.assert_close(grads[batch.steps], grads[None])
    assert not torch.allclose(grads[3], grads[None])                     # credit across segments is cut
    assert torch.isfinite(grads[3]).all()
    assert segments[3] == [(s, min(s + 3, batch.steps)) for s in range(0, batch.steps, 3)]
