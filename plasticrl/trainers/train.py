"""One entry point for training from a config: picks the trainer the config names and stamps the run
directory. Used by ``plasticrl train``, the demo and experiments, and ``plasticrl.train``."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from plasticrl.config import ExperimentConfig, load_config
from plasticrl.rollouts.env_setup import check_config
from plasticrl.trainers.es import ESTrainer
from plasticrl.trainers.lifecycle import Callback, TrainResult
from plasticrl.trainers.runs import new_run_dir

#: called after every generation (ES) or update (PPO) with that step's metrics row
OnGeneration = Callback


def make_trainer(config: ExperimentConfig, run_dir: str | os.PathLike,
                 on_generation: OnGeneration | None = None):
    """The trainer of ``config.trainer`` (``es`` or ``ppo``) for ``run_dir``, not yet started."""
    if config.trainer == "ppo":
        from plasticrl.trainers.ppo.trainer import PPOTrainer

        return PPOTrainer(config, Path(run_dir), on_generation=on_generation)
    return ESTrainer(config, Path(run_dir), on_generation=on_generation)


def train(config: ExperimentConfig | str | os.PathLike, overrides: Sequence[str] = (),
          out: str | os.PathLike | None = None, on_generation: OnGeneration | None = None,
          force: bool = False) -> TrainResult:
    """Train ``config`` (an :class:`ExperimentConfig` or a YAML path, plus ``key=value`` overrides) in a
    new run directory under ``out`` (default: the config's ``logging.dir``); returns the result, whose
    ``run_dir`` holds ``best_agent.pt`` and ``final_agent.pt``. ``force`` skips the memory guard
    (:mod:`plasticrl.rollouts.memory`)."""
    if not isinstance(config, ExperimentConfig):
        config = load_config(config, overrides)
    elif overrides:
        from plasticrl.config import config_from_dict, config_to_dict, parse_overrides, set_dotted

        data = config_to_dict(config)
        for key, value in parse_overrides(overrides):
            set_dotted(data, key, value)
        config = config_from_dict(data, "config with overrides")
    check_config(config, force=force)  # every setting, before the run directory exists
    run_dir = new_run_dir(Path(out) if out is not None else Path(config.logging.dir), config.name)
    return make_trainer(config, run_dir, on_generation).train()
