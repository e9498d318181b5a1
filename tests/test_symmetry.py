"""Ant's quarter-turn symmetry (plasticrl.envs.symmetry) against MuJoCo: the mapped state stepped with the
mapped actions stays the map of the original trajectory."""
import gymnasium as gym
import numpy as np
import pytest

from plasticrl.envs.symmetry import ant_quarter_turns, symmetry
from plasticrl.errors import PlasticRLError


def _state_turn(group, qpos: np.ndarray, qvel: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Ant's (qpos, qvel) turned by k quarter turns: x, y turn with the world, the rest as the observation."""
    base = group.obs_turn(k)[:27, :27]  # qpos[2:] then qvel, the observation's first 27 columns
    mapped = base @ np.concatenate([qpos[2:], qvel])
    angle = group.angle(k)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.concatenate([turn @ qpos[:2], mapped[:13]]), mapped[13:]


def _trajectory(env, qpos, qvel, actions) -> np.ndarray:
    env.reset(seed=0)
    env.unwrapped.set_state(qpos, qvel)
    return np.array([env.step(a)[0] for a in actions])


@pytest.mark.parametrize("k", [1, 2, 3])
def test_ant_dynamics_commute_with_quarter_turns(k):
    env = gym.make("Ant-v5")
    group = ant_quarter_turns()
    rng = np.random.default_rng(3)
    env.reset(seed=3)
    for _ in range(60):  # a state away from the initial pose, with contacts
        env.step(rng.uniform(-1, 1, 8))
    qpos, qvel = env.unwrapped.data.qpos.copy(), env.unwrapped.data.qvel.copy()
    actions = rng.uniform(-1, 1, (30, 8))
    original = _trajectory(env, qpos, qvel, actions)
    turned = _trajectory(env, *_state_turn(group, qpos, qvel, k), actions @ group.action_turn(k).T)
    np.testing.assert_allclose(turned, original @ group.obs_turn(k).T, atol=1e-9)
    # and the map is not the identity on this trajectory: the test could fail
    assert np.abs(turned - original).max() > 0.1


def test_quarter_turn_maps_are_orthogonal_of_order_four():
    for contact in (True, False):
        group = ant_quarter_turns(contact)
        for matrix in (group.obs_matrix, group.action_matrix):
            np.testing.assert_array_equal(matrix @ matrix.T, np.eye(len(matrix)))
            np.testing.assert_array_equal(np.linalg.matrix_power(matrix, 4), np.eye(len(matrix)))
            assert not np.array_equal(np.linalg.matrix_power(matrix, 2), np.eye(len(matrix)))
    group = ant_quarter_turns()
    # by hand: a quarter turn takes a velocity (1, 0) to (0, 1), and hip_1's command to hip_2's actuator
    velocity = np.zeros(105)
    velocity[13] = 1.0
    assert (group.obs_matrix @ velocity)[[13, 14]].tolist() == [0.0, 1.0]
    hip_1 = np.zeros(8)
    hip_1[2] = 1.0
    assert (group.action_matrix @ hip_1).tolist() == [0, 0, 0, 0, 1, 0, 0, 0]


def test_symmetry_lookup_names_bad_values():
    assert symmetry("ant_quarter_turns", 27).obs_dim == 27
    with pytest.raises(PlasticRLError, match="'ant_halves'; valid choices: ant_quarter_turns"):
        symmetry("ant_halves", 105)
    with pytest.raises(PlasticRLError, match="has 17"):
        symmetry("ant_quarter_turns", 17)
