"""Validated run configuration: the experiment config (env, policy, ES, train, logging) and PPO's.

The ``es`` section is one of :class:`OpenAIESConfig`, :class:`PGPEConfig`, :class:`CMAESConfig`,
:class:`SepCMAESConfig` (``ESConfig``, picked by ``es.algorithm``); its ``params`` are the algorithm's
typed hyper-parameters from :mod:`plasticrl.es.params`.

``load_config(path, overrides)`` reads a YAML file and ``key=value`` overrides into an
:class:`ExperimentConfig`; ``config_to_dict`` / ``config_from_dict`` round-trip it. ``path`` may name a bundled config
(``halfcheetah/bcm_modulated``): ``list_configs`` lists them, ``resolve_config`` finds one.
"""
from plasticrl.config.experiment import (
    ES_ALGORITHMS,
    WANDB_MODES,
    CMAESConfig,
    DistributedConfig,
    EnvConfig,
    ESConfig,
    ExperimentConfig,
    LoggingConfig,
    OpenAIESConfig,
    PGPEConfig,
    SepCMAESConfig,
    TrainConfig,
    WandbConfig,
    check_finite,
    config_from_dict,
    config_to_dict,
    load_config,
    load_yaml,
    parse_overrides,
    resolve_wandb_mode,
    set_dotted,
)
from plasticrl.config.ppo import PPOConfig, parse_ppo_config
from plasticrl.config.bundled import list_configs, resolve_config

__all__ = [
    "ES_ALGORITHMS", "WANDB_MODES", "CMAESConfig", "OpenAIESConfig", "PGPEConfig", "SepCMAESConfig",
    "DistributedConfig", "check_finite", "load_yaml", "ESConfig", "EnvConfig", "ExperimentConfig", "LoggingConfig",
    "PPOConfig", "TrainConfig", "WandbConfig", "config_from_dict", "config_to_dict", "load_config",
    "list_configs", "parse_overrides", "parse_ppo_config", "resolve_config", "resolve_wandb_mode", "set_dotted",
]
