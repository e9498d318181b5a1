"""Trainers and the run lifecycle they share.

- ``runs``: run directories (the only place that stamps one), resolved config and versions.
- ``logger``: metrics rows (``metrics.jsonl``) and W&B (offline by default).
- ``es``: the evolution-strategies trainer (ask/tell over genomes, batched rollouts, resume).
- ``evaluator`` / ``ray_evaluator``: genomes -> fitnesses locally or across Ray workers.
- ``ppo``: recurrent PPO; ``sb3``: Stable-Baselines3 baselines (PPO, SAC, TD3).
"""
