"""A new plasticity rule is one registry entry: registered copies of the built-in rules (the same update
function, the same RuleSpec) give a policy that acts and learns bit for bit as the built-in one, genome
layout included, with no other edit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import plasticrl
from plasticrl.plasticity import RuleSpec, register_rule, rules
from plasticrl.plasticity.hebbian import hebbian_abcd_update
from plasticrl.plasticity.oja import oja_update

COPIES = {
    "oja": (RuleSpec("oja_copy", (), init_std=0.0, eta_init=1.0, uses_threshold=False),
            lambda pre, post, w, c, m: oja_update(pre, post, w, c["eta"], m)),
    "hebbian_abcd": (RuleSpec("abcd_copy", ("A", "B", "C", "D"), init_std=0.1, eta_init=1.0, uses_threshold=False),
                     lambda pre, post, w, c, m: hebbian_abcd_update(pre, post, c["A"], c["B"], c["C"], c["D"],
                                                                    c["eta"], m)),
}


@pytest.fixture
def restore_rules():
    saved = dict(rules.RULES), dict(rules._REGISTERED)
    yield
    for live, kept in zip((rules.RULES, rules._REGISTERED), saved):
        live.clear()
        live.update(kept)


def _run(kind: str, rule: str, modulation: str
         ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Returns of a 2-member x 2-episode rollout of 40 steps, the genome, and the fast weights before
    and after it."""
    env = plasticrl.make_env("HalfCheetah-v5", 4, max_episode_steps=40)
    try:
        config = {"kind": kind, "kernel": "torch", "plasticity": {"rule": rule, "modulation": modulation}}
        policy = plasticrl.make_policy(config, env.single_observation_space, env.single_action_space)
        genome = policy.initial_genome(2)
        genome = genome + 0.05 * torch.randn(genome.shape, generator=torch.Generator().manual_seed(3))
        policy.load_genome(genome, episodes_per_member=2)
        initial = [w.clone() for w in policy.episode_state().network.weights]
        result = plasticrl.rollout(policy, env, genome, episodes_per_member=2, seed=11)
        weights = [w.clone() for w in policy.episode_state().network.weights]
        return result.returns, genome, initial, weights
    finally:
        env.close()


@pytest.mark.parametrize("kind", ["plastic_spiking"])  # hebbian_mlp takes built-in rules only (for now)
@pytest.mark.parametrize("built_in, modulation", [("oja", "none"), ("hebbian_abcd", "reward")])
def test_registered_rule_acts_and_learns_as_the_built_in(restore_rules, kind, built_in, modulation):
    spec, update = COPIES[built_in]
    register_rule(spec, update)
    returns, genome, initial, weights = _run(kind, built_in, modulation)
    copy_returns, copy_genome, _, copy_weights = _run(kind, spec.name, modulation)
    assert torch.equal(genome, copy_genome)  # the registry entry alone lays out the genome
    assert torch.equal(returns, copy_returns)
    assert np.isfinite(returns.numpy()).all()
    for w, copy_w in zip(weights, copy_weights, strict=True):
        assert torch.equal(w, copy_w)
    # and the rule did learn: the fast weights moved away from where the episode started them
    assert any(not torch.equal(w, w0) for w, w0 in zip(weights, initial, strict=True))

