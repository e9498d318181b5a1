"""kernel: fused (numba) against the torch path of HebbianMLPPolicy (kind: hebbian_mlp).

Tolerances: the kernel runs the torch path's operations in the policy's dtype, but its matvec sums
in another order than BLAS's bmm and takes tanh from libm instead of torch's vectorised version, so
the two agree to rounding, not bit for bit. Measured over 200 steps of every sharing level and bound
(with resets): at most 7e-12 apart in float64 and 6e-5 in float32, growing slowly with the steps. The
tests run 30 steps with atol 1e-10 (float64) and 1e-4 (float32): far above rounding, far below what
any real mistake gives (one missed or doubled update moves a weight by eta x term, about 1e-2 here;
a wrong coefficient or bound moves them by more).
"""
import sys

import pytest
import torch
from typer.testing import CliRunner

from plasticrl.agents import HebbianMLPPolicy
from plasticrl.errors import PlasticRLError
from genomes import perturbed_genome, torch_and_fused

pytest.importorskip("numba")

OBS, ACT, P, E = 5, 3, 3, 2
RANDOM = {"kind": "random", "scale": 0.5}


def _pair(cfg, dtype="float64", obs_dim=OBS, act_dim=ACT):
    return torch_and_fused(HebbianMLPPolicy, cfg, dtype, obs_dim, act_dim)


def _genome(policy, population=P, noise=0.5, seed=0):
    return perturbed_genome(policy, population, noise, seed)


def _compare(a, b, atol):
    for wa, wb in zip(a.fast_weights, b.fast_weights):
        torch.testing.assert_close(wb, wa, rtol=0, atol=atol)
    for l in a.live_state.post:
        torch.testing.assert_close(b.live_state.pre[l], a.live_state.pre[l], rtol=0, atol=atol)
        torch.testing.assert_close(b.live_state.post[l], a.live_state.post[l], rtol=0, atol=atol)
    if a.live_state.baseline is not None:
        torch.testing.assert_close(b.live_state.baseline, a.live_state.baseline, rtol=0, atol=atol)
    assert torch.equal(a.invalid, b.invalid)


def _run(pols, steps, atol, reset_every=10, seed=1):
    """``steps`` act/learn steps on random observations and rewards, a masked reset (a fresh draw for
    the reset rows) every ``reset_every`` steps; every step compares actions, activity and weights.
    Returns whether plasticity moved the weights away from their start."""
    a, b = pols
    flat = _genome(a)
    for p in pols:
        p.load_genome(flat, episodes_per_member=E, seeds=11)
    for wa, wb in zip(a.initial_weights, b.initial_weights):
        assert torch.equal(wa, wb)  # the same draws: the kernel changes nothing before the first step
    g = torch.Generator().manual_seed(seed)
    moved = False
    with torch.no_grad():
        for t in range(1, steps + 1):
            obs = 2.0 * torch.randn(a.num_rows, a.obs_dim, generator=g, dtype=a.dtype)
            reward = torch.randn(a.num_rows, generator=g, dtype=a.dtype)
            torch.testing.assert_close(b.act(obs), a.act(obs), rtol=0, atol=atol)
            a.learn(reward)
            b.learn(reward)
            _compare(a, b, atol)
            moved |= not all(torch.equal(w, w0) for w, w0 in zip(b.fast_weights, b.initial_weights))
            if t % reset_every == 0:
                mask = torch.zeros(a.num_rows, dtype=torch.bool)
                mask[(t // reset_every) % 3::3] = True
                before = [w.clone() for w in b.initial_weights]
                a.reset(mask)
                b.reset(mask)
                _compare(a, b, atol)
                for wa, wb, w_old in zip(a.initial_weights, b.initial_weights, before):
                    assert torch.equal(wa, wb)
                    if a.config.initial_weights.kind == "random" and a.config.initial_weights.draw == "per_episode":
                        assert not torch.equal(wb[mask], w_old[mask])  # the reset rows drew new weights
                for w, w0 in zip(b.fast_weights, b.initial_weights):
                    assert torch.equal(w[mask], w0[mask])  # and start from them
    return moved


@pytest.mark.parametrize("bounds, limit", [("normalise", 1.0), ("clip", 0.3), ("none", 1.0)])
@pytest.mark.parametrize("sharing", ["synapse", "post", "layer", "global"])
def test_fused_matches_torch_at_every_sharing_level_and_bound(sharing, bounds, limit):
    cfg = {"hidden": [12, 8], "initial_weights": RANDOM,
           "plasticity": {"rule": "hebbian_abcd", "sharing": sharing, "bounds": bounds, "weight_limit": limit}}
    assert _run(_pair(cfg), steps=30, atol=1e-10)


CONFIGS = {
    "oja_rpe_post": {"plasticity": {"rule": "oja", "modulation": "rpe", "sharing": "post", "eta_scale": 0.05}},
    "abcd_reward_hidden_layers": {"plasticity": {"modulation": "reward", "layers": "hidden"}},
    "abcd_output_layer_clip": {"plasticity": {"layers": "output", "bounds": "clip", "weight_limit": 0.4}},
    "per_member_draw_normal": {"initial_weights": {"kind": "random", "distribution": "normal", "draw": "per_member"}},
    "evolved_weights": {"initial_weights": {"kind": "evolved"}},
    "reward_input": {"reward_input": True, "reward_input_scale": 0.7, "plasticity": {"modulation": "reward"}},
    "one_hidden_layer": {"hidden": [16]},
    "action_scale": {"action_scale": 0.3},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fused_matches_torch_for_rules_modulators_layers_and_draws(name):
    cfg = {"hidden": [12, 8], "initial_weights": RANDOM, **CONFIGS[name]}
    assert _run(_pair(cfg), steps=30, atol=1e-10)


@pytest.mark.parametrize("kernel", ["torch", "fused"])
def test_action_scale_shrinks_the_actions_about_the_mid_point_and_leaves_learning_alone(kernel):
    # bounds [-2, 4]: mid 1, half-range 3; with action_scale 0.25 every action is 1 + 0.25 x 3 x tanh output
    low, high = [-2.0] * ACT, [4.0] * ACT
    cfg = {"hidden": [6], "kernel": kernel, "initial_weights": {"kind": "evolved"}}
    policies = [HebbianMLPPolicy(OBS, ACT, low, high, {**cfg, "action_scale": scale}, dtype="float64")
                for scale in (1.0, 0.25)]
    genome = _genome(policies[0])
    for policy in policies:
        policy.load_genome(genome, episodes_per_member=E)
        policy.reset()
    g = torch.Generator().manual_seed(5)
    for _ in range(5):
        obs = torch.randn(P * E, OBS, generator=g, dtype=torch.float64)
        full, scaled = (policy.act(obs) for policy in policies)
        torch.testing.assert_close(scaled, 1.0 + 0.25 * (full - 1.0), rtol=0, atol=1e-12)
        reward = torch.randn(P * E, generator=g, dtype=torch.float64)
        for policy in policies:
            policy.learn(reward)
    for w_full, w_scaled in zip(*(p.episode_state().network.weights for p in policies), strict=True):
        torch.testing.assert_close(w_scaled, w_full, rtol=0, atol=0)  # the rule sees the tanh output


def test_static_network_matches_and_stays_put():
    cfg = {"hidden": [12, 8], "initial_weights": {"kind": "evolved"}, "plasticity": {"rule": "none"}}
    assert not _run(_pair(cfg), steps=12, atol=1e-10)


def test_frozen_twin_keeps_its_draw_in_both_kernels():
    # eta_scale 0: the policy skips the update (the normalise bound would otherwise rescale the draw)
    cfg = {"hidden": [12, 8], "initial_weights": RANDOM, "plasticity": {"eta_scale": 0.0}}
    assert not _run(_pair(cfg), steps=12, atol=1e-10)


@pytest.mark.parametrize("sharing, bounds", [("synapse", "normalise"), ("post", "clip"), ("global", "none")])
def test_fused_matches_torch_float32(sharing, bounds):
    cfg = {"initial_weights": RANDOM, "plasticity": {"sharing": sharing, "bounds": bounds, "weight_limit": 0.5}}
    assert _run(_pair(cfg, dtype="float32"), steps=30, atol=1e-4)


def test_diverging_members_marked_invalid_and_restarted_in_both():
    cfg = {"hidden": [8], "initial_weights": RANDOM, "plasticity": {"bounds": "none", "sharing": "layer"}}
    a, b = _pair(cfg)
    flat = _genome(a, noise=0.3)
    for l in range(a.num_layers):
        flat[1, a.genome.slice_of(f"layers.{l}.eta")] = float("inf")  # member 1 blows up at once
    for p in (a, b):
        p.load_genome(flat, episodes_per_member=E)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for _ in range(4):
            obs = torch.randn(P * E, OBS, generator=g, dtype=torch.float64)
            torch.testing.assert_close(b.act(obs), a.act(obs), rtol=0, atol=1e-10)
            reward = torch.randn(P * E, generator=g, dtype=torch.float64)
            a.learn(reward)
            b.learn(reward)
            _compare(a, b, 1e-10)
            for w, w0 in zip(b.fast_weights, b.initial_weights):
                assert torch.equal(w[2:4], w0[2:4])  # member 1's rows restart from their draw
    assert b.member_invalid().tolist() == [False, True, False] == a.member_invalid().tolist()


def test_non_finite_actions_sanitised_like_torch():
    a, b = _pair({"hidden": [6], "initial_weights": RANDOM})
    flat = _genome(a)
    for p in (a, b):
        p.load_genome(flat)
    obs = torch.randn(P, OBS, dtype=torch.float64)
    obs[2, 0] = float("nan")
    with torch.no_grad():
        actions = b.act(obs)
        torch.testing.assert_close(actions, a.act(obs), rtol=0, atol=1e-12)
    assert torch.equal(actions[2], torch.full((ACT,), 0.5, dtype=torch.float64))  # the action midpoint
    assert b.invalid.tolist() == [False, False, True] == a.invalid.tolist()


@pytest.mark.parametrize("plasticity, fragment", [
    ({"modulation": "neurons"}, "plasticity.modulation: 'neurons' (fused covers none, reward, rpe)"),
    ({"eligibility_tau": 5.0}, "plasticity.eligibility_tau: 5.0"),
])
def test_unsupported_settings_are_one_line_naming_setting_and_choices(plasticity, fragment):
    cfg = {"hidden": [8], "kernel": "fused", "plasticity": plasticity}
    with pytest.raises(PlasticRLError) as info:
        HebbianMLPPolicy(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, cfg)
    message = str(info.value)
    assert "\n" not in message and fragment in message and "valid choices for this policy: kernel: torch" in message
    auto = HebbianMLPPolicy(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, {**cfg, "kernel": "auto"})
    assert auto.kernel == "torch" and fragment in auto.kernel_reason  # auto falls back and says why


def test_auto_picks_torch_for_autograd_and_without_numba(monkeypatch):
    import gymnasium as gym

    from plasticrl.agents import make_policy

    space = gym.spaces.Box(-1.0, 1.0, (OBS,)), gym.spaces.Box(-1.0, 1.0, (ACT,))
    assert make_policy({"kind": "hebbian_mlp"}, *space).kernel == "fused"
    differentiable = make_policy({"kind": "hebbian_mlp", "initial_weights": {"kind": "evolved"}}, *space,
                                 autograd=True)
    assert differentiable.kernel == "torch" and "autograd" in differentiable.kernel_reason
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` fail
    assert make_policy({"kind": "hebbian_mlp"}, *space).kernel == "torch"
    with pytest.raises(PlasticRLError, match=r"plasticrl\[fast\]"):
        make_policy({"kind": "hebbian_mlp", "kernel": "fused"}, *space)


@pytest.mark.parametrize("env", ["ant", "halfcheetah"])
def test_shipped_configs_resolve_auto_to_fused_and_say_so(env):
    from plasticrl.cli import app

    config = f"configs/{env}/hebbian_random_mlp.yaml"
    result = CliRunner().invoke(app, ["genome", config], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "kernel: fused (kernel: auto; the fused kernel covers this policy)" in " ".join(result.output.split())


def test_rollout_returns_match():
    """Through the rollout loop, seeds and all. Short: physics and policy together are chaotic, and the
    torch path's own returns, its actions nudged by 1e-15, drift apart the same way (1e-11 in the
    observations after 10 steps, 1e-4 after 35, order 1 after 50: measured on this setting)."""
    from plasticrl.agents import make_policy
    from plasticrl.envs import make_vec
    from plasticrl.rollouts.loop import rollout

    results = []
    for kernel in ("torch", "fused"):
        env = make_vec("HalfCheetah-v5", P * E)
        cfg = {"kind": "hebbian_mlp", "hidden": [16, 8], "kernel": kernel, "initial_weights": {"kind": "random"}}
        policy = make_policy(cfg, env.single_observation_space, env.single_action_space, dtype="float64")
        results.append(rollout(policy, env, _genome(policy, noise=0.3), E, max_steps=10, seed=5))
        env.close()
    a, b = results
    assert torch.equal(a.lengths, b.lengths)
    torch.testing.assert_close(b.returns, a.returns, rtol=0, atol=1e-8)
