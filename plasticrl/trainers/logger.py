"""Run logging: ``metrics.jsonl`` always, Weights & Biases when its mode is not ``disabled``.

W&B runs offline by default (the mode comes from the config, the CLI or ``$WANDB_MODE``), so
no key and no network are needed; ``wandb sync <run_dir>/wandb/offline-run-*`` uploads later.
A W&B failure is reported once and logging carries on to ``metrics.jsonl``: it never stops or
blocks training. ``online`` without a network (the server unreachable, or ``wandb.init`` not done
within :data:`WANDB_INIT_TIMEOUT` s) falls back to offline within 30 s and says so in one line.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
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


#: seconds to reach the W&B server (TCP) before an online run falls back to offline
WANDB_PROBE_TIMEOUT = 5.0
#: seconds wandb.init may take (online, the server reachable) before the run falls back to offline;
#: wandb overruns it by up to ~10 s, so a fallback comes within 30 s
WANDB_INIT_TIMEOUT = 15


def wandb_unreachable(base_url: str, timeout: float = WANDB_PROBE_TIMEOUT) -> str | None:
    """Why the W&B server at ``base_url`` cannot be reached (no name resolution, refused, timed out),
    or ``None`` when a TCP connection opens within ``timeout`` seconds, or when an HTTPS proxy is set
    (the proxy, not this machine, connects; ``wandb.init``'s own timeout bounds that case)."""
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlsplit(base_url)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    if not host:
        return None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        what = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        return f"cannot reach {host}:{port}: {what}"


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
            settings = wandb.Settings(init_timeout=WANDB_INIT_TIMEOUT, console="off", x_disable_stats=True)
            kwargs = dict(project=project, entity=entity, group=group, tags=tags or None, dir=str(self.run_dir),
                          config=config, id=run_id, name=run_name, resume="allow", settings=settings)
            if mode == "online":
                # Without a network, wandb.init retries for minutes and then logs nothing: probe the
                # server first, bound the online start, and log offline (synced later) if either fails.
                why = wandb_unreachable(settings.base_url)
                if why is None:
                    try:
                        return wandb.init(mode="online", **kwargs)
                    except Exception as exc:  # noqa: BLE001 - fall back below
                        why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                self.wandb_mode = "offline"
                print(f"W&B online unavailable ({why}); logging offline to {self.run_dir / 'wandb'} instead "
                      f"(upload later with: wandb sync {self.run_dir / 'wandb'}/offline-run-*)",
                      file=sys.stderr, flush=True)
                mode = "offline"
            return wandb.init(mode=mode, **kwargs)
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
