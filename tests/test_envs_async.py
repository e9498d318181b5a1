"""The engine's split step: step_async starts the physics on the worker threads, step_wait
finishes it; the pair equals step(), and misuse is refused."""
import numpy as np
import pytest

from plasticrl.envs import EnvError, make_vec


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
