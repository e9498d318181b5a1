"""Gradient training of plastic spiking networks: differentiable plasticity (SpikePropamine).

- :mod:`~plasticrl.studies.bptt.tasks`: temporal tasks that need within-episode learning
  (cue association with a per-episode mapping, one-shot pattern completion).
- :mod:`~plasticrl.studies.bptt.unroll`: drive a policy through a batch of episodes, with
  truncated BPTT.
- :mod:`~plasticrl.studies.bptt.trainer`: the trainer (Adam, gradient clipping, JSONL metrics,
  atomic checkpoints).
"""
from plasticrl.studies.bptt.trainer import BPTTConfig, BPTTTrainer, TrainHistory, build_policy, initial_genome_with
from plasticrl.studies.bptt.tasks import (
    TASKS,
    CueAssociationTask,
    PatternCompletionTask,
    TemporalBatch,
    TemporalTask,
    chance_accuracy,
    make_task,
)
from plasticrl.studies.bptt.unroll import UnrollResult, detach_policy_state, evaluate, restart_graph, unroll

__all__ = [
    "BPTTConfig", "BPTTTrainer", "CueAssociationTask", "PatternCompletionTask", "TASKS", "TemporalBatch",
    "TemporalTask", "TrainHistory", "UnrollResult", "build_policy", "chance_accuracy", "detach_policy_state",
    "evaluate", "initial_genome_with", "make_task", "restart_graph", "unroll",
]
