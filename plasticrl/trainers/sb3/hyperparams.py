"""rl-zoo-like hyperparameters for PPO, SAC and TD3 on the MuJoCo locomotion tasks.

Values follow the tuned MuJoCo settings published with rl-baselines3-zoo (PPO: the tuned
HalfCheetah/Hopper/Walker2d entries, the zoo's plain defaults elsewhere, VecNormalize on;
SAC and TD3: the zoo's MuJoCo defaults with 10k random warm-up steps). ``overrides`` replace
any key, which is how tests and short runs shrink the budget.
"""
from __future__ import annotations

import copy
from typing import Any

from plasticrl.errors import PlasticRLError, check_choice

ALGOS = ("ppo", "sac", "td3")

_PPO_TUNED_NET = {"log_std_init": -2.0, "ortho_init": False, "activation_fn": "relu",
                  "net_arch": {"pi": [256, 256], "vf": [256, 256]}}

#: per algorithm: ``{"default": {...}, env_id: {...}}``; ``normalize`` is ours (VecNormalize), the rest
#: are keyword arguments of the SB3 constructor.
TABLE: dict[str, dict[str, dict[str, Any]]] = {
    "ppo": {
        "default": {"normalize": True},
        "HalfCheetah-v5": {"normalize": True, "batch_size": 64, "n_steps": 512, "gamma": 0.98,
                           "learning_rate": 2.0633e-05, "ent_coef": 0.000401762, "clip_range": 0.1,
                           "n_epochs": 20, "gae_lambda": 0.92, "max_grad_norm": 0.8, "vf_coef": 0.58096,
                           "policy_kwargs": _PPO_TUNED_NET},
        "Hopper-v5": {"normalize": True, "batch_size": 32, "n_steps": 512, "gamma": 0.999,
                      "learning_rate": 9.80828e-05, "ent_coef": 0.00229519, "clip_range": 0.2, "n_epochs": 5,
                      "gae_lambda": 0.99, "max_grad_norm": 0.7, "vf_coef": 0.835671, "policy_kwargs": _PPO_TUNED_NET},
        "Walker2d-v5": {"normalize": True, "batch_size": 32, "n_steps": 512, "gamma": 0.99,
                        "learning_rate": 5.05041e-05, "ent_coef": 0.000585045, "clip_range": 0.1, "n_epochs": 20,
                        "gae_lambda": 0.95, "max_grad_norm": 1.0, "vf_coef": 0.871923},
    },
    "sac": {"default": {"normalize": False, "learning_starts": 10_000}},
    "td3": {"default": {"normalize": False, "learning_starts": 10_000, "learning_rate": 1e-3, "batch_size": 256,
                        "train_freq": 1, "gradient_steps": 1, "action_noise_std": 0.1,
                        "policy_kwargs": {"net_arch": [400, 300]}}},
}


def hyperparams(algo: str, env_id: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Hyperparameters of ``algo`` on ``env_id`` (JSON-ready: activation functions by name)."""
    check_choice("algorithm", algo, ALGOS)
    table = TABLE[algo]
    params = copy.deepcopy(table.get(env_id, table["default"]))
    for key, value in (overrides or {}).items():
        params[key] = value
    if overrides:
        check_hyperparams(algo, params)
    return params


def check_hyperparams(algo: str, params: dict[str, Any]) -> None:
    """Raise, naming the key and the valid ones, for a hyperparameter the SB3 algorithm's constructor does
    not take (plus plasticrl's ``normalize`` and ``action_noise_std``), or an unknown activation function:
    checked when the settings are read, not when training starts."""
    import inspect

    from plasticrl.agents.sb3 import algo_class

    taken = set(inspect.signature(algo_class(algo).__init__).parameters) - {"self", "policy", "env", "kwargs"}
    valid = taken | {"normalize", "action_noise_std"}
    unknown = sorted(k for k in params if k not in valid)
    if unknown:
        raise PlasticRLError(f"unknown {algo} hyperparameter(s) {unknown}; valid keys: {', '.join(sorted(valid))}")
    activation = (params.get("policy_kwargs") or {}).get("activation_fn")
    if activation is not None:
        check_choice("activation_fn", activation, ("relu", "tanh", "elu"))


def sb3_kwargs(algo: str, params: dict[str, Any], action_dim: int) -> dict[str, Any]:
    """Turn :func:`hyperparams` output into SB3 constructor keyword arguments."""
    import numpy as np
    import torch.nn as nn

    kwargs = {k: v for k, v in params.items() if k not in ("normalize", "action_noise_std")}
    policy_kwargs = dict(kwargs.pop("policy_kwargs", {}) or {})
    if "activation_fn" in policy_kwargs:
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}
        policy_kwargs["activation_fn"] = acts[check_choice("activation_fn", policy_kwargs["activation_fn"], acts)]
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    if algo == "td3" and params.get("action_noise_std"):
        from stable_baselines3.common.noise import NormalActionNoise

        std = float(params["action_noise_std"])
        kwargs["action_noise"] = NormalActionNoise(np.zeros(action_dim), std * np.ones(action_dim))
    return kwargs
