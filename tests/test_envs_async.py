"""The engine's split step: step_async starts the physics on the worker threads, step_wait
finishes it; the pair equals step(), and misuse is refused. The physics backends (mujoco.batch,
per-instance mj_step on threads, and mj_step from a compiled loop) give the same trajectories."""
import numpy as np
import pytest

from plasticrl.envs import EnvError, make_vec
from plasticrl.envs import compiled_physics
from plasticrl.envs.engine import UNSTABLE_WARNINGS, BatchPhysicsPool, CompiledPhysicsPool, PhysicsPool
from plasticrl.envs.mujoco_warnings import MujocoWarning


def test_step_async_then_wait_equals_step():
    a, b = make_vec("Hopper-v5", 4), make_vec("Hopper-v5", 4)
    a.reset(seed=3)
    b.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(60):  # long enough for falls and autoresets
        actions = rng.uniform(-1, 1, (4, 3))
        expected = a.step(actions)
        b.step_async(actions)
        got = b.step_wait()
        for x, y in zip(expected[:4], got[:4]):
            assert np.array_equal(x, y)


def test_step_async_then_reset_is_refused():
    env = make_vec("HalfCheetah-v5", 2)
    env.reset(seed=0)
    env.step_async(env.action_space.sample() * 0)
    with pytest.raises(EnvError, match="step_async"):
        env.reset(seed=1)
    env.step_wait()
    with pytest.raises(EnvError, match="without a pending step_async"):
        env.step_wait()


def test_physics_backends_give_identical_trajectories():
    """Falls and autoresets, per-instance conditions (a limb lost mid-episode, a push, a heavier
    body, a dead motor) and a partial reset: every observation and reward bit for bit equal."""
    conditions = [None, [{"name": "remove_limb", "segment": "thigh", "start_step": 5}],
                  [{"name": "push", "force": 30.0, "duration": 3, "start_step": 4, "period": 9}],
                  [{"name": "mass_scale", "scale": 1.7}],
                  [{"name": "dead_actuator", "actuator": [1], "start_step": 6}]]
    envs = [make_vec("Hopper-v5", 5, physics_backend="threads", num_threads=2),
            make_vec("Hopper-v5", 5, physics_backend="batch", num_threads=1),
            make_vec("Hopper-v5", 5, physics_backend="batch", num_threads=2)]
    assert [type(e.pool) for e in envs] == [PhysicsPool, BatchPhysicsPool, BatchPhysicsPool]
    if compiled_physics.AVAILABLE:  # one thread, and three threads over uneven ranges of instances
        envs += [make_vec("Hopper-v5", 5, physics_backend="compiled", num_threads=n) for n in (1, 3)]
        assert [type(e.pool) for e in envs[3:]] == [CompiledPhysicsPool] * 2
    first = [e.reset(seed=5, options={"perturbations": conditions})[0] for e in envs]
    for obs in first[1:]:
        np.testing.assert_array_equal(obs, first[0])
    rng = np.random.default_rng(1)
    ended = 0
    for t in range(80):
        if t == 40:
            mask = np.array([False, True, False, False, True])
            got = [e.reset(seed=11, options={"reset_mask": mask})[0] for e in envs]
            for obs in got[1:]:
                np.testing.assert_array_equal(obs, got[0])
        actions = rng.uniform(-1, 1, (5, 3))
        steps = [e.step(actions) for e in envs]
        for other in steps[1:]:
            for x, y in zip(steps[0][:4], other[:4]):
                np.testing.assert_array_equal(x, y, err_msg=f"step {t}")
        ended += int(steps[0][2].sum())
    assert ended > 0, "no fall: autoreset was not exercised"
    # what a step returned is the caller's: the batch backend's live arrays must not leak into it
    kept = envs[2].step(actions)
    saved = [np.array(x, copy=True) for x in kept[:2]] + [kept[4]["x_position"].copy()]
    envs[2].step(-actions)
    for before, now in zip(saved, [kept[0], kept[1], kept[4]["x_position"]]):
        np.testing.assert_array_equal(before, now)
    envs[0].step(actions)
    envs[0].step(-actions)
    for a, b in zip(envs[0].datas, envs[2].datas):
        np.testing.assert_array_equal(a.qpos, b.qpos)
        np.testing.assert_array_equal(a.xfrc_applied, b.xfrc_applied)


def test_physics_backend_choice():
    assert isinstance(make_vec("HalfCheetah-v5", 2, num_threads=2).pool, BatchPhysicsPool)
    with pytest.raises(EnvError, match="rnePostConstraint"):
        make_vec("Ant-v5", 2, physics_backend="batch")
    with pytest.raises(EnvError, match="'gpu'; valid choices: auto, batch, compiled, threads"):
        make_vec("Hopper-v5", 2, physics_backend="gpu")
    # Ant's observation needs contact forces (mj_rnePostConstraint), which mujoco.batch does not run; with
    # one physics thread the compiled loop steps the instances (the rollout can then run whole steps compiled)
    compiled = CompiledPhysicsPool if compiled_physics.AVAILABLE else None
    assert type(make_vec("Ant-v5", 2, num_threads=2).pool) is (compiled or PhysicsPool)
    assert type(make_vec("HalfCheetah-v5", 2, num_threads=1).pool) is (compiled or BatchPhysicsPool)


@pytest.mark.skipif(not compiled_physics.AVAILABLE, reason="needs numba and MuJoCo's C library")
def test_compiled_physics_flags_unstable_instances_as_the_bindings_count_them():
    env = make_vec("HalfCheetah-v5", 3, physics_backend="compiled", num_threads=1)
    env.reset(seed=0)
    env.pool.datas[1].qvel[:] = 1e30  # MuJoCo warns (mjWARN_BADQVEL) and resets that instance
    with pytest.warns(MujocoWarning, match="QVEL"):  # through the handler, from the GIL-free loop
        _, _, _, _, infos = env.step(np.zeros((3, 6)))
    assert infos["unstable"].tolist() == [False, True, False]
    flags = np.zeros(3, dtype=bool)
    compiled_physics.unstable_rows(env.pool.warning_pointers, np.array(UNSTABLE_WARNINGS), flags)
    assert flags.tolist() == [False, True, False]
