"""Gradient training of plastic spiking networks: differentiable plasticity (SpikePropamine).

- :mod:`~plasticrl.gradient.tasks`: temporal tasks that need within-episode learning
  (cue association with a per-episode mapping, one-shot pattern completion).
- :mod:`~plasticrl.gradient.unroll`: drive a policy through a batch of episodes, with
  truncated BPTT.
- :mod:`~plasticrl.gradient.bptt`: the trainer (Adam, gradient clipping, JSONL metrics,
  atomic checkpoints).
"""
from plasticrl.gradient.bptt import BPTTConfig, BPTTTrainer, TrainHistory, build_policy, initial_genome_with
from plasticrl.gradient.tasks import (
    TASKS,
    CueAssociationTask,
    PatternCompletionTask,
    TemporalBatch,
    TemporalTask,
    chance_accuracy,
    make_task,
)
from plasticrl.gradient.unroll import UnrollResult, detach_policy_state, evaluate, restart_graph, unroll

__all__ = [
    "BPTTConfig", "BPTTTrainer", "CueAssociationTask", "PatternCompletionTask", "TASKS", "TemporalBatch",
    "TemporalTask", "TrainHistory", "UnrollResult", "build_policy", "chance_accuracy", "detach_policy_state",
    "evaluate", "initial_genome_with", "make_task", "restart_graph", "unroll",
]
