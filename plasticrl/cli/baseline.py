"""``plasticrl baseline``: Stable-Baselines3 baselines (PPO, SAC, TD3), resumable."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from plasticrl.cli.common import app, console, fail, os_error, stamp
from plasticrl.errors import PlasticRLError


@app.command("baseline")
def baseline_cmd(
    algo: Optional[str] = typer.Option(None, "--algo", help="ppo, sac or td3."),
    env: Optional[str] = typer.Option(None, "--env", help="Env id, e.g. Ant-v5."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Env steps of training (default 1000000; "
                                        "with --resume the run's own budget)."),
    seed: int = typer.Option(0, help="Seed of the model, the envs and the perturbation draws."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default: runs/<algo>-<env>-<time>)."),
    train_perturbation: Optional[str] = typer.Option(
        None, "--train-perturbation", help="Train every episode under: train (the env's domain randomisation), "
        "damage (limbs the novel suite leaves intact), front_legs_short (Ant), motor_failure "
        "or one perturbation in YAML, e.g. "
        "'{name: mass_scale, scale: 1.5}' (as the ES trainer's env.train_perturbation)."),
    train_perturbations: bool = typer.Option(False, "--train-perturbations",
                                             help="Same as --train-perturbation train."),
    hp: Optional[list[str]] = typer.Option(None, "--hp", help="Hyperparameter override key=value (YAML "
                                           "value), repeatable, e.g. --hp learning_starts=1000."),
    eval_every: int = typer.Option(10_000, help="Env steps between nominal evaluations (metrics.jsonl), "
                                    "rounded up to whole PPO rollouts or train_freq units."),
    eval_episodes: int = typer.Option(5, help="Episodes per evaluation."),
    max_episode_steps: Optional[int] = typer.Option(None, help="Override the episode length."),
    wandb_mode: Optional[str] = typer.Option(None, "--wandb-mode", help="offline (default), online, disabled."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a killed baseline run from its "
                                          "checkpoint.pt (settings from its config.yaml; --steps may "
                                          "raise the budget)."),
) -> None:
    """Train a Stable-Baselines3 baseline (rl-zoo-like hyperparameters); saves model.zip and best_model.zip."""
    from plasticrl.config import load_yaml
    from plasticrl.config import resolve_wandb_mode
    from plasticrl.trainers.sb3 import train_baseline
    from plasticrl.trainers.sb3.trainer import check_settings

    try:
        if resume is not None:
            from plasticrl.trainers.sb3.trainer import saved_settings

            saved = saved_settings(resume)
            budget = steps if steps is not None else saved["steps"]
            path = train_baseline(saved["algo"], saved["env_id"], budget, resume, seed=saved["seed"],
                                  env_kwargs=saved["env_kwargs"],
                                  train_perturbation=saved["train_perturbation"],
                                  overrides=saved["hyperparams"], eval_every=saved["eval_every"],
                                  eval_episodes=saved["eval_episodes"], wandb_mode=resolve_wandb_mode(wandb_mode),
                                  resume=True)
            console.print(f"saved {path} (evaluate with: plasticrl eval {path.parent / 'best_model.zip'})")
            return
        if algo is None or env is None:
            raise PlasticRLError("--algo and --env are required (or --resume RUN_DIR)")
        overrides = {}
        for item in hp or []:
            if "=" not in item:
                raise PlasticRLError(f"--hp {item!r} is not key=value")
            key, value = item.split("=", 1)
            overrides[key] = load_yaml(value, f"--hp {item!r}")
        if train_perturbations and train_perturbation not in (None, "train"):
            raise PlasticRLError(f"--train-perturbations means --train-perturbation train; got both it and "
                                 f"--train-perturbation {train_perturbation!r}")
        condition = (load_yaml(train_perturbation, f"--train-perturbation {train_perturbation!r}")
                     if train_perturbation is not None else None)
        if train_perturbations:
            condition = "train"
        env_kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
        check_settings(algo, env, env_kwargs, condition)
        run_dir = out or Path("runs") / f"{algo}-{env.lower()}-{stamp()}"
        console.print(f"run directory: {run_dir}")
        budget = steps if steps is not None else 1_000_000
        path = train_baseline(algo, env, budget, run_dir, seed=seed, env_kwargs=env_kwargs,
                              train_perturbation=condition, overrides=overrides,
                              eval_every=eval_every, eval_episodes=eval_episodes,
                              wandb_mode=resolve_wandb_mode(wandb_mode))
    except PlasticRLError as exc:
        fail(str(exc))
    except OSError as exc:  # read-only or full disk, a file where a directory goes
        fail(os_error(exc))
    console.print(f"saved {path} (evaluate with: plasticrl eval {path.parent / 'best_model.zip'})")
