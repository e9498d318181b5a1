"""The differentiable-plasticity experiment behind the README table (cue association vs noise).

For each plasticity variant (Hebbian ABCD, Oja, BCM; plain and neuromodulated) and for the same
spiking network with plasticity off, learn the fixed weights and the rule parameters jointly by
BPTT (surrogate gradients through every spiking sub-step), then measure query accuracy on fresh
episodes at several input-noise levels. The cue-to-class mapping is redrawn every episode, so
only within-episode plasticity can beat chance.

Entry points: ``python examples/differentiable_plasticity.py [options]`` or
``main(argv)`` from Python. Writes ``<out>/results.json``, ``<out>/table.md`` and one run
directory per variant (``metrics.jsonl``, ``checkpoint.pt``); prints the Markdown table.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch

from plasticrl.studies.bptt.trainer import BPTTConfig, BPTTTrainer, build_policy, initial_genome_with
from plasticrl.studies.bptt.tasks import CueAssociationTask, PatternCompletionTask, TemporalTask
from plasticrl.io import atomic_write_json, atomic_write_text
from plasticrl.trainers.logger import RunLogger

# The network: 11 input currents -> 32 LIF -> 3 leaky-integrator readouts, K=4 sub-steps of
# 5 ms per control step. Every setting that matters is pinned here rather than taken from the
# policy defaults, so the table stays reproducible when those defaults move.
# - Input: direct current injection (gain 3, no bias) into the hidden layer's synapses; the
#   rule sees that current as the layer-0 presynaptic activity.
# - Every feed-forward synapse is plastic (input -> hidden, hidden -> readout; the readout's
#   "post" activity is tanh(v)); rule coefficients and eta are shared per layer.
# - The surrogate slope is softer than the policy default (2 instead of 10): with 10, neurons
#   pushed below threshold early in training stop receiving gradient and the net goes silent.
# - Readout weights start at zero with a small scale, so tanh(v) starts unsaturated.
# - eta is unit-scale x eta_scale (the policy's convention); it starts at 0.05 x 0.01 and BPTT
#   grows it (plasticity starting weak and being learned was more stable than starting strong).
NETWORK: dict[str, Any] = {
    "hidden": [32], "substeps": 4, "dt": 0.005, "recurrent": False,
    "input_init_gain": 2.0, "weight_init_gain": 8.0, "output_init_gain": 0.5, "zero_output_init": True,
    "neuron": {"model": "lif", "tau_mem": 0.01, "v_th": 1.0, "reset": "subtract", "surrogate_slope": 2.0},
    "decoder": {"kind": "membrane", "tau_mem": 0.01},
    "encoder": {"kind": "direct", "spiking": False, "gain": 3.0, "bias": 0.0},
}
PLASTICITY: dict[str, Any] = {"sharing": "layer", "bounds": "clip", "weight_limit": 5.0, "eta_scale": 0.01,
                              "tau_pre": 0.02, "tau_post": 0.02, "tau_theta": 0.5}
# name -> (rule, modulation). "reward" modulation: m(t) = the task's store signal (1 while a
# cue/target pair is shown, 0 otherwise), passed to policy.learn(); a three-factor rule.
VARIANTS: dict[str, tuple[str, str]] = {
    "abcd": ("hebbian_abcd", "none"), "abcd+mod": ("hebbian_abcd", "reward"),
    "oja": ("oja", "none"), "oja+mod": ("oja", "reward"),
    "bcm": ("bcm", "none"), "bcm+mod": ("bcm", "reward"),
    "static": ("none", "none"),
}
LABELS = {"abcd": "Hebbian ABCD", "abcd+mod": "Hebbian ABCD, neuromodulated", "oja": "Oja",
          "oja+mod": "Oja, neuromodulated", "bcm": "BCM", "bcm+mod": "BCM, neuromodulated",
          "static": "static (plasticity off)"}
# Start the rules as plain Hebbian learners (A=1, B=C=D=0) with a small rate; BPTT moves them.
RULE_INIT = {"hebbian_abcd": {"*.A": 1.0, "*.B": 0.0, "*.C": 0.0, "*.D": 0.0, "*.eta": 0.05},
             "oja": {"*.eta": 0.05}, "bcm": {"*.eta": 0.05}, "none": {}}


def policy_config(rule: str, modulation: str, layers: str = "all") -> dict[str, Any]:
    return {**NETWORK, "plasticity": {**PLASTICITY, "rule": rule, "modulation": modulation, "layers": layers}}


def run_variant(name: str, task: TemporalTask, args: argparse.Namespace) -> dict[str, Any]:
    rule, modulation = VARIANTS[name]
    if modulation != "none":
        modulation = args.modulation
    policy = build_policy(task, policy_config(rule, modulation, args.layers))
    config = BPTTConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, clip_norm=1.0,
                        train_noise=tuple(args.train_noise), seed=args.seed, log_every=25)
    mode = args.wandb_mode or os.environ.get("WANDB_MODE") or "offline"
    logger = RunLogger(args.out / name, {"variant": name, "rule": rule, "modulation": modulation,
                                         "bptt": dataclasses.asdict(config)},
                       wandb_mode=mode, group="diffplast", tags=[name], run_name=f"diffplast-{name}",
                       write_jsonl=False)  # BPTTTrainer writes metrics.jsonl itself
    trainer = BPTTTrainer(policy, task, config, run_dir=args.out / name,
                          initial_genome=initial_genome_with(policy, RULE_INIT[rule]), callbacks=[logger.log])
    try:
        history = trainer.train()
    finally:
        logger.finish()
    evals = {f"{n:g}": trainer.evaluate(n, batch_size=args.eval_batch, seed=args.seed + 1000)
             for n in args.eval_noise}
    print(f"{name:9s} trained {args.steps} steps in {history.wall_s:6.1f} s; accuracy "
          + ", ".join(f"noise {k}: {v['accuracy']:.3f}" for k, v in evals.items()), flush=True)
    return {"rule": rule, "modulation": modulation, "genome_dim": policy.genome.dim,
            "train_wall_s": history.wall_s, "eval": evals}


def markdown_table(results: dict[str, Any], noise_levels: list[float], chance: float) -> str:
    head = "| variant | " + " | ".join(f"noise {n:g}" for n in noise_levels) + " |"
    rule = "| --- | " + " | ".join("---" for _ in noise_levels) + " |"
    rows = [head, rule]
    for name, res in results.items():
        cells = [f"{res['eval'][f'{n:g}']['accuracy']:.2f} ± {res['eval'][f'{n:g}']['accuracy_sem']:.2f}"
                 for n in noise_levels]
        rows.append(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
    rows.append("| chance | " + " | ".join(f"{chance:.2f}" for _ in noise_levels) + " |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None, prog: str = "differentiable_plasticity") -> dict[str, Any]:
    """Parse ``argv`` (default: ``sys.argv``), run the variants, write and print the table."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps per variant")
    parser.add_argument("--batch", type=int, default=32, help="episodes per step")
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--train-noise", type=float, nargs="+", default=[0.0, 0.5],
                        help="each training episode draws its input-noise std from these levels")
    parser.add_argument("--eval-noise", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0])
    parser.add_argument("--eval-batch", type=int, default=512)
    parser.add_argument("--task", default="cue_association", choices=["cue_association", "pattern_completion"],
                        help="pattern_completion uses its defaults (2 patterns of 12, half hidden; chance 0.5)")
    parser.add_argument("--pairs", type=int, default=3, help="cue/target pairs per episode (chance = 1/pairs)")
    parser.add_argument("--cue-dim", type=int, default=8)
    parser.add_argument("--layers", default="all", choices=["output", "hidden", "all"],
                        help="which synapses are plastic")
    parser.add_argument("--modulation", default="reward", choices=["reward", "rpe", "neurons"],
                        help="third factor of the '+mod' variants; the task's store signal is its input")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=Path("runs/differentiable_plasticity"))
    parser.add_argument("--wandb-mode", default=None, choices=["offline", "online", "disabled"],
                        help="W&B mode (default: $WANDB_MODE, else offline)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    task: TemporalTask = (CueAssociationTask(n_pairs=args.pairs, cue_dim=args.cue_dim)
                          if args.task == "cue_association" else PatternCompletionTask())
    started = time.perf_counter()
    results = {name: run_variant(name, task, args) for name in args.variants}
    wall = time.perf_counter() - started
    table = markdown_table(results, args.eval_noise, task.chance)
    summary = {"task": task.describe(), "network": NETWORK, "args": {k: str(v) if isinstance(v, Path) else v
                                                                     for k, v in vars(args).items()},
               "results": results, "wall_s": wall, "threads": args.threads}
    atomic_write_json(args.out / "results.json", summary)
    atomic_write_text(args.out / "table.md", table)
    print(table)
    print(f"total wall time {wall:.1f} s with {args.threads} torch thread(s)")
    return summary


if __name__ == "__main__":  # python -m plasticrl.studies.bptt.experiment
    main()
