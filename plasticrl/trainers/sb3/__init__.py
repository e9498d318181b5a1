"""Stable-Baselines3 baselines trained on the same engine, envs and perturbation distribution.

``train_baseline(algo, env_id, steps, out_dir)`` writes ``model.zip`` + ``model.json`` (read by
:mod:`plasticrl.agents.sb3` for ``plasticrl eval``), ``config.yaml`` and ``metrics.jsonl``.
"""
from plasticrl.trainers.sb3.hyperparams import hyperparams
from plasticrl.trainers.sb3.trainer import train_baseline

__all__ = ["hyperparams", "train_baseline"]
