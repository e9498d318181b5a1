"""kernel: fused (numba) against the torch path of PlasticSpikingPolicy."""
import sys

import pytest
import torch

from plasticrl.agents import PlasticSpikingPolicy
from plasticrl.errors import PlasticRLError
from genomes import perturbed_genome, torch_and_fused

pytest.importorskip("numba")

OBS, ACT, P = 7, 3, 6


def _pair(cfg, dtype="float64", obs_dim=OBS, act_dim=ACT):
    return torch_and_fused(PlasticSpikingPolicy, cfg, dtype, obs_dim, act_dim)


def _genome(policy, population=P, noise=0.5, seed=0):
    return perturbed_genome(policy, population, noise, seed)


def _compare(a, b, atol):
    for wa, wb in zip(a.fast_weights, b.fast_weights):
        torch.testing.assert_close(wb, wa, rtol=0, atol=atol)
    assert a.live_state.theta.keys() == b.live_state.theta.keys()
    for l in a.live_state.theta:
        torch.testing.assert_close(b.live_state.theta[l], a.live_state.theta[l], rtol=0, atol=atol)
    for l in a.live_state.post:
        torch.testing.assert_close(b.live_state.post[l], a.live_state.post[l], rtol=0, atol=atol)
    assert torch.equal(a.invalid, b.invalid)


def _run(pols, steps, atol, seed=1, eta_noise=None, reset_at=None):
    a, b = pols
    flat = _genome(a)
    for p in pols:
        p.load_genome(flat, episodes_per_member=2)
    g = torch.Generator().manual_seed(seed)
    moved = False
    with torch.no_grad():
        for t in range(steps):
            obs = 2.0 * torch.randn(a.num_rows, a.obs_dim, generator=g, dtype=a.dtype)
            reward = torch.randn(a.num_rows, generator=g, dtype=a.dtype)
            act_a, act_b = a.act(obs), b.act(obs)
            torch.testing.assert_close(act_b, act_a, rtol=0, atol=atol)
            a.learn(reward)
            b.learn(reward)
            _compare(a, b, atol)
            if reset_at is not None and t == reset_at:
                mask = torch.zeros(a.num_rows, dtype=torch.bool)
                mask[::3] = True
                a.reset(mask)
                b.reset(mask)
                _compare(a, b, atol)
                for w, w0 in zip(b.fast_weights, b.initial_weights):
                    assert torch.equal(w[mask], w0[mask])
    for w, w0 in zip(b.fast_weights, b.initial_weights):
        moved |= not torch.equal(w, w0)
    return moved


CONFIGS = {
    "bcm_reward": {"hidden": [16], "plasticity": {"rule": "bcm", "modulation": "reward", "eta_scale": 0.05}},
    "oja_rpe": {"hidden": [12], "plasticity": {"rule": "oja", "modulation": "rpe", "eta_scale": 0.05,
                                               "sharing": "post"}},
    "hebb_none_synapse": {"hidden": [10], "plasticity": {"rule": "hebbian_abcd", "modulation": "none",
                                                         "sharing": "synapse", "eta_scale": 0.05}},
    "two_hidden_normalise": {"hidden": [12, 8], "plasticity": {"rule": "bcm", "modulation": "rpe",
                                                               "bounds": "normalise", "weight_limit": 2.0,
                                                               "sharing": "layer", "eta_scale": 0.05}},
    "clip_reset_zero_global": {"hidden": [10], "neuron": {"reset": "zero"},
                               "plasticity": {"rule": "hebbian_abcd", "modulation": "reward", "bounds": "clip",
                                              "weight_limit": 0.5, "sharing": "global", "eta_scale": 0.1}},
    "hidden_layers_only": {"hidden": [10], "plasticity": {"rule": "oja", "modulation": "reward",
                                                          "layers": "hidden", "eta_scale": 0.05}},
    "output_layer_only_no_bounds": {"hidden": [10], "plasticity": {"rule": "bcm", "layers": "output",
                                                                   "bounds": "none", "eta_scale": 0.05}},
    "alif_population_spiking_rate": {"hidden": [10], "neuron": {"model": "alif"},
                                     "encoder": {"kind": "population", "centres": 3, "spiking": True},
                                     "decoder": {"kind": "rate"},
                                     "plasticity": {"rule": "bcm", "modulation": "reward", "eta_scale": 0.05}},
    "no_hidden": {"hidden": [], "plasticity": {"rule": "hebbian_abcd", "sharing": "post", "eta_scale": 0.05}},
    "static": {"kind": "static_spiking", "hidden": [10]},
    # the previous reward as one more input (the base class appends it before either kernel runs)
    "reward_input_bcm": {"hidden": [12], "reward_input": True, "reward_input_scale": 0.7,
                         "plasticity": {"rule": "bcm", "modulation": "reward", "eta_scale": 0.05}},
    "reward_input_population_static": {"kind": "static_spiking", "hidden": [10], "reward_input": True,
                                       "encoder": {"kind": "population", "centres": 3, "spiking": True}},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fused_matches_torch_float64(name):
    cfg = {"zero_output_init": False, **CONFIGS[name]}
    moved = _run(_pair(cfg), steps=50, atol=1e-10)
    assert moved == ("static" not in name)  # plasticity did change the weights


@pytest.mark.parametrize("name", ["bcm_reward", "oja_rpe", "two_hidden_normalise"])
def test_fused_matches_torch_float32(name):
    cfg = {"zero_output_init": False, **CONFIGS[name]}
    assert _run(_pair(cfg, dtype="float32"), steps=10, atol=1e-5)


@pytest.mark.parametrize("name", ["bcm_reward", "reward_input_bcm"])
def test_masked_reset_mid_run(name):
    cfg = {"zero_output_init": False, **CONFIGS[name]}
    assert _run(_pair(cfg), steps=30, atol=1e-10, reset_at=12)


def test_diverging_members_marked_invalid_in_both():
    cfg = {"hidden": [10], "zero_output_init": False,
           "plasticity": {"rule": "hebbian_abcd", "modulation": "none", "bounds": "none", "sharing": "layer"}}
    a, b = _pair(cfg)
    flat = _genome(a, noise=0.3)
    cols = [a.genome.slice_of(f"layers.{l}.eta") for l in range(a.num_layers)]
    for sl in cols:
        flat[1, sl] = float("inf")  # members 1 and 4 blow up at once
        flat[4, sl] = float("inf")
    for p in (a, b):
        p.load_genome(flat)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for _ in range(5):
            obs = torch.randn(P, OBS, generator=g, dtype=torch.float64)
            reward = torch.randn(P, generator=g, dtype=torch.float64)
            torch.testing.assert_close(b.act(obs), a.act(obs), rtol=0, atol=1e-10)
            a.learn(reward)
            b.learn(reward)
            _compare(a, b, 1e-10)
            # the diverged members restart from their initial weights at every step
            for w, w0 in zip(b.fast_weights, b.initial_weights):
                assert torch.equal(w[[1, 4]], w0[[1, 4]])
    expected = torch.zeros(P, dtype=torch.bool)
    expected[[1, 4]] = True
    assert torch.equal(a.member_invalid(), expected)
    assert torch.equal(b.member_invalid(), expected)


def test_non_finite_actions_sanitised_like_torch():
    cfg = {"hidden": [], "zero_output_init": False, "plasticity": {"rule": "bcm"}}  # NaN reaches the output
    a, b = _pair(cfg)
    flat = _genome(a)
    for p in (a, b):
        p.load_genome(flat)
    obs = torch.randn(P, OBS, dtype=torch.float64)
    obs[2, 0] = float("nan")
    with torch.no_grad():
        torch.testing.assert_close(b.act(obs), a.act(obs), rtol=0, atol=1e-12)
    assert torch.equal(a.invalid, b.invalid) and bool(b.invalid[2])


@pytest.mark.parametrize("option, fragment", [
    ({"recurrent": True}, "recurrent"),
    ({"synapse": "stp"}, "synapse"),
    ({"plasticity": {"modulation": "neurons"}}, "modulation: 'neurons'"),
    ({"plasticity": {"eligibility_tau": 0.1}}, "eligibility_tau"),
    ({"neuron": {"refractory": 0.01}}, "refractory"),
    ({"input_plasticity": {"rule": "csdp"}}, "input_plasticity.rule"),
    ({"genome": {"search": ["layers.*.w", "layers.0.tau_mem"]}}, "layers.0.tau_mem"),
])
def test_unsupported_options_raise(option, fragment):
    with pytest.raises(PlasticRLError) as info:
        PlasticSpikingPolicy(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, {"hidden": [8], "kernel": "fused", **option})
    assert fragment in str(info.value) and "kernel: torch" in str(info.value)
    # the torch kernel takes the same option
    PlasticSpikingPolicy(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, {"hidden": [8], **option})


def test_several_unsupported_options_all_named():
    from plasticrl.agents.config import PlasticSpikingConfig
    from plasticrl.agents.plastic_kernel import fused_unsupported

    cfg = PlasticSpikingConfig.model_validate({"recurrent": True, "synapse": "stp", "kernel": "fused"})
    problems = fused_unsupported(cfg, "cpu")
    assert len(problems) == 2
    assert fused_unsupported(PlasticSpikingConfig(), "cpu") == []
    assert any("device" in p for p in fused_unsupported(PlasticSpikingConfig(), "cuda"))


def test_numba_missing_names_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` fail
    with pytest.raises(PlasticRLError, match=r"plasticrl\[fast\]"):
        PlasticSpikingPolicy(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, {"hidden": [8], "kernel": "fused"})


def test_grad_enabled_raises():
    pol = PlasticSpikingPolicy(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, {"hidden": [8], "kernel": "fused"})
    flat = pol.initial_genome(2).requires_grad_(True)
    pol.load_genome(flat)
    with pytest.raises(PlasticRLError, match="gradient-free"):
        pol.act(torch.zeros(2, OBS))
    with torch.no_grad():  # fine without autograd
        assert pol.act(torch.zeros(2, OBS)).shape == (2, ACT)


def _actions_after(policy, steps=5):
    flat = _genome(policy, population=2)
    policy.load_genome(flat)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for _ in range(steps):
            actions = policy.act(torch.randn(2, OBS, generator=g))
            policy.learn(torch.randn(2, generator=g))
    return actions


def test_default_kernel_auto_picks_fused_and_runs_it_bit_for_bit():
    pol = PlasticSpikingPolicy(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, {"hidden": [8]})
    assert pol.config.kernel == "auto" and pol.kernel == "fused" and pol._fused is not None
    assert "covers" in pol.kernel_reason
    fused = PlasticSpikingPolicy(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, {"hidden": [8], "kernel": "fused"})
    torch_pol = PlasticSpikingPolicy(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, {"hidden": [8], "kernel": "torch"})
    assert torch_pol.kernel == "torch" and torch_pol._fused is None
    auto_actions = _actions_after(pol)
    assert torch.equal(auto_actions, _actions_after(fused))
    for w_auto, w_fused in zip(pol.fast_weights, fused.fast_weights):
        assert torch.equal(w_auto, w_fused)


@pytest.mark.parametrize("option, fragment", [({"recurrent": True}, "recurrent"),
                                              ({"synapse": "stp"}, "synapse")])
def test_auto_falls_back_to_torch_and_says_why(option, fragment):
    pol = PlasticSpikingPolicy(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, {"hidden": [8], **option})
    assert pol.kernel == "torch" and pol._fused is None
    assert fragment in pol.kernel_reason


def test_auto_picks_torch_for_autograd_and_without_numba(monkeypatch):
    from plasticrl.agents import make_policy

    import gymnasium as gym
    obs_space = gym.spaces.Box(-1.0, 1.0, (OBS,))
    act_space = gym.spaces.Box(-1.0, 1.0, (ACT,))
    differentiable = make_policy({"hidden": [8]}, obs_space, act_space, autograd=True)
    assert differentiable.kernel == "torch" and "autograd" in differentiable.kernel_reason
    flat = differentiable.initial_genome(2).requires_grad_(True)
    differentiable.load_genome(flat)
    differentiable.act(torch.ones(2, OBS)).sum().backward()  # the torch path differentiates
    assert flat.grad is not None
    assert make_policy({"kind": "linear"}, obs_space, act_space).kernel == "torch"
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` fail
    pol = PlasticSpikingPolicy(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, {"hidden": [8]})
    assert pol.kernel == "torch" and "numba" in pol.kernel_reason


def test_rollout_returns_match():
    from plasticrl.agents import make_policy
    from plasticrl.envs import make_vec
    from plasticrl.rollouts.loop import rollout

    population, episodes = 3, 2
    results = []
    for kernel in ("torch", "fused"):
        env = make_vec("Hopper-v5", population * episodes)
        cfg = {"kind": "plastic_spiking", "hidden": [16], "kernel": kernel, "zero_output_init": False,
               "plasticity": {"rule": "bcm", "modulation": "reward", "eta_scale": 0.05}}
        policy = make_policy(cfg, env.single_observation_space, env.single_action_space, dtype="float64")
        genome = _genome(policy, population=population, noise=0.3)
        results.append(rollout(policy, env, genome, episodes, max_steps=80, seed=5))
        env.close()
    a, b = results
    assert torch.equal(a.lengths, b.lengths)
    torch.testing.assert_close(b.returns, a.returns, rtol=0, atol=1e-8)
    assert torch.equal(a.invalid, b.invalid)


def test_the_kernel_reads_only_the_policys_public_view():
    """The fused kernel's glue reads the policy through kernel_constants / kernel_parameters / live_state and
    other public names, never a private attribute (a renamed private field cannot silently break it)."""
    import inspect
    import re

    import plasticrl.agents.plastic_kernel as kernel

    source = inspect.getsource(kernel)
    assert re.findall(r"\b(?:policy|pol)\._[A-Za-z]\w*", source) == []
    assert "kernel_constants()" in source and "kernel_parameters()" in source and "live_state" in source
