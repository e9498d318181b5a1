"""Regenerate the Tsodyks-Markram reference efficacies from NEST's ``tsodyks2_synapse``.

Writes ``tests/data/stp_nest_reference.json``, the test vectors that ``tests/test_stp.py``
checks :mod:`plasticrl.snn.stp` against. The test suite never imports NEST; only this script
does. Run it once after changing the settings or trains below::

    pip install nest-simulator          # a separate venv is fine; the script needs only nest + numpy
    OMP_NUM_THREADS=1 python examples/stp_nest_reference.py [--out tests/data/stp_nest_reference.json]

How the efficacies are read: every train drives its own chain
``spike_generator -> parrot_neuron -> tsodyks2_synapse (weight 1) -> iaf_psc_delta``, and a
``weight_recorder`` attached to the synapse model records the weight of every spike event the
synapse sends. With weight 1 that recorded weight *is* the efficacy ``u * x`` NEST computed for
the spike, bit for bit (no membrane read-out, no leak to subtract).

Times are in ms, as in NEST. Spike times lie on the 0.1 ms simulation grid; the generator fires
1 ms (its connection delay) before the parrot, so the recorded spike times are the ones listed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESOLUTION_MS = 0.1
GENERATOR_DELAY_MS = 1.0
TRAIN_SEED = 20261125

# name -> (U, initial u, initial x, tau_rec [ms], tau_fac [ms]); u = U, x = 1 are NEST's usual start.
SETTINGS: dict[str, dict[str, float]] = {
    "depressing": {"U": 0.5, "u0": 0.5, "x0": 1.0, "tau_rec": 800.0, "tau_fac": 0.0},
    "facilitating": {"U": 0.1, "u0": 0.1, "x0": 1.0, "tau_rec": 100.0, "tau_fac": 1000.0},
    "renewing": {"U": 1.0, "u0": 1.0, "x0": 1.0, "tau_rec": 10.0, "tau_fac": 0.0},
    # pins the first-spike convention: the first spike uses the stored (u, x) as they are
    "initial_state": {"U": 0.5, "u0": 0.2, "x0": 0.8, "tau_rec": 100.0, "tau_fac": 100.0},
}


def spike_trains(rng: np.random.Generator) -> list[list[float]]:
    """Three trains on the 0.1 ms grid: regular 20 Hz, Poisson-like 40 Hz, bursts with pauses."""
    def on_grid(times: np.ndarray) -> list[float]:
        steps = np.round(np.asarray(times) / RESOLUTION_MS).astype(int)
        index = np.arange(len(steps))
        steps = np.maximum.accumulate(steps - index) + index  # strictly increasing, >= 1 step apart
        return [round(float(s) * RESOLUTION_MS, 1) for s in steps]

    regular = 20.0 + 50.0 * np.arange(12)
    poisson = 5.0 + np.cumsum(rng.exponential(25.0, size=15))
    bursts = np.concatenate([b + np.cumsum(rng.uniform(2.0, 6.0, size=5)) for b in (10.0, 300.0, 1500.0)])
    return [on_grid(regular), on_grid(poisson), on_grid(bursts)]


def nest_efficacies(setting: dict[str, float], train: list[float]) -> list[float]:
    """Efficacy of every spike of ``train`` through one NEST ``tsodyks2_synapse``."""
    import nest  # imported here so that ``--help`` works without NEST

    nest.ResetKernel()
    nest.resolution = RESOLUTION_MS
    recorder = nest.Create("weight_recorder")
    nest.CopyModel("tsodyks2_synapse", "tsodyks2_recorded", {"weight_recorder": recorder})
    generator = nest.Create("spike_generator", params={"spike_times": [t - GENERATOR_DELAY_MS for t in train]})
    parrot = nest.Create("parrot_neuron")
    target = nest.Create("iaf_psc_delta", params={"V_th": 1e9})  # never fires; only a sink
    nest.Connect(generator, parrot, syn_spec={"delay": GENERATOR_DELAY_MS})
    nest.Connect(parrot, target, syn_spec={
        "synapse_model": "tsodyks2_recorded", "weight": 1.0, "delay": 1.0,
        "U": setting["U"], "u": setting["u0"], "x": setting["x0"],
        "tau_rec": setting["tau_rec"], "tau_fac": setting["tau_fac"],
    })
    nest.Simulate(train[-1] + 5.0)
    events = recorder.events
    times = np.asarray(events["times"], dtype=float)
    if not np.allclose(times, train):
        raise RuntimeError(f"NEST spike times {times.tolist()} differ from the train {train}")
    return [float(w) for w in events["weights"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1]
                        / "tests" / "data" / "stp_nest_reference.json")
    args = parser.parse_args()
    import nest

    trains = spike_trains(np.random.default_rng(TRAIN_SEED))
    result = {
        "source": "NEST tsodyks2_synapse, computed by examples/stp_nest_reference.py",
        "nest_version": nest.__version__,
        "units": "ms",
        "resolution_ms": RESOLUTION_MS,
        "train_seed": TRAIN_SEED,
        "settings": {},
    }
    for name, setting in SETTINGS.items():
        result["settings"][name] = {
            **setting,
            "trains": [{"spike_times": t, "efficacy": nest_efficacies(setting, t)} for t in trains],
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} (NEST {nest.__version__})")


if __name__ == "__main__":
    main()
