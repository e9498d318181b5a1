"""plasticrl.envs.make_vec must reproduce gymnasium.make_vec(..., "sync") to 1e-6.

Random actions from a fixed seed; resets through termination (Hopper, Walker2d, pendulums,
Humanoid fall often), truncation (short max_episode_steps), an explicit reseed mid-run and a
partial reset through options["reset_mask"].
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from plasticrl.envs import EnvError, MujocoVectorEnv, make_vec, supported_ids

ATOL = 1e-6

#: env id -> (num_envs, steps); Humanoid is the slowest, so fewer instances.
CASES = {
    "HalfCheetah-v5": (3, 300),
    "Hopper-v5": (3, 400),
    "Walker2d-v5": (3, 400),
    "Ant-v5": (3, 300),
    "Humanoid-v5": (2, 300),
    "Swimmer-v5": (3, 300),
    "InvertedPendulum-v5": (3, 300),
    "InvertedDoublePendulum-v5": (3, 300),
}
#: Envs whose episodes end under random actions within the run (autoreset must be exercised).
TERMINATING = {"Hopper-v5", "Walker2d-v5", "Humanoid-v5", "InvertedPendulum-v5",
               "InvertedDoublePendulum-v5"}


def _compare(env_id: str, num_envs: int, steps: int, seed: int = 3, dtype=np.float32,
             reseed_at: int | None = None, mask_reset_at: int | None = None,
             **kwargs) -> dict[str, int]:
    ours = make_vec(env_id, num_envs, **kwargs)
    ref = gym.make_vec(env_id, num_envs, vectorization_mode="sync", **kwargs)
    assert isinstance(ours, MujocoVectorEnv)
    assert ours.single_observation_space == ref.single_observation_space
    assert ours.single_action_space == ref.single_action_space
    space = ref.single_action_space
    rng = np.random.default_rng(seed)
    o1, _ = ours.reset(seed=seed)
    o2, _ = ref.reset(seed=seed)
    np.testing.assert_allclose(o1, o2, rtol=0, atol=ATOL)
    counts = {"terminated": 0, "truncated": 0}
    for t in range(steps):
        if t == reseed_at:
            o1, _ = ours.reset(seed=seed + 100)
            o2, _ = ref.reset(seed=seed + 100)
            np.testing.assert_allclose(o1, o2, rtol=0, atol=ATOL, err_msg=f"reseed at {t}")
        if t == mask_reset_at:
            mask = np.zeros(num_envs, dtype=bool)
            mask[0] = True
            o1, _ = ours.reset(options={"reset_mask": mask.copy()})
            o2, _ = ref.reset(options={"reset_mask": mask.copy()})
            np.testing.assert_allclose(o1, o2, rtol=0, atol=ATOL, err_msg=f"mask reset at {t}")
        action = rng.uniform(space.low, space.high, (num_envs, *space.shape)).astype(dtype)
        obs1, rew1, term1, trunc1, _ = ours.step(action)
        obs2, rew2, term2, trunc2, _ = ref.step(action)
        np.testing.assert_allclose(obs1, obs2, rtol=0, atol=ATOL, err_msg=f"obs at step {t}")
        np.testing.assert_allclose(rew1, rew2, rtol=0, atol=ATOL, err_msg=f"reward at step {t}")
        np.testing.assert_array_equal(term1, term2, err_msg=f"terminations at step {t}")
        np.testing.assert_array_equal(trunc1, trunc2, err_msg=f"truncations at step {t}")
        assert obs1.dtype == obs2.dtype and rew1.dtype == rew2.dtype
        counts["terminated"] += int(term1.sum())
        counts["truncated"] += int(trunc1.sum())
    ours.close()
    ref.close()
    return counts


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_matches_gymnasium_with_resets(env_id: str) -> None:
    num_envs, steps = CASES[env_id]
    counts = _compare(env_id, num_envs, steps, reseed_at=steps // 2, mask_reset_at=steps // 3)
    if env_id in TERMINATING:
        assert counts["terminated"] > 0, "no episode ended: autoreset was not exercised"


def test_truncation_and_autoreset_after_time_limit() -> None:
    counts = _compare("HalfCheetah-v5", 3, 130, max_episode_steps=60)
    assert counts["truncated"] == 3 * 2  # steps 60 and 121 (one autoreset step in between)


def test_float64_actions_match() -> None:
    _compare("Ant-v5", 2, 60, dtype=np.float64)


@pytest.mark.parametrize("env_id, kwargs", [
    ("HalfCheetah-v5", {"frame_skip": 2, "reset_noise_scale": 0.5, "forward_reward_weight": 2.0,
                        "exclude_current_positions_from_observation": False}),
    ("Hopper-v5", {"terminate_when_unhealthy": False, "healthy_z_range": (0.9, 2.0),
                   "ctrl_cost_weight": 0.1, "healthy_reward": 0.5}),
    ("Walker2d-v5", {"healthy_angle_range": (-0.5, 0.5), "xml_file": "walker2d_v5.xml"}),
    ("Ant-v5", {"include_cfrc_ext_in_observation": False, "main_body": "torso",
                "contact_force_range": (-0.5, 0.5), "exclude_current_positions_from_observation": False,
                "healthy_z_range": (0.3, 1.0)}),
    ("Humanoid-v5", {"include_cinert_in_observation": False, "include_cvel_in_observation": False,
                     "contact_cost_weight": 1e-5, "healthy_z_range": (1.1, 2.0)}),
    ("Swimmer-v5", {"ctrl_cost_weight": 0.01, "exclude_current_positions_from_observation": False}),
    ("InvertedDoublePendulum-v5", {"healthy_reward": 3.0, "reset_noise_scale": 0.2}),
])
def test_gymnasium_kwargs_match(env_id: str, kwargs: dict) -> None:
    _compare(env_id, 2, 120, **kwargs)


def test_unknown_env_id_lists_valid_ones() -> None:
    with pytest.raises(EnvError) as info:
        make_vec("Antt-v5", 2)
    for env_id in supported_ids():
        assert env_id in str(info.value)


def test_unknown_kwarg_lists_valid_ones() -> None:
    with pytest.raises(EnvError, match="ctrl_cost_weight"):
        make_vec("HalfCheetah-v5", 2, ctrl_cost_wieght=0.1)


def test_bad_action_shape_rejected() -> None:
    env = make_vec("Hopper-v5", 2)
    env.reset(seed=0)
    with pytest.raises(EnvError, match=r"\(2, 3\)"):
        env.step(np.zeros((2, 4), dtype=np.float32))


def test_other_gymnasium_ids_fall_back_to_sync_vector_env() -> None:
    env = make_vec("CartPole-v1", 2)
    assert isinstance(env, gym.vector.SyncVectorEnv)
    obs, _ = env.reset(seed=1)
    ref = gym.make_vec("CartPole-v1", 2, vectorization_mode="sync")
    np.testing.assert_array_equal(obs, ref.reset(seed=1)[0])


def test_namespaced_id_is_the_same_task() -> None:
    a, b = make_vec("plasticrl/Hopper-v5", 2), make_vec("Hopper-v5", 2)
    np.testing.assert_array_equal(a.reset(seed=5)[0], b.reset(seed=5)[0])


def test_results_do_not_depend_on_thread_count() -> None:
    one, many = make_vec("Ant-v5", 6, num_threads=1), make_vec("Ant-v5", 6, num_threads=3)
    np.testing.assert_array_equal(one.reset(seed=9)[0], many.reset(seed=9)[0])
    rng = np.random.default_rng(0)
    for _ in range(60):
        a = rng.uniform(-1, 1, (6, 8)).astype(np.float32)
        for x, y in zip(one.step(a)[:4], many.step(a)[:4]):
            np.testing.assert_array_equal(x, y)


def test_seed_list_and_unseeded_reset_continue_like_gymnasium() -> None:
    ours = make_vec("Hopper-v5", 3)
    ref = gym.make_vec("Hopper-v5", 3, vectorization_mode="sync")
    seeds = [5, 17, 2]
    np.testing.assert_allclose(ours.reset(seed=seeds)[0], ref.reset(seed=seeds)[0], rtol=0, atol=ATOL)
    # A second reset without a seed continues each instance's generator.
    np.testing.assert_allclose(ours.reset()[0], ref.reset()[0], rtol=0, atol=ATOL)
