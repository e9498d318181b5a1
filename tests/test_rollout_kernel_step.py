"""The rollout's one compiled call per control step for a fused policy (bookkeeping, learn, the next step's
observations and act: ``compiled.finish_spiking``) gives the loop's results bit for bit, as it was with the
policy's own ``act`` and ``learn`` called from Python: returns, lengths, invalid members, env steps,
observation statistics and every row's final policy state, with terminations, the step cap, rules with
and without learning, diverging weights, and population shards; for the fused spiking policy
(``finish_spiking``) and the fused Hebbian MLP (``finish_mlp``: random per-episode or per-member and evolved
initial weights, every sharing level and bound)."""
import pytest
import torch

from plasticrl.agents import make_policy
from plasticrl.agents.state import map_tree
from plasticrl.envs import compiled_physics, make_vec
from plasticrl.rollouts import compiled
from plasticrl.rollouts.loop import rollout
from plasticrl.rollouts.shards import PopulationShards

from genomes import seeded_normalizer

pytest.importorskip("numba")

POPULATION, EPISODES = 3, 2
ROWS = POPULATION * EPISODES
# Ant leaves a narrow healthy z range at different steps per row: finished rows are masked while others run
ENV_KWARGS = {"HalfCheetah-v5": {"max_episode_steps": 20},
              "Ant-v5": {"max_episode_steps": 40, "healthy_z_range": (0.55, 0.95)}}
BCM = {"kind": "plastic_spiking", "hidden": [8], "plasticity": {"rule": "bcm", "modulation": "reward",
                                                                 "eta_scale": 0.05}, "kernel": "fused"}


def _genome(policy, scale: float = 0.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    genome = policy.initial_genome(POPULATION)
    return genome + scale * torch.randn(genome.shape, generator=g, dtype=genome.dtype)


def _state(policy) -> list[torch.Tensor]:
    """Every tensor of the policy's episode state (any kind: its tree walked; with reward_input the stored
    previous reward), the initial weights its finite guard restores, and its invalid rows."""
    tensors: list[torch.Tensor] = []
    map_tree(lambda t: tensors.append(t.clone()), policy.episode_state())
    tensors += [w.clone() for w in getattr(policy, "initial_weights", [])]
    return tensors + [policy.invalid.clone()]


def _counting(monkeypatch, name: str = "finish_spiking") -> list[int]:
    calls = [0]
    inner = getattr(compiled, name)

    def counted(*args):
        calls[0] += 1
        return inner(*args)

    monkeypatch.setattr(compiled, name, counted)
    return calls


def _rollout(env_id, cfg, kernel_step: bool, dtype="float32", max_steps=None, scale=0.5):
    # random per-episode initial weights are drawn at the reset in rollout's load_genome, from each row's
    # episode seed, before the loop asks for the kernels' arguments (the rollout resets nothing after)
    env = make_vec(env_id, ROWS, **ENV_KWARGS[env_id])
    policy = make_policy(cfg, env.single_observation_space, env.single_action_space, dtype=dtype)
    if not kernel_step:
        policy.kernel_step = lambda *args: None  # the policy's act and learn, called from Python
    result = rollout(policy, env, _genome(policy, scale), EPISODES, max_steps=max_steps, seed=21,
                     obs_norm=seeded_normalizer(policy.obs_dim), collect_obs_moments=True)
    env.close()
    return result, _state(policy)


def _assert_same(a, b):
    (ra, sa), (rb, sb) = a, b
    assert torch.equal(ra.returns, rb.returns) and torch.equal(ra.lengths, rb.lengths)
    assert torch.equal(ra.invalid, rb.invalid) and ra.env_steps == rb.env_steps
    assert all(torch.equal(x, y) for x, y in zip(ra.obs_rows, rb.obs_rows))
    assert len(sa) == len(sb) and all(torch.equal(x, y) for x, y in zip(sa, sb))


# the random-weight Hebbian MLP of the Ant configs (configs/ant/hebbian_random_mlp.yaml), smaller
MLP = {"kind": "hebbian_mlp", "hidden": [16, 8], "kernel": "fused",
       "initial_weights": {"kind": "random", "distribution": "uniform", "scale": 0.1, "draw": "per_episode"},
       "plasticity": {"rule": "hebbian_abcd", "sharing": "synapse", "modulation": "none", "eta_scale": 0.1,
                      "bounds": "normalise", "weight_limit": 1.0}}

CONFIGS = {
    "bcm_reward": (BCM, "float32", 0.5),
    "oja_rpe_alif_population_float64": ({**BCM, "hidden": [8, 6], "neuron": {"model": "alif"},
                                         "encoder": {"kind": "population", "centres": 3},
                                         "plasticity": {"rule": "oja", "modulation": "rpe", "eta_scale": 0.1,
                                                        "bounds": "normalise"}}, "float64", 0.5),
    "abcd_rate_spiking_input": ({**BCM, "decoder": {"kind": "rate"}, "encoder": {"spiking": True},
                                 "plasticity": {"rule": "hebbian_abcd", "modulation": "none", "sharing": "post",
                                                "eta_scale": 0.2}}, "float32", 0.5),
    "learning_off": ({**BCM, "plasticity": {"rule": "bcm", "eta_scale": 0.0}}, "float32", 0.5),
    "random_initial_weights": ({**BCM, "initial_weights": {"kind": "random", "scale": 0.5}}, "float32", 0.5),
    "diverging_weights": ({**BCM, "plasticity": {"rule": "hebbian_abcd", "modulation": "reward", "bounds": "none",
                                                 "eta_scale": 1e38}}, "float32", 3.0),
    "reward_input": ({**BCM, "reward_input": True, "reward_input_scale": 0.3}, "float32", 0.5),
    "reward_input_population_float64": ({**BCM, "reward_input": True, "reward_input_scale": 0.7,
                                         "encoder": {"kind": "population", "centres": 3}}, "float64", 0.5),
    "mlp_random_abcd_synapse_normalise": (MLP, "float32", 0.5),
    "mlp_reward_input_learning_off": ({**MLP, "reward_input": True, "reward_input_scale": 0.3,
                                       "plasticity": {"rule": "hebbian_abcd", "eta_scale": 0.0}}, "float32", 0.5),
    "mlp_reward_input_oja_rpe_float64": ({**MLP, "reward_input": True, "reward_input_scale": 0.7,
                                          "plasticity": {"rule": "oja", "modulation": "rpe", "eta_scale": 0.2}},
                                         "float64", 0.5),
    "mlp_random_per_member_normal_oja_rpe_post_clip_float64": (
        {**MLP, "initial_weights": {"kind": "random", "distribution": "normal", "scale": 0.3, "draw": "per_member"},
         "plasticity": {"rule": "oja", "sharing": "post", "modulation": "rpe", "eta_scale": 0.2, "bounds": "clip"}},
        "float64", 0.5),
    "mlp_evolved_abcd_layer_reward_no_bound_hidden_layers": (
        {**MLP, "initial_weights": {"kind": "evolved"},
         "plasticity": {"rule": "hebbian_abcd", "sharing": "layer", "modulation": "reward", "eta_scale": 0.05,
                        "bounds": "none", "layers": "hidden"}}, "float32", 0.5),
    "mlp_random_abcd_global_reward_output_layer": (
        {**MLP, "plasticity": {"rule": "hebbian_abcd", "sharing": "global", "modulation": "reward",
                               "eta_scale": 0.1, "bounds": "normalise", "layers": "output"}}, "float32", 0.5),
    "mlp_static_evolved": ({**MLP, "initial_weights": {"kind": "evolved"}, "plasticity": {"rule": "none"}},
                           "float32", 0.5),
    "mlp_learning_off": ({**MLP, "plasticity": {"rule": "hebbian_abcd", "eta_scale": 0.0}}, "float32", 0.5),
    "mlp_diverging_weights": ({**MLP, "plasticity": {"rule": "hebbian_abcd", "modulation": "reward",
                                                     "bounds": "none", "eta_scale": 1e38}}, "float32", 3.0),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_one_compiled_call_per_step_matches_act_and_learn_from_python(name, monkeypatch):
    cfg, dtype, scale = CONFIGS[name]
    calls = _counting(monkeypatch, "finish_mlp" if cfg["kind"] == "hebbian_mlp" else "finish_spiking")
    fused = _rollout("Ant-v5", cfg, True, dtype, scale=scale)
    assert calls[0] == fused[0].lengths.max()  # one compiled call per control step
    reference = _rollout("Ant-v5", cfg, False, dtype, scale=scale)
    assert calls[0] == fused[0].lengths.max()  # the reference did not take it
    _assert_same(fused, reference)
    assert fused[0].lengths.min() < fused[0].lengths.max()  # rows finished at different steps
    if name.endswith("diverging_weights"):
        assert bool(fused[0].invalid.any())


def test_the_step_cap_stops_both_paths_at_the_same_step():
    fused = _rollout("HalfCheetah-v5", BCM, True, max_steps=7)
    _assert_same(fused, _rollout("HalfCheetah-v5", BCM, False, max_steps=7))
    assert fused[0].env_steps == 7 * ROWS


@pytest.mark.parametrize("cfg", [BCM, MLP], ids=["spiking", "hebbian_mlp"])
def test_shards_with_the_compiled_step_match_one_env_without_it(cfg, monkeypatch):
    # shards end at different steps and run on to the slowest (the sync phase begins each step itself); their
    # one-thread envs run whole control steps compiled (compiled.run_spiking / run_mlp) where they can
    reference = _rollout("Ant-v5", cfg, False)
    runs = (_counting(monkeypatch, "run_mlp" if cfg["kind"] == "hebbian_mlp" else "run_spiking")
            if compiled_physics.AVAILABLE else [1])

    def make_env(rows):
        return make_vec("Ant-v5", rows, num_threads=1, **ENV_KWARGS["Ant-v5"])

    sharded = PopulationShards(make_env, lambda env: make_policy(cfg, env.single_observation_space,
                                                                 env.single_action_space), 3)
    template = sharded.make_policy(make_vec("Ant-v5", 1, **ENV_KWARGS["Ant-v5"]))
    result = sharded.rollout(_genome(template), EPISODES, seed=21, obs_norm=seeded_normalizer(template.obs_dim),
                             collect_obs_moments=True)
    states = [_state(p) for _, p in sharded.pairs]
    sharded.close()
    assert torch.equal(result.returns, reference[0].returns) and torch.equal(result.lengths, reference[0].lengths)
    assert torch.equal(result.invalid, reference[0].invalid) and result.env_steps == reference[0].env_steps
    assert all(torch.equal(x, y) for x, y in zip(result.obs_rows, reference[0].obs_rows))
    for i, tensor in enumerate(reference[1]):
        assert torch.equal(torch.cat([s[i] for s in states]), tensor)
    per_shard = result.lengths.max(dim=1).values
    assert len(set(per_shard.tolist())) > 1  # members (one per shard) finished at different steps
    assert runs[0] > 0


@pytest.mark.parametrize("cfg, expected", [
    (BCM, (True,)),
    ({**BCM, "plasticity": {"rule": "bcm", "eta_scale": 0.0}}, (False,)),  # the frozen twin learns nothing
    ({**BCM, "kernel": "torch"}, None),
    ({**BCM, "reward_input": True}, (True,)),  # the loop writes its reward column
    ({"kind": "linear"}, None),
    (MLP, (True,)),
    ({**MLP, "plasticity": {"rule": "hebbian_abcd", "eta_scale": 0.0}}, (False,)),
    ({**MLP, "initial_weights": {"kind": "evolved"}, "plasticity": {"rule": "none"}}, (False,)),  # static
    ({**MLP, "reward_input": True}, (True,)),
    ({**MLP, "kernel": "torch"}, None),
])
def test_which_policies_hand_their_kernels_to_the_loop(cfg, expected):
    import numpy as np

    env = make_vec("HalfCheetah-v5", 2)
    policy = make_policy(cfg, env.single_observation_space, env.single_action_space)
    policy.load_genome(policy.initial_genome(2))
    dtype = np.float32
    obs, actions, reward = (np.zeros((2, policy.input_dim), dtype), np.zeros((2, policy.act_dim), dtype),
                            np.full(2, 5.0, dtype))
    step = policy.kernel_step(obs, actions, reward)
    env.close()
    if expected is None:
        assert step is None
        return
    assert step.kind == ("mlp" if cfg["kind"] == "hebbian_mlp" else "spiking") and (step.learn_on,) == expected
    assert step.act[0] is obs and any(a is actions for a in step.act) and step.learn[0] is reward
    if cfg.get("reward_input"):  # the reward buffer is the stored previous reward (0 after the reset), scale 1
        assert step.reward_scale.tolist() == [1.0] and reward.tolist() == [0.0, 0.0]
        assert np.shares_memory(policy.episode_state().previous_reward.numpy(), reward)
    else:
        assert step.reward_scale.shape == (0,)
