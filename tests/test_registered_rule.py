"""A new plasticity rule is one registry entry: registered copies of the built-in rules (the same update
function, the same RuleSpec) give a policy that acts and learns bit for bit as the built-in one, genome
layout included, with no other edit; with a numba block as well, the copy runs in the fused CPU kernel
and agrees with the torch path and with the built-in rule's fused block to rounding."""
from __future__ import annotations

import numba
import numpy as np
import pytest
import torch

import plasticrl
from plasticrl.errors import PlasticRLError
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


@numba.njit
def _oja_block(pre, post, weights, eta, coefficients, out):
    y = post[:, :, None]
    out[:] = eta * (y * (pre[:, None, :] - y * weights))


@numba.njit
def _abcd_block(pre, post, weights, eta, coefficients, out):
    a, b, c, d = coefficients
    x = pre[:, None, :]
    y = post[:, :, None]
    out[:] = eta * (a * (y * x) + b * x + c * y + d)


BLOCKS = {"oja": _oja_block, "hebbian_abcd": _abcd_block}


@pytest.fixture
def restore_rules():
    saved = dict(rules.RULES), dict(rules._REGISTERED), dict(rules._NUMBA_UPDATES)
    yield
    for live, kept in zip((rules.RULES, rules._REGISTERED, rules._NUMBA_UPDATES), saved):
        live.clear()
        live.update(kept)


def _run(kind: str, rule: str, modulation: str, kernel: str = "torch", dtype: str = "float32",
         sharing: str = "synapse", steps: int = 40
         ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Returns of a 2-member x 2-episode rollout of ``steps`` steps, the genome, and the fast weights before
    and after it."""
    env = plasticrl.make_env("HalfCheetah-v5", 4, max_episode_steps=steps)
    try:
        config = {"kind": kind, "kernel": kernel,
                  "plasticity": {"rule": rule, "modulation": modulation, "sharing": sharing}}
        policy = plasticrl.make_policy(config, env.single_observation_space, env.single_action_space, dtype=dtype)
        assert policy.kernel == kernel
        genome = policy.initial_genome(2)
        genome = genome + 0.05 * torch.randn(genome.shape, generator=torch.Generator().manual_seed(3))
        policy.load_genome(genome, episodes_per_member=2)
        initial = [w.clone() for w in policy.episode_state().network.weights]
        result = plasticrl.rollout(policy, env, genome, episodes_per_member=2, seed=11)
        weights = [w.clone() for w in policy.episode_state().network.weights]
        return result.returns, genome, initial, weights
    finally:
        env.close()


@pytest.mark.parametrize("kind", ["plastic_spiking", "hebbian_mlp"])
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



@pytest.mark.parametrize("kind", ["plastic_spiking", "hebbian_mlp"])
@pytest.mark.parametrize("built_in, modulation, sharing", [("oja", "none", "synapse"), ("oja", "rpe", "post"),
                                                            ("hebbian_abcd", "reward", "synapse"),
                                                            ("hebbian_abcd", "none", "layer")])
def test_registered_rule_with_a_numba_block_runs_fused(restore_rules, kind, built_in, modulation, sharing):
    spec, update = COPIES[built_in]
    register_rule(spec, update, numba_update=BLOCKS[built_in])
    # 15 steps with the body in the loop: rounding differences (BLAS against torch, the block's order of
    # operations) feed back through the physics and grow about tenfold a step (~1e-10 of the weights here,
    # ~1e-2 after 40 steps); a wrong rule or a missing modulator moves the weights by ~1e-3 in one step
    run = dict(kernel="fused", dtype="float64", sharing=sharing, steps=15)
    fused = _run(kind, spec.name, modulation, **run)
    torch_path = _run(kind, spec.name, modulation, **{**run, "kernel": "torch"})
    built_in_fused = _run(kind, built_in, modulation, **run)
    returns, genome, initial, weights = fused
    assert any(not torch.equal(w, w0) for w, w0 in zip(weights, initial, strict=True))  # it learned
    for other in (torch_path, built_in_fused):
        assert torch.equal(genome, other[1])
        torch.testing.assert_close(returns, other[0], rtol=0, atol=1e-7)
        for w, w_other in zip(weights, other[3], strict=True):
            torch.testing.assert_close(w, w_other, rtol=0, atol=1e-7)


def test_a_rule_without_a_numba_block_stays_on_torch(restore_rules):
    spec, update = COPIES["oja"]
    register_rule(spec, update)
    env = plasticrl.make_env("HalfCheetah-v5", 1)
    try:
        spaces = env.single_observation_space, env.single_action_space
        for kind in ("plastic_spiking", "hebbian_mlp"):
            auto = plasticrl.make_policy({"kind": kind, "plasticity": {"rule": "oja_copy"}}, *spaces)
            assert auto.kernel == "torch" and "'oja_copy' (registered without a numba_update block" in auto.kernel_reason
            with pytest.raises(PlasticRLError, match="oja_copy.*registered without a numba_update"):
                plasticrl.make_policy({"kind": kind, "kernel": "fused", "plasticity": {"rule": "oja_copy"}}, *spaces)
        # registered again with a block: auto now picks the fused kernel
        register_rule(spec, update, numba_update=_oja_block)
        assert plasticrl.make_policy({"kind": "hebbian_mlp", "plasticity": {"rule": "oja_copy"}}, *spaces).kernel == "fused"
    finally:
        env.close()


def test_register_rule_refuses_a_block_that_is_not_compiled(restore_rules):
    spec, update = COPIES["oja"]
    with pytest.raises(PlasticRLError, match="numba_update must be a numba.njit function"):
        register_rule(spec, update, numba_update=_oja_block.py_func)
    assert "oja_copy" not in rules.RULES  # refused before anything was registered


def test_hebbian_mlp_takes_registered_rules_but_not_bcm(restore_rules):
    from plasticrl.agents.config import HebbianMLPPlasticityConfig

    with pytest.raises(ValueError, match="plasticity rule 'oja_copy'; valid choices"):
        HebbianMLPPlasticityConfig(rule="oja_copy")
    register_rule(*COPIES["oja"])
    assert HebbianMLPPlasticityConfig(rule="oja_copy").rule == "oja_copy"
    with pytest.raises(ValueError, match="valid choices: hebbian_abcd, oja, none, oja_copy"):
        HebbianMLPPlasticityConfig(rule="bcm")
