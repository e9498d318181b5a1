"""Log an evaluation to W&B as tables and images, when W&B is on.

Uses :class:`plasticrl.trainers.logger.RunLogger` so the mode rules are the project's (offline by
default, ``$WANDB_MODE`` honoured, never a key needed); any W&B failure is a warning only.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from plasticrl.eval.result import EvaluationResult
from plasticrl.report.writer import CSV_COLUMNS, CURVE_COLUMNS


def log_evaluation(result: EvaluationResult, out_dir: Path, images: list[Path], mode: str,
                   project: str = "plasticrl", name: str | None = None) -> None:
    """One W&B run (job type ``eval``) in ``out_dir`` with the per-condition and curve tables and the PNGs."""
    if mode == "disabled":
        return
    from plasticrl.trainers.logger import RunLogger

    config = {"env_id": result.env_id, "suite": result.suite, "episodes": result.episodes, "seed": result.seed,
              "confidence": result.confidence, "agents": list(result.agents)}
    logger = RunLogger(out_dir, config, wandb_mode=mode, project=project, run_name=name, tags=["eval"])
    run = logger.wandb_run
    try:
        if run is not None:
            import wandb

            rows = [[r.value(k) for k in CSV_COLUMNS] for r in result.rows]
            payload: dict[str, Any] = {"eval/conditions_table": wandb.Table(columns=list(CSV_COLUMNS), data=rows)}
            curve_rows = [[c.agent, c.condition, off, rew, c.pre_switch_reward, c.time_to_recover]
                          for c in result.curves for off, rew in zip(c.offsets, c.reward)]
            if curve_rows:
                payload["eval/adaptation_table"] = wandb.Table(columns=list(CURVE_COLUMNS), data=curve_rows)
            for img in images:
                # "_plot": adaptation.png must not replace the adaptation table under one key
                payload[f"eval/{img.stem}_plot"] = wandb.Image(str(img))
            with logger.staging():  # W&B stores tables as artifacts: staged in the run directory
                run.log(payload)
    except Exception as exc:  # noqa: BLE001 - W&B must never fail an evaluation
        warnings.warn(f"W&B logging of the evaluation failed: {exc}", stacklevel=2)
    finally:
        logger.finish()


def log_video(path: Path, summary: dict[str, Any], mode: str, project: str = "plasticrl") -> None:
    """A W&B run (job type ``render``) beside the video holding it and the episode summary."""
    if mode == "disabled":
        return
    from plasticrl.trainers.logger import RunLogger

    logger = RunLogger(Path(path).parent, summary, wandb_mode=mode, project=project,
                       run_name=f"render-{Path(path).stem}", tags=["render"])
    try:
        if logger.wandb_run is not None:
            import wandb

            with logger.staging():
                logger.wandb_run.log({"render/video": wandb.Video(str(path), format=Path(path).suffix[1:])})
    except Exception as exc:  # noqa: BLE001 - W&B must never fail a render
        warnings.warn(f"W&B logging of the video failed: {exc}", stacklevel=2)
    finally:
        logger.finish()
