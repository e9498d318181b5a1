"""One readable file: evolve a plastic spiking controller with PGPE, no trainer class.

Everything the `plasticrl train` command does, minus run directories, checkpoints and
logging: build a batched env and a population-batched policy, then loop ask -> rollout ->
tell. Run it as

    python examples/es_plastic_spiking.py --env HalfCheetah-v5 --generations 30

and compare with `plasticrl train configs/halfcheetah/bcm_modulated.yaml`.
"""
from __future__ import annotations

import argparse
import time

import torch

from plasticrl.agents import make_policy
from plasticrl.envs import make_vec
from plasticrl.es import make_es
from plasticrl.rollouts.obs_norm import ObsNormalizer
from plasticrl.rollouts.loop import rollout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--generations", type=int, default=30)
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--max-episode-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small per-step tensors; leave the cores to the physics threads

    kwargs = {} if args.max_episode_steps is None else {"max_episode_steps": args.max_episode_steps}
    env = make_vec(args.env, args.population, **kwargs)
    policy = make_policy(
        {"kind": "plastic_spiking", "hidden": [64],
         "plasticity": {"rule": "bcm", "modulation": "rpe", "sharing": "post"}},
        env.single_observation_space, env.single_action_space,
    )
    # 1. the search distribution starts at the policy's initial genome
    es = make_es("pgpe", policy.genome.dim, population_size=args.population,
                 center_learning_rate=0.15, max_speed=0.3, stdev_init=0.1)
    state = es.init(policy.initial_genome(1)[0], seed=args.seed)
    obs_norm = ObsNormalizer(policy.obs_dim)

    for generation in range(args.generations):
        start = time.perf_counter()
        # 2. ask for P genomes, 3. run them all in one batched rollout (one episode each)
        samples, state = es.ask(state)
        result = rollout(policy, env, samples, seed=args.seed * 100_003 + generation, obs_norm=obs_norm,
                         collect_obs_moments=True)
        # 4. tell the fitnesses (non-finite members arrive as -inf and are ranked worst)
        state, info = es.tell(state, samples, result.fitness.to(samples.dtype))
        # 5. update observation statistics after the generation, so all members saw the same ones
        obs_norm.update(result.obs_moments)
        print(f"gen {generation + 1:3d}  mean {info['fitness_mean']:8.1f}  best {info['fitness_max']:8.1f}  "
              f"{result.env_steps / (time.perf_counter() - start):7.0f} steps/s")
    env.close()


if __name__ == "__main__":
    main()
