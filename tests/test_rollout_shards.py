"""Population shards stepped on threads give the one-env rollout's results bit for bit: returns, lengths,
invalid members, env steps, observation statistics and every row's final policy state, with terminations
and autoresets mid-rollout, per-row training perturbations and a mid-episode push, on even and uneven
shards."""
import numpy as np
import pytest
import torch

from plasticrl.agents import make_policy
from plasticrl.envs import TRAINING_DISTRIBUTIONS, make_vec
from plasticrl.errors import PlasticRLError
from plasticrl.rollouts.loop import rollout
from plasticrl.rollouts.shards import PopulationShards, shard_bounds

from genomes import seeded_normalizer

pytest.importorskip("numba")

POPULATION, EPISODES = 5, 2
ROWS = POPULATION * EPISODES
PLASTIC = {"kind": "plastic_spiking", "hidden": [8], "plasticity": {"rule": "bcm", "modulation": "reward",
                                                                     "eta_scale": 0.05}, "kernel": "fused"}
# Ant terminates once its torso leaves the healthy z range: a narrow range makes rows end at different
# steps, so finished rows are autoreset (and masked) while others still run, inside one shard and across
# shards; HalfCheetah never terminates: its rows all truncate at the cap.
ENV_KWARGS = {"HalfCheetah-v5": {"max_episode_steps": 30},
              "Ant-v5": {"max_episode_steps": 60, "healthy_z_range": (0.45, 1.0)}}
PUSH = {"name": "push", "force": 150.0, "direction_deg": 90.0, "duration": 3, "start_step": 7}


def _genome(policy) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    genome = policy.initial_genome(POPULATION)
    return genome + 0.5 * torch.randn(genome.shape, generator=g, dtype=genome.dtype)


def _options(env_id: str) -> dict:
    per_row = TRAINING_DISTRIBUTIONS["train"](env_id, ROWS, np.random.default_rng(0))
    return {"perturbations": [list(p) + [PUSH] for p in per_row]}


def _state(policy) -> list[torch.Tensor]:
    """Every per-row tensor of the policy's live state (row-major first dimension)."""
    s = policy.live_state
    tensors = [s.output.v] + [h.v for h in s.hidden] + list(s.weights)
    tensors += [getattr(s, k)[layer] for k in ("pre", "post", "theta") for layer in sorted(getattr(s, k))]
    return [t.clone() for t in tensors]


def _unsharded(env_id: str, policy_cfg: dict):
    env = make_vec(env_id, ROWS, **ENV_KWARGS[env_id])
    policy = make_policy(policy_cfg, env.single_observation_space, env.single_action_space)
    result = rollout(policy, env, _genome(policy), EPISODES, seed=21, obs_norm=seeded_normalizer(policy.obs_dim),
                     collect_obs_moments=True, reset_options=_options(env_id))
    env.close()
    return result, policy


def _sharded(env_id: str, policy_cfg: dict, shards: int):
    made = []

    def make_env(rows):
        made.append(rows)
        return make_vec(env_id, rows, num_threads=1, **ENV_KWARGS[env_id])

    sharded = PopulationShards(make_env, lambda env: make_policy(policy_cfg, env.single_observation_space,
                                                                 env.single_action_space), shards)
    policy = sharded.make_policy(make_vec(env_id, 1, **ENV_KWARGS[env_id]))
    result = sharded.rollout(_genome(policy), EPISODES, seed=21, obs_norm=seeded_normalizer(policy.obs_dim),
                             collect_obs_moments=True, reset_options=_options(env_id))
    policies = [p for _, p in sharded.pairs]
    sharded.close()
    return result, policies, made


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Ant-v5"])
def test_sharded_rollout_is_bit_identical(env_id):
    whole, policy = _unsharded(env_id, PLASTIC)
    if env_id == "Ant-v5":  # rows ended at different steps: autoresets happened mid-rollout
        assert whole.lengths.min() < whole.lengths.max() < 60
    for shards, sizes in ((2, [6, 4]), (3, [4, 4, 2])):
        part, policies, made = _sharded(env_id, PLASTIC, shards)
        assert made == sizes  # members 3+2 and 2+2+1, two episodes each
        assert torch.equal(part.returns, whole.returns) and torch.equal(part.lengths, whole.lengths)
        assert torch.equal(part.invalid, whole.invalid) and part.env_steps == whole.env_steps
        for a, b in zip(part.obs_rows, whole.obs_rows):
            assert torch.equal(a, b)
        joined = [torch.cat(ts) for ts in zip(*(_state(p) for p in policies))]
        assert all(torch.equal(a, b) for a, b in zip(joined, _state(policy)))


def test_sharded_linear_policy_is_bit_identical():
    whole, _ = _unsharded("Ant-v5", {"kind": "linear"})
    part, _, _ = _sharded("Ant-v5", {"kind": "linear"}, 2)
    assert torch.equal(part.returns, whole.returns) and torch.equal(part.lengths, whole.lengths)
    assert part.env_steps == whole.env_steps


def test_shard_bounds_split_members_evenly():
    assert shard_bounds(5, 3) == [(0, 2), (2, 4), (4, 5)]
    assert shard_bounds(4, 2) == [(0, 2), (2, 4)]
    assert shard_bounds(2, 4) == [(0, 1), (1, 2)]  # never an empty shard
    with pytest.raises(PlasticRLError, match="shards must be >= 1"):
        shard_bounds(4, 0)


def test_a_failing_shard_raises_its_error_without_hanging():
    env_id = "HalfCheetah-v5"
    sharded = PopulationShards(lambda rows: make_vec(env_id, rows, num_threads=1, max_episode_steps=20),
                               lambda env: make_policy(PLASTIC, env.single_observation_space,
                                                       env.single_action_space), 3)
    genome = _genome(sharded.make_policy(make_vec(env_id, 1)))
    sharded.rollout(genome, 1, seed=0)  # builds the shards
    calls = {"n": 0}
    policy = sharded.pairs[2][1]
    act = policy.act

    def failing_act(obs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("shard 2 broke")
        return act(obs)

    policy.act = failing_act
    with pytest.raises(RuntimeError, match="shard 2 broke"):
        sharded.rollout(genome, 1, seed=0)
    sharded.close()


def test_es_training_with_threads_matches_one_thread(tmp_path, monkeypatch):
    import json
    from pathlib import Path

    from plasticrl.config import load_config
    from plasticrl.trainers.es import ESTrainer

    base = ["env.id=Ant-v5", "env.max_episode_steps=25", "env.kwargs={healthy_z_range: [0.45, 1.0]}",
            "policy.hidden=[8]", "policy.kernel=fused", "es.params={population_size: 10, sigma: 0.1, learning_rate: 0.05}",
            "train.generations=2", "train.eval_every=2", "train.eval_episodes=2", "train.episodes_per_member=2",
            "env.train_perturbation=train", "logging.wandb.mode=disabled", "logging.progress=false"]
    timing = ("generation_seconds", "wall_seconds", "env_steps_per_s")

    def metrics(run_dir):
        rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k not in timing} for r in rows]

    one = ESTrainer(load_config(None, base), tmp_path / "one").train()
    sharded_calls = []
    sharded_rollout = PopulationShards.rollout
    monkeypatch.setattr(PopulationShards, "rollout", lambda self, *a, **k: sharded_calls.append(self.shards)
                        or sharded_rollout(self, *a, **k))
    three = ESTrainer(load_config(None, base + ["train.threads=3"]), tmp_path / "three").train()
    assert metrics(tmp_path / "one") == metrics(tmp_path / "three")
    assert sharded_calls == [3, 3]  # both generations' populations ran in three shards
    assert torch.equal(one.center, three.center) and one.env_steps == three.env_steps
