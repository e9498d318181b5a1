"""Benchmark: seconds per training epoch of CSDP (supervised) and CHL on digits; prints JSON.

    OMP_NUM_THREADS=1 python bench/bench_csdp.py [--repeats 3]

One epoch = 1437 training images. CSDP: 64-image mini-batches, 32 spiking steps of online
plasticity per mini-batch plus a 16-step label-free presentation for the readout. CHL:
8-image mini-batches, 10 settling + 20 learning steps. Reports the best of ``--repeats``
epochs (process CPU time and wall time) with one torch thread.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from plasticrl.studies.contrastive import (
    CHLConfig,
    CSDPConfig,
    chl_init,
    chl_train_epoch,
    csdp_init,
    csdp_train_epoch,
    load_digits_split,
)
from plasticrl.studies.contrastive.phases import PhaseSchedule


def _best(fn, repeats: int) -> dict:
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return {"wall_s": round(min(walls), 3), "cpu_s": round(min(cpus), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_digits_split(0)
    g = torch.Generator().manual_seed(0)
    csdp_cfg, chl_cfg = CSDPConfig(), CHLConfig()
    csdp_params, chl_params = csdp_init(csdp_cfg, g), chl_init(chl_cfg, g)
    flexible = PhaseSchedule("random", csdp_cfg.steps, csdp_cfg.steps)
    out = {
        "csdp_supervised_epoch": _best(
            lambda: csdp_train_epoch(csdp_params, csdp_cfg, data.x_train, data.y_train, flexible, g), args.repeats),
        "chl_epoch": _best(
            lambda: chl_train_epoch(chl_params, chl_cfg, data.x_train, data.y_train,
                                    PhaseSchedule("random", chl_cfg.steps, chl_cfg.steps), g), args.repeats),
        "phase_schedule_1M_steps": _best(lambda: flexible.sample(1_000_000, g), args.repeats),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
