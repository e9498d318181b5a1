"""CSDP and flexible-phase contrastive learning on sklearn's digits: regenerates the README tables.

    OMP_NUM_THREADS=1 python examples/csdp_digits.py             # all tables, 3 seeds
    OMP_NUM_THREADS=1 python examples/csdp_digits.py --seeds 1   # quicker, one seed
    OMP_NUM_THREADS=1 python examples/csdp_digits.py --chl-only  # only the CHL columns of the phase table

Data: ``load_digits`` (1797 8x8 images, no download), one stratified 80/20 split with
``--split-seed`` (default 0): 1437 training and 360 test images for every model. Each
``--seeds`` value seeds the model's initial weights, data order, spike draws and phases.
Prints Markdown tables and, with ``--json PATH``, writes the raw numbers.

The flexible-phase table compares, per schedule, CSDP with two contrastive-Hebbian rules on
the same network (``plasticrl.studies.contrastive.chl``): the Hebbian *co-activity* of
each step (the earlier rule) and its *change* since the previous step (the differential
rule, the default). Both decay eta by ``eta_decay`` per epoch.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import torch

from plasticrl.studies.contrastive import (
    CHLConfig,
    CSDPConfig,
    chl_init,
    chl_predict,
    chl_train,
    csdp_features,
    csdp_init,
    csdp_predict,
    csdp_train_epoch,
    linear_probe,
    load_digits_split,
)
from plasticrl.studies.contrastive.phases import PhaseSchedule

EPOCHS = 5
CHL_RULES = {  # column title -> config; the co-activity rule sums T steps per phase, so a smaller eta
    "CHL, co-activity rule": CHLConfig(rule="coactivity", eta=0.1),
    "CHL, differential rule": CHLConfig(rule="differential"),
}


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred == y).float().mean())


def fmt(values: list[float]) -> str:
    """``mean ± std`` in percent (std over seeds; just the value for one seed)."""
    m = 100 * statistics.mean(values)
    if len(values) == 1:
        return f"{m:.1f}"
    return f"{m:.1f} ± {100 * statistics.stdev(values):.1f}"


def csdp_run(
    cfg: CSDPConfig, schedule: PhaseSchedule, data, seed: int, epochs: int, learn: bool = True, probe: bool = True
) -> dict:
    """Train (or, with ``learn=False``, only fit the readout of the untrained network) and score."""
    g = torch.Generator().manual_seed(seed)
    params = csdp_init(cfg, g)
    run_cfg = cfg if learn else replace(cfg, eta=0.0, eta_lateral=0.0)
    for _ in range(epochs):
        params = csdp_train_epoch(params, run_cfg, data.x_train, data.y_train, schedule, g)
    out = {"readout": accuracy(csdp_predict(params, cfg, data.x_test, g), data.y_test)}
    if cfg.supervised and learn:
        out["goodness"] = accuracy(csdp_predict(params, cfg, data.x_test, g, by="goodness"), data.y_test)
    if probe:  # label-free features: the label context is absent, as at test time
        f_tr, _ = csdp_features(params, cfg, data.x_train, g)
        f_te, _ = csdp_features(params, cfg, data.x_test, g)
        out["probe"] = linear_probe(f_tr, data.y_train, f_te, data.y_test, seed=seed)
    return out


def chl_run(cfg: CHLConfig, schedule: PhaseSchedule, data, seed: int, epochs: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    params = chl_train(chl_init(cfg, g), cfg, data.x_train, data.y_train, schedule, g, epochs)
    return {"readout": accuracy(chl_predict(params, cfg, data.x_test), data.y_test)}


def schedules(T: int, start: str) -> dict[str, PhaseSchedule]:
    """The schedules compared: strict periodic against flexible variants with the same budget."""
    return {
        "periodic (T+, T-)": PhaseSchedule("periodic", T, T, start=start),
        "random order, geometric lengths, mean T": PhaseSchedule("random", T, T),
        "random order, geometric lengths, mean T/4": PhaseSchedule("random", max(1, T // 4), max(1, T // 4)),
        "random, positive phase chosen 3x as often, importance-weighted":
            PhaseSchedule("random", T, T, p_positive=0.75, importance=True),
        "random, positive phase chosen 3x as often, NOT weighted (ablation)":
            PhaseSchedule("random", T, T, p_positive=0.75, importance=False),
    }


def collect(run: Callable[[int], dict], seeds: list[int]) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    for s in seeds:
        for key, value in run(s).items():
            results.setdefault(key, []).append(value)
    return results


def csdp_table(sup: CSDPConfig, data, seeds: list[int], epochs: int, raw: dict) -> list:
    """The CSDP table (periodic schedule); returns its rows, the first being supervised CSDP."""
    periodic = PhaseSchedule("periodic", sup.steps, sup.steps)
    mix = CSDPConfig(mode="self_supervised", negatives="mix")
    shuffle = CSDPConfig(mode="self_supervised", negatives="corrupt")
    rows = [
        ("CSDP supervised (label context, wrong-label negatives)", sup, True),
        ("same network, untrained (no CSDP)", sup, False),
        ("CSDP self-supervised, mixed-image negatives", mix, True),
        ("CSDP self-supervised, pixel-shuffle negatives", shuffle, True),
        ("self-supervised network, untrained (no CSDP)", mix, False),
    ]
    print(f"\n### CSDP on digits ({epochs} epochs, test accuracy %, {len(seeds)} seed(s))\n")
    print("| model | readout (local delta rule) | goodness (argmax over labels) | linear probe |")
    print("| --- | --- | --- | --- |")
    for name, cfg, learn in rows:
        res = collect(lambda s, cfg=cfg, learn=learn: csdp_run(cfg, periodic, data, s, epochs, learn), seeds)
        raw[name] = res
        cells = [fmt(res[k]) if k in res else "-" for k in ("readout", "goodness", "probe")]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    pix = linear_probe(data.x_train, data.y_train, data.x_test, data.y_test)
    raw["raw pixels"] = {"probe": [pix]}
    print(f"| raw pixels (reference) | - | - | {100 * pix:.1f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="number of model seeds (0..n-1)")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the raw numbers here")
    ap.add_argument("--chl-only", action="store_true", help="skip CSDP: only the CHL columns of the phase table")
    ap.add_argument("--tiny", action="store_true", help="first 128 training and 60 test images only: shows the "
                    "script runs end to end (the test suite uses it), its numbers mean nothing")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    data = load_digits_split(args.split_seed)
    if args.tiny:
        data = data._replace(x_train=data.x_train[:128], y_train=data.y_train[:128], x_test=data.x_test[:60],
                             y_test=data.y_test[:60])
    t0, c0 = time.perf_counter(), time.process_time()
    raw: dict[str, dict] = {}

    sup = CSDPConfig()
    rows = []
    if not args.chl_only:
        rows = csdp_table(sup, data, seeds, args.epochs, raw)

    print(f"\n### Flexible phases ({args.epochs} epochs, test accuracy %, {len(seeds)} seed(s))\n")
    columns = ([] if args.chl_only else ["CSDP supervised (readout)"]) + list(CHL_RULES)
    print("| schedule | " + " | ".join(columns) + " |")
    print("|" + " --- |" * (len(columns) + 1))
    csdp_sched = schedules(sup.steps, "positive")
    chl_sched = {name: schedules(cfg.steps, "negative") for name, cfg in CHL_RULES.items()}
    for name in csdp_sched:
        res: dict[str, list[float]] = {}
        if rows and name.startswith("periodic"):  # the same runs as the first row of the CSDP table
            res["CSDP supervised (readout)"] = raw[rows[0][0]]["readout"]
        elif rows:
            res["CSDP supervised (readout)"] = collect(
                lambda s, name=name: csdp_run(sup, csdp_sched[name], data, s, args.epochs, probe=False), seeds)["readout"]
        for col, cfg in CHL_RULES.items():
            res[col] = collect(
                lambda s, sched=chl_sched[col][name], cfg=cfg: chl_run(cfg, sched, data, s, args.epochs), seeds
            )["readout"]
        raw["phases: " + name] = res
        print(f"| {name} | " + " | ".join(fmt(res[c]) for c in columns) + " |", flush=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"\nwall time {wall:.0f} s, CPU time {cpu:.0f} s, torch threads {torch.get_num_threads()}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"seeds": seeds, "split_seed": args.split_seed, "epochs": args.epochs,
                       "wall_s": wall, "cpu_s": cpu, "results": raw}, fh, indent=1)


if __name__ == "__main__":
    main()
