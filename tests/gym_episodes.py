"""Play a loaded agent through plain Gymnasium (imported by the tests that check a logged score)."""
from __future__ import annotations

import gymnasium as gym


def gym_returns(agent, env_id: str, max_episode_steps: int, first_seed: int, episodes: int,
                seed_agent: bool) -> list[float]:
    """Returns of ``episodes`` episodes of ``agent`` on ``gym.make(env_id)``, episode ``e`` reset with
    seed ``first_seed + e`` (and the agent too when ``seed_agent``: random initial weights are drawn
    from the episode seed); the agent is given each step's reward, as a reward-gated agent needs."""
    env = gym.make(env_id, max_episode_steps=max_episode_steps)
    returns = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=first_seed + episode)
            agent.reset(seed=first_seed + episode) if seed_agent else agent.reset()
            total, reward, done = 0.0, None, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(agent.act(obs, reward))
                total += reward
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return returns
