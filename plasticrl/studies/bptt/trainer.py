"""Differentiable plasticity: learn fixed weights and plasticity rules jointly by BPTT.

Following SpikePropamine (Hays et al. 2021), the whole searched genome of a plastic spiking
policy (initial weights, rule coefficients, learning rates ``eta``, encoder gains, modulatory
neuron weights) is one leaf tensor ``[1, D]``. Each training step samples a batch of fresh
episodes of a temporal task, unrolls the policy through them (K spiking sub-steps per control
step; spikes back-propagate through the fast-sigmoid surrogate), and takes one Adam step on
the accumulated gradient after clipping its norm. Truncated BPTT cuts the graph every
``truncation`` control steps.

Note on truncation: in these tasks the credit for a correct answer at query time lies in what
was written into the fast weights during presentation, several segments earlier. Truncation
cuts exactly that path (the rule parameters then only see gradients through within-segment
plasticity), so the default is the full episode and truncation is for long episodes.

Outputs (when ``run_dir`` is given): ``metrics.jsonl`` (one JSON object per logged step) and
``checkpoint.pt`` written atomically, holding the genome, the Adam state, the data
generator's state and the configs, so :meth:`BPTTTrainer.load_checkpoint` resumes exactly.
"""
from __future__ import annotations

import fnmatch
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from plasticrl.agents import PlasticSpikingPolicy
from plasticrl.errors import PlasticRLError
from plasticrl.studies.bptt.tasks import TemporalTask
from plasticrl.studies.bptt.unroll import evaluate, unroll
from plasticrl.io import atomic_torch_save, json_dumps, torch_load

CHECKPOINT_FORMAT = "plasticrl.gradient.bptt/1"  # a format tag kept from the module it started in
MetricsCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class BPTTConfig:
    """Hyper-parameters of the BPTT trainer (all validated on construction)."""

    steps: int = 300
    batch_size: int = 32
    lr: float = 0.01
    clip_norm: float = 1.0
    truncation: int | None = None
    train_noise: tuple[float, ...] = (0.0,)
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise PlasticRLError(f"BPTTConfig.{name} must be an integer >= 1; got {value!r}")
        if self.checkpoint_every < 0:
            raise PlasticRLError(f"BPTTConfig.checkpoint_every must be >= 0 (0 = at the end only); got {self.checkpoint_every!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise PlasticRLError(f"BPTTConfig.lr must be a positive finite number; got {self.lr!r}")
        if not self.clip_norm > 0:
            raise PlasticRLError(f"BPTTConfig.clip_norm must be > 0; got {self.clip_norm!r}")
        if self.truncation is not None and (int(self.truncation) != self.truncation or self.truncation < 1):
            raise PlasticRLError(f"BPTTConfig.truncation must be None or an integer >= 1; got {self.truncation!r}")
        noise = tuple(float(n) for n in self.train_noise)
        if not noise or any(not (math.isfinite(n) and n >= 0) for n in noise):
            raise PlasticRLError(f"BPTTConfig.train_noise must be a non-empty list of levels >= 0; got {self.train_noise!r}")
        object.__setattr__(self, "train_noise", noise)


def build_policy(task: TemporalTask, config: Mapping[str, Any], dtype: str | torch.dtype = "float32",
                 device: str | torch.device = "cpu") -> PlasticSpikingPolicy:
    """A plastic spiking policy shaped for ``task``: readout bounds ``[-1, 1]`` (tanh of the
    output potentials with membrane decoding)."""
    return PlasticSpikingPolicy(task.obs_dim, task.out_dim, [-1.0] * task.out_dim, [1.0] * task.out_dim,
                                dict(config), device=device, dtype=dtype, autograd=True)


def initial_genome_with(policy: PlasticSpikingPolicy, values: Mapping[str, float]) -> torch.Tensor:
    """``[1, D]`` initial genome with every searched group matching a glob in ``values`` set to
    that constant (e.g. ``{"layers.*.A": 1.0, "layers.*.eta": 0.5}``: start from a Hebbian rule
    instead of the random coefficients ES would start from). A glob matching no searched group
    is an error that lists them."""
    flat = policy.initial_genome(1)
    names = policy.genome.searched_names
    for pattern, value in values.items():
        hits = fnmatch.filter(names, pattern)
        if not hits:
            raise PlasticRLError(f"initial value pattern {pattern!r} matches no searched group; "
                                 f"searched groups: {', '.join(names)}")
        for name in hits:
            flat[:, policy.genome.slice_of(name)] = float(value)
    return flat


@dataclass
class TrainHistory:
    """Logged rows of one :meth:`BPTTTrainer.train` call and its wall time."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0


class BPTTTrainer:
    """Adam on the flat genome of one plastic spiking policy, through BPTT over task episodes."""

    def __init__(
        self,
        policy: PlasticSpikingPolicy,
        task: TemporalTask,
        config: BPTTConfig | None = None,
        run_dir: str | Path | None = None,
        callbacks: Sequence[MetricsCallback] = (),
        initial_genome: torch.Tensor | None = None,
    ):
        self.policy, self.task = policy, task
        self.config = config = config or BPTTConfig()
        if policy.genome.dim == 0:
            raise PlasticRLError("the policy's genome searches no parameter group; nothing to learn")
        start = policy.initial_genome(1) if initial_genome is None else torch.as_tensor(initial_genome)
        start = start.to(device=policy.device, dtype=policy.dtype).reshape(1, policy.genome.dim)
        self.genome = torch.nn.Parameter(start.clone())
        self.optimizer = torch.optim.Adam([self.genome], lr=config.lr)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.skipped = 0
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.callbacks = list(callbacks)

    # -- training ---------------------------------------------------------------------
    def _noise_levels(self) -> torch.Tensor:
        # Each episode of the batch draws its own level, so one run learns the whole range.
        levels = torch.tensor(self.config.train_noise, dtype=torch.float64)
        pick = torch.randint(0, len(levels), (self.config.batch_size,), generator=self.generator)
        return levels[pick]

    def train_step(self) -> dict[str, Any]:
        """Sample a batch, back-propagate through it, clip, step. Returns this step's metrics.

        A step whose loss or gradient is not finite is skipped (counted in ``skipped``) so one
        diverging batch cannot poison Adam's moment estimates.
        """
        cfg = self.config
        batch = self.task.sample(cfg.batch_size, self._noise_levels(), self.generator, dtype=self.policy.dtype)
        self.optimizer.zero_grad(set_to_none=True)
        result = unroll(self.policy, self.genome, batch, self.task, truncation=cfg.truncation, backward=True)
        grad = self.genome.grad
        grad_norm = float(torch.linalg.vector_norm(grad)) if grad is not None else 0.0
        finite = math.isfinite(result.loss) and math.isfinite(grad_norm)
        if finite and grad is not None:
            torch.nn.utils.clip_grad_norm_([self.genome], cfg.clip_norm)
            self.optimizer.step()
        else:
            self.skipped += 1
        self.step += 1
        acc = self.task.accuracy(result.readouts.cpu(), batch)
        return {"step": self.step, "generation": self.step, "loss": result.loss, "accuracy": float(acc.mean()),
                "grad_norm": grad_norm, "skipped": self.skipped,
                "invalid_fraction": float(self.policy.invalid.to(torch.float64).mean())}

    def train(self, steps: int | None = None) -> TrainHistory:
        """Run ``steps`` training steps (default: up to ``config.steps`` in total)."""
        cfg = self.config
        todo = cfg.steps - self.step if steps is None else int(steps)
        history, started = TrainHistory(), time.perf_counter()
        for _ in range(max(todo, 0)):
            row = self.train_step()
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                row["wall_s"] = time.perf_counter() - started
                history.rows.append(row)
                self._emit(row)
            if self.run_dir is not None and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save_checkpoint(self.run_dir / "checkpoint.pt")
        if self.run_dir is not None:
            self.save_checkpoint(self.run_dir / "checkpoint.pt")
        history.wall_s = time.perf_counter() - started
        return history

    def evaluate(self, noise: float, batch_size: int = 256, seed: int = 12345) -> dict[str, float]:
        """Accuracy on fresh episodes at one input-noise level (the training stream is untouched)."""
        return evaluate(self.policy, self.genome, self.task, noise, batch_size, seed)

    # -- logging ----------------------------------------------------------------------
    def _emit(self, row: dict[str, Any]) -> None:
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # Strict JSON: a non-finite value (a skipped step's gradient norm) is written as null.
            with (self.run_dir / "metrics.jsonl").open("a") as fh:
                fh.write(json_dumps(row) + "\n")
        for callback in self.callbacks:
            callback(row)  # e.g. a W&B run's log, or plasticrl.trainers.logger.RunLogger.log

    # -- checkpoints ------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to resume: genome, Adam state, data-stream state, configs."""
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "skipped": self.skipped,
            "genome": self.genome.detach().cpu().clone(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "config": asdict(self.config),
            "policy_config": self.policy.config.model_dump(),
            "task": self.task.describe(),
        }

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write :meth:`checkpoint` atomically (a crash leaves the previous file intact)."""
        return atomic_torch_save(path, self.checkpoint())

    def load_checkpoint(self, path: str | Path) -> None:
        """Resume from a checkpoint written by :meth:`save_checkpoint` for the same policy and task."""
        data = torch_load(path)
        if data.get("format") != CHECKPOINT_FORMAT:
            raise PlasticRLError(f"{path} is not a BPTT checkpoint (format {data.get('format')!r}; "
                                 f"expected {CHECKPOINT_FORMAT!r})")
        if data["policy_config"] != self.policy.config.model_dump() or data["task"] != self.task.describe():
            raise PlasticRLError(f"{path} was written for another policy or task configuration; "
                                 "build the trainer with the checkpoint's 'policy_config' and 'task'")
        with torch.no_grad():
            self.genome.copy_(data["genome"].to(self.genome))
        self.optimizer.load_state_dict(data["optimizer"])
        self.generator.set_state(data["generator"])
        self.step = int(data["step"])
        self.skipped = int(data["skipped"])
