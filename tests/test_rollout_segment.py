"""Control steps run entirely in compiled code (``compiled.run_spiking`` / ``run_mlp`` over the env's
``compiled_step``: physics, task, time limit, instability flags, bookkeeping, act and learn) leave the env and
the rollout exactly where the Python steps leave them: the env's step against ``step_async`` + ``step_wait_lean``
on HalfCheetah-v5 and Ant-v5 (terminations, autoresets, contact forces in and out of the observation), and whole
rollouts against the loop with the env stepped from Python, for spiking and Hebbian MLP policies and the step
cap (shards that run on to the slowest: ``test_rollout_kernel_step.py``); and the env says when it cannot be
stepped this way."""
import warnings

import numpy as np
import pytest

from plasticrl.agents import make_policy
from plasticrl.envs import compiled_physics, make_vec
from plasticrl.envs.mujoco_warnings import MujocoWarning
from plasticrl.rollouts import compiled
from plasticrl.rollouts.loop import rollout

from genomes import seeded_normalizer
from test_rollout_kernel_step import BCM, CONFIGS, ENV_KWARGS, EPISODES, MLP, ROWS, _assert_same, _genome, _state

pytestmark = pytest.mark.skipif(not compiled_physics.AVAILABLE, reason="needs numba and MuJoCo's C library")

NARROW_ANT = {"healthy_z_range": (0.55, 0.95)}  # Ant falls out of it at different steps per instance


@pytest.mark.parametrize("env_id, kwargs", [
    ("HalfCheetah-v5", {}), ("Ant-v5", NARROW_ANT),
    ("Ant-v5", {**NARROW_ANT, "include_cfrc_ext_in_observation": False})])
def test_the_compiled_env_step_equals_step_async_and_step_wait_lean(env_id, kwargs):
    from plasticrl.envs.compiled_step import env_step

    envs = [make_vec(env_id, 5, num_threads=1, max_episode_steps=30, **kwargs) for _ in range(2)]
    for env in envs:
        env.reset(seed=4)
    rng = np.random.default_rng(2)
    compiled_steps = python_steps = 0
    unstable = 0
    for t in range(90):
        actions = rng.uniform(-1, 1, (5, envs[0].single_action_space.shape[0]))
        if t == 10:  # MuJoCo finds instance 2 unstable at the next step (and resets its state)
            for env in envs:
                env.pool.datas[2].qvel[:] = 1e30
        envs[0].step_async(actions)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MujocoWarning)
            expected = envs[0].step_wait_lean()
        step = envs[1].compiled_step()
        if step is None:  # an instance awaits its reset: the env's Python step does it
            assert envs[1]._autoreset.any()
            envs[1].step_async(actions)
            got = envs[1].step_wait_lean()
            python_steps += 1
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MujocoWarning)
                waiting = env_step(step.physics, step.task, step.state, actions)
            got = step.state[:5]
            assert waiting == bool(got[2].any() or got[3].any())
            compiled_steps += 1
        for x, y in zip(expected, got):
            np.testing.assert_array_equal(x, y, err_msg=f"step {t}")
        unstable += int(expected[4].sum())
    assert unstable > 0  # the flags were raised, and equal
    assert compiled_steps > 60 and python_steps >= 2  # both kinds of step, and resets between them
    np.testing.assert_array_equal(envs[0]._elapsed, envs[1]._elapsed)
    np.testing.assert_array_equal(envs[0]._before, envs[1]._before)


def _counting_runs(monkeypatch) -> list[int]:
    """Steps taken inside compiled.run_spiking and run_mlp, summed over their calls."""
    taken = [0]
    for name in ("run_spiking", "run_mlp"):
        inner = getattr(compiled, name)

        def counted(*args, inner=inner):
            steps, began = inner(*args)
            taken[0] += steps
            return steps, began

        monkeypatch.setattr(compiled, name, counted)
    return taken


def _rollout(env_id, cfg, dtype, scale, compiled_env: bool, max_steps=None):
    env = make_vec(env_id, ROWS, num_threads=1, **ENV_KWARGS[env_id])
    if not compiled_env:
        env.compiled_step = lambda: None  # the env stepped from Python, the policy's step still compiled
    policy = make_policy(cfg, env.single_observation_space, env.single_action_space, dtype=dtype)
    result = rollout(policy, env, _genome(policy, scale), EPISODES, max_steps=max_steps, seed=21,
                     obs_norm=seeded_normalizer(policy.obs_dim), collect_obs_moments=True)
    env.close()
    return result, _state(policy)


@pytest.mark.parametrize("name", ["bcm_reward", "oja_rpe_alif_population_float64", "reward_input",
                                  "diverging_weights", "mlp_random_abcd_synapse_normalise",
                                  "mlp_reward_input_oja_rpe_float64"])
def test_rollouts_with_compiled_env_steps_match_python_env_steps(name, monkeypatch):
    cfg, dtype, scale = CONFIGS[name]
    taken = _counting_runs(monkeypatch)
    fast = _rollout("Ant-v5", cfg, dtype, scale, True)
    steps = int(fast[0].env_steps // ROWS)
    assert taken[0] > steps // 2  # most control steps ran compiled (the Python ones reset fallen robots)
    before = taken[0]
    _assert_same(fast, _rollout("Ant-v5", cfg, dtype, scale, False))
    assert taken[0] == before  # the reference took none
    assert fast[0].lengths.min() < fast[0].lengths.max()  # rows finished at different steps


@pytest.mark.parametrize("cfg", [BCM, MLP], ids=["spiking", "hebbian_mlp"])
def test_the_step_cap_stops_compiled_env_steps_where_python_stops(cfg, monkeypatch):
    taken = _counting_runs(monkeypatch)
    fast = _rollout("HalfCheetah-v5", cfg, "float32", 0.5, True, max_steps=7)
    assert taken[0] == 7 and fast[0].env_steps == 7 * ROWS  # HalfCheetah-v5 never resets: all compiled
    _assert_same(fast, _rollout("HalfCheetah-v5", cfg, "float32", 0.5, False, max_steps=7))


@pytest.mark.parametrize("make, why", [
    (lambda: make_vec("HalfCheetah-v5", 2, num_threads=1), "no reset yet"),
    (lambda: make_vec("HalfCheetah-v5", 2, num_threads=2), "two physics threads"),
    (lambda: make_vec("HalfCheetah-v5", 2, num_threads=1, physics_backend="batch"), "mujoco.batch"),
    (lambda: make_vec("HalfCheetahDir-v5", 2, num_threads=1), "a goal task"),
    (lambda: make_vec("HalfCheetah-v5", 2, num_threads=1, perturbation={"name": "action_noise", "std": 0.1}),
     "a runtime perturbation"),
    (lambda: make_vec("Hopper-v5", 2, num_threads=1), "a task without a compiled step"),
])
def test_envs_that_need_python_between_steps_say_so(make, why):
    env = make()
    if why != "no reset yet":
        env.reset(seed=0)
    assert env.compiled_step() is None, why


def test_an_instance_awaiting_its_reset_sends_the_step_back_to_python():
    env = make_vec("HalfCheetah-v5", 2, num_threads=1, max_episode_steps=2)
    env.reset(seed=0)
    assert env.compiled_step() is not None
    for _ in range(2):
        env.step(np.zeros((2, 6)))
    assert env._autoreset.all() and env.compiled_step() is None
    env.step(np.zeros((2, 6)))  # the autoreset
    assert env.compiled_step() is not None
