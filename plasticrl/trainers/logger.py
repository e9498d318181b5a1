"""Run logging: ``metrics.jsonl`` always, Weights & Biases when its mode is not ``disabled``.

W&B runs offline by default (the mode comes from the config, the CLI or ``$WANDB_MODE``), so
no key and no network are needed; ``wandb sync <run_dir>/wandb/offline-run-*`` uploads later.
A W&B failure is reported once and logging carries on to ``metrics.jsonl``: it never stops or
blocks training.
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from plasticrl.io import atomic_write_text, json_dumps


@contextlib.contextmanager
def _staged_in(directory: Path) -> Iterator[None]:
    """``$WANDB_DATA_DIR`` (where W&B stages artifact files) set to ``directory`` for the duration,
    unless the user set it; W&B reads it when a file is added and when the artifact is logged."""
    if os.environ.get("WANDB_DATA_DIR"):
        yield
        return
    os.environ["WANDB_DATA_DIR"] = str(directory)
    try:
        yield
    finally:
        os.environ.pop("WANDB_DATA_DIR", None)


class RunLogger:
    def __init__(
        self,
        run_dir: Path,
        config: dict[str, Any],
        wandb_mode: str = "offline",
        project: str = "plasticrl",
        entity: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
        run_id: str | None = None,
        run_name: str | None = None,
        resume_from_generation: int | None = None,
        write_jsonl: bool = True,
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.write_jsonl = write_jsonl  # off when the caller already writes its own metrics.jsonl
        if resume_from_generation is not None:
            self._truncate_after(resume_from_generation)
        self._wandb = None
        self.wandb_mode = wandb_mode
        if wandb_mode != "disabled":
            self._wandb = self._start_wandb(config, wandb_mode, project, entity, group, tags, run_id, run_name)

    @classmethod
    def for_run(cls, config, run_dir: Path, run_id: str, resume_from_generation: int | None = None) -> "RunLogger":
        """The logger of a training run: W&B settings and mode from an ExperimentConfig."""
        from plasticrl.config import config_to_dict

        w = config.logging.wandb
        return cls(run_dir, config_to_dict(config), config.wandb_mode(), w.project, w.entity, w.group, w.tags,
                   run_id=run_id, run_name=Path(run_dir).name, resume_from_generation=resume_from_generation)

    def _truncate_after(self, generation: int) -> None:
        # A resumed run continues from its last checkpoint: lines logged after that point
        # (before the crash) would otherwise appear twice.
        if not self.metrics_path.is_file():
            return
        kept = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill
            if row.get("generation", -1) <= generation:
                kept.append(line)
        # Atomic: a kill during the rewrite leaves the old file whole, never a truncated history.
        atomic_write_text(self.metrics_path, "".join(k + "\n" for k in kept))

    def _start_wandb(self, config, mode, project, entity, group, tags, run_id, run_name):
        try:
            import wandb

            os.environ.setdefault("WANDB_SILENT", "true")
            settings = wandb.Settings(init_timeout=90, console="off", x_disable_stats=True)
            return wandb.init(
                project=project, entity=entity, group=group, tags=tags or None, mode=mode,
                dir=str(self.run_dir), config=config, id=run_id, name=run_name, resume="allow",
                settings=settings,
            )
        except Exception as exc:  # noqa: BLE001 - logging must never stop training
            warnings.warn(f"W&B logging disabled for this run: {type(exc).__name__}: {exc}", stacklevel=2)
            return None

    @property
    def wandb_run(self):
        return self._wandb

    def log(self, metrics: dict[str, Any]) -> None:
        """Append one row to metrics.jsonl and W&B (``generation`` is the W&B step)."""
        if self.write_jsonl:
            with self.metrics_path.open("a") as fh:
                fh.write(json_dumps(metrics) + "\n")
                fh.flush()
        if self._wandb is not None:
            try:
                step = metrics.get("generation")
                self._wandb.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)
            except Exception as exc:  # noqa: BLE001
                warnings.warn(f"W&B log failed, continuing with metrics.jsonl only: {exc}", stacklevel=2)
                self._wandb = None

    def log_artifact(self, path: Path, name: str, kind: str = "model", aliases: list[str] | None = None) -> None:
        """Log ``path`` as a W&B artifact. W&B copies the file to a staging folder first (kept until an
        offline run is synced); it is staged inside the run directory (``wandb/artifact-staging``), not in
        the user's home, unless ``$WANDB_DATA_DIR`` says where."""
        if self._wandb is None:
            return
        try:
            import wandb

            with self.staging():
                artifact = wandb.Artifact(name=name, type=kind)
                artifact.add_file(str(path))
                self._wandb.log_artifact(artifact, aliases=aliases)
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"W&B artifact upload failed: {exc}", stacklevel=2)

    def staging(self) -> contextlib.AbstractContextManager[None]:
        """Context in which W&B stages files (artifacts, and the tables ``log`` turns into artifacts) in
        this run directory's ``wandb/artifact-staging`` instead of the user's home (unless
        ``$WANDB_DATA_DIR`` is set)."""
        return _staged_in(self.run_dir / "wandb" / "artifact-staging")

    def summary(self, values: dict[str, Any]) -> None:
        if self._wandb is not None:
            try:
                for k, v in values.items():
                    self._wandb.summary[k] = v
            except Exception:  # noqa: BLE001
                pass

    def finish(self) -> None:
        if self._wandb is not None:
            try:
                self._wandb.finish()
            except Exception as exc:  # noqa: BLE001
                warnings.warn(f"W&B finish failed: {exc}", stacklevel=2)
            self._wandb = None
