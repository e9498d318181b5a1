"""The locomotion tasks' compiled step (observations, rewards, terminations, positions in one numba loop)
gives the numpy step's values bit for bit: the lean step the rollout takes equals Gymnasium's step, with
autoresets, terminations, perturbations and goal switches; and its sums are numpy's pairwise sums."""
import numpy as np
import pytest

from plasticrl.envs import TRAINING_DISTRIBUTIONS, make_vec

compiled = pytest.importorskip("plasticrl.envs.tasks.compiled")
pytest.importorskip("numba")

CASES = [
    ("HalfCheetah-v5", {}),
    ("HalfCheetah-v5", {"exclude_current_positions_from_observation": False, "ctrl_cost_weight": 0.37}),
    ("HalfCheetahDir-v5", {"switch_step": 6}),
    ("HalfCheetahDir-v5", {"switch_step": [3, 9], "goal_observed": True}),
    ("HalfCheetahVel-v5", {"switch_step": 5, "goal_observed": True}),
    ("Ant-v5", {"healthy_z_range": (0.45, 1.0)}),
    ("Ant-v5", {"include_cfrc_ext_in_observation": False, "exclude_current_positions_from_observation": False,
                "contact_force_range": (-0.3, 0.5), "main_body": "torso", "terminate_when_unhealthy": False,
                "healthy_z_range": (0.45, 1.0)}),
    ("AntDir-v5", {"directions": 4, "switch_step": 7, "goal_observed": True, "healthy_z_range": (0.45, 1.0)}),
    ("AntDir-v5", {"directions": "continuous", "switch_step": [2, 8]}),
]


@pytest.mark.parametrize("env_id, kwargs", CASES, ids=[f"{e}-{i}" for i, (e, _) in enumerate(CASES)])
def test_lean_step_equals_the_gymnasium_step(env_id, kwargs):
    rows = 6
    gym_env = make_vec(env_id, rows, max_episode_steps=12, **kwargs)
    lean_env = make_vec(env_id, rows, max_episode_steps=12, **kwargs)
    options = {"perturbations": [list(p) + [{"name": "push", "force": 200.0, "start_step": 2, "duration": 2}]
                                 for p in TRAINING_DISTRIBUTIONS["train"](env_id, rows, np.random.default_rng(1))]}
    obs_a, _ = gym_env.reset(seed=3, options=options)
    obs_b, _ = lean_env.reset(seed=3, options=options)
    assert np.array_equal(obs_a, obs_b)
    rng = np.random.default_rng(0)
    used = {"compiled": 0}
    evaluate = lean_env.task.evaluate_compiled

    def counting(*args):
        out = evaluate(*args)
        used["compiled"] += out is not None
        return out

    lean_env.task.evaluate_compiled = counting
    ended = 0
    for _ in range(30):  # through truncations (12 steps), terminations and the autoresets after them
        actions = rng.uniform(-1.5, 1.5, (rows, gym_env.single_action_space.shape[0]))
        obs_a, reward_a, term_a, trunc_a, info = gym_env.step(actions)
        lean_env.step_async(actions)
        obs_b, reward_b, term_b, trunc_b, unstable = lean_env.step_wait_lean()
        for a, b in ((obs_a, obs_b), (reward_a, reward_b), (term_a, term_b), (trunc_a, trunc_b),
                     (info["unstable"], unstable)):
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
        assert np.array_equal(gym_env._before, lean_env._before)  # the next step's velocities start equal
        ended += int((term_a | trunc_a).sum())
    assert used["compiled"] == 30 and ended >= rows
    gym_env.close()
    lean_env.close()


def test_tasks_without_a_compiled_step_keep_numpy():
    env = make_vec("Hopper-v5", 2)
    env.reset(seed=0)
    assert env.task.evaluate_compiled(env.pool.arrays, env._before, np.zeros((2, 3)), env.dt) is None
    env.step_async(np.zeros((2, 3)))
    obs, reward, terminated, truncated, unstable = env.step_wait_lean()
    assert obs.shape == (2, 11) and unstable.dtype == bool
    env.close()


@pytest.mark.parametrize("width", [1, 5, 6, 7, 8, 9, 16, 17, 84, 128, 129, 300])
def test_pairwise_row_sums_are_numpys(width):
    rng = np.random.default_rng(width)
    x = rng.standard_normal((200, width)) * np.exp(rng.uniform(-20, 20, (200, width)))
    out = np.array([compiled.row_sum(np.ascontiguousarray(row)) for row in x])
    assert np.array_equal(out, np.sum(x, axis=1))
    if width >= 8:  # a sequential sum differs: the order matters and is numpy's
        assert not np.array_equal(np.array([sum(row.tolist()) for row in x]), np.sum(x, axis=1))


def test_ant_step_handles_non_finite_states_as_numpy_does():
    env = make_vec("Ant-v5", 3)
    env.reset(seed=0)
    s = {k: np.array(v, copy=True) for k, v in env.pool.arrays.items()}
    s["qpos"][0, 5] = np.nan  # not healthy: terminated, no survive reward
    s["qvel"][1, 0] = np.inf
    s["cfrc_ext"][2, 3, 1] = np.nan  # clip keeps NaN: NaN observation and contact cost
    s["cfrc_ext"][1, 2, 4] = -7.0
    before, action = env._before + 0.01, np.full((3, 8), 0.3)
    obs, reward, terminated, position = env.task.evaluate_compiled(s, before, action, env.dt)
    ref_reward, ref_terminated, _ = env.task.evaluate(s, before, action, env.dt)
    assert np.array_equal(obs, env.task.observe(s), equal_nan=True)
    assert np.array_equal(reward, ref_reward, equal_nan=True) and np.array_equal(terminated, ref_terminated)
    assert terminated.tolist()[:2] == [True, True] and np.isnan(reward[2])
    assert np.array_equal(position, env.task.position(s))
    env.close()
