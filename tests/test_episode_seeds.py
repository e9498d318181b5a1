"""env.train_episode_seeds: shared gives every ES member the same training episodes (goals included)."""
import pytest
import torch

from plasticrl.config import load_config
from plasticrl.trainers.evaluator import LocalEvaluator

BASE = ["env.id=HalfCheetahDir-v5", "env.max_episode_steps=30", "policy.kind=linear",
        "logging.wandb.mode=disabled", "train.episodes_per_member=2"]


def _returns(draw: str):
    cfg = load_config(None, BASE + [f"env.train_episode_seeds={draw}"])
    ev = LocalEvaluator(cfg, 3 * 2)
    try:
        torch.manual_seed(0)
        one = ev.policy.initial_genome(1)
        genome = (one + 0.5 * torch.randn_like(one)).repeat(3, 1)  # three identical members
        return ev.evaluate(genome, 2, seed=123, obs_norm=None, collect_obs_moments=False).returns
    finally:
        ev.close()


def test_shared_seeds_give_identical_members_identical_returns():
    shared = _returns("shared")
    # member m, episode e is reset with seed 123 + e whatever m: same start, same goal, same return
    assert torch.equal(shared[0], shared[1]) and torch.equal(shared[1], shared[2])
    # the two episodes of a member differ (different seeds)
    assert shared[0, 0] != shared[0, 1]
    per_row = _returns("per_row")
    # per row, member m's episode e is seed 123 + 2m + e: member 0 sees the shared episodes, the others not
    assert torch.equal(per_row[0], shared[0])
    assert not torch.equal(per_row[1], per_row[0])


def test_shared_seeds_refused_for_ppo():
    from plasticrl.errors import PlasticRLError

    with pytest.raises(PlasticRLError, match="train_episode_seeds"):
        load_config(None, BASE + ["env.train_episode_seeds=shared", "trainer=ppo"])
