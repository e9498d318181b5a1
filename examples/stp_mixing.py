"""Mixing of LIF samplers with and without short-term depression, against Gibbs and parallel tempering.

    OMP_NUM_THREADS=1 python examples/stp_mixing.py --out runs/stp_mixing          # full table and plots
    OMP_NUM_THREADS=1 python examples/stp_mixing.py --quick --out /tmp/stp_mixing  # fewer samples and updates
    python examples/stp_mixing.py --tiny --out /tmp/stp_mixing   # seconds: checks that it runs (tests), no finding

Two data sets, sklearn's 8x8 digits binarised at 8 of 16 (64 visible units): *balanced*
(digits 0, 1, 7, all images) and *imbalanced* (digits 0 and 1 at 90/10). On each:

1. an RBM with 12 hidden units is trained by CD-5 (:func:`plasticrl.studies.sampling.rbm.train_cd`);
   the exact log-likelihood is computed by summing over the 2^12 hidden states;
2. its weights are translated into a LIF network (76 neurons) through the activation fit
   (alpha, mu0) and fine-tuned by wake-sleep with LIF samples in the sleep phase
   (:func:`plasticrl.studies.sampling.wake_sleep.wake_sleep_finetune`);
3. every sampler runs ``--chains`` chains from the same random training images:
   Gibbs and parallel tempering on the CD-trained RBM (one sample = one block-Gibbs sweep; a PT
   sample costs one sweep per temperature), i.i.d. samples of the RBM itself (exact, the
   reference for what the model holds), and the LIF network read once per refractory period
   (10 ms) without STP (renewing synapses) and with depressing STP, on all presynaptic neurons
   or on the hidden ones only (hidden -> visible synapses).

Metrics per sampler: class changes per 1000 samples (nearest class prototype of the visible
state; mean ± std over chains), class proportions of all samples, KL(sampled classes || data
classes) and KL(sampled classes || model classes), the model's class proportions being those
of 100k i.i.d. samples of the Boltzmann machine the sampler runs on (exact sampling: 12 hidden
units, 4096 hidden states; for the fine-tuned LIF rows, the fine-tuned weights), and a quality
check: the mean number of pixels by which a sample differs from its nearest training image.
Prints Markdown tables; writes PNG plots (class against time for a few chains, switches per
method) and ``results.json`` into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from plasticrl.studies.sampling import (
    LIFSamplerParameters,
    boltzmann_to_lif,
    calibrate_activation,
    sample_lif,
)
from plasticrl.studies.sampling.data import binarized_digits
from plasticrl.studies.sampling.mixing import (
    categorical_kl,
    class_proportions,
    class_prototypes,
    classify,
    distance_to_data,
    switches_per_1000,
)
from plasticrl.studies.sampling.rbm import (
    CDConfig,
    log_likelihood,
    rbm_to_boltzmann,
    sample_exact,
    train_cd,
)
from plasticrl.studies.sampling.tempering import (
    geometric_betas,
    gibbs_sample,
    parallel_tempering,
)
from plasticrl.studies.sampling.wake_sleep import WakeSleepConfig, wake_sleep_finetune
from plasticrl.snn.stp import STPParameters

DATASETS = {
    "balanced (0, 1, 7)": {"classes": [0, 1, 7], "proportions": None},
    "imbalanced (0: 90 %, 1: 10 %)": {"classes": [0, 1], "proportions": [0.9, 0.1]},
}
LIF = LIFSamplerParameters(dt=1.0)  # 1 ms steps: 10x faster than the 0.1 ms default, recalibrated below
# (label, depressing synapse, which presynaptic neurons depress: "all" or "hidden")
DEPRESSION = [("LIF + STP (U=0.05, tau_rec=200 ms)", STPParameters(0.05, 200.0, 0.0), "all"),
              ("LIF + STP (U=0.2, tau_rec=200 ms)", STPParameters(0.2, 200.0, 0.0), "all"),
              ("LIF + STP on hidden -> visible only (U=0.2, tau_rec=200 ms)", STPParameters(0.2, 200.0, 0.0), "hidden")]
PT_BETAS = geometric_betas(6, 0.3)


def run_dataset(name: str, spec: dict, args, fit, log) -> dict:
    x, y = binarized_digits(spec["classes"], spec["proportions"])
    classes, prototypes = class_prototypes(x, y)
    k = len(classes)
    data_props = class_proportions(classify(x, prototypes), k)  # what the classifier says about the data itself
    t0 = time.time()
    rbm, ll = train_cd(x, CDConfig(n_hidden=12, epochs=args.epochs, lr=0.05, k=5, lr_final=0.1), seed=args.seed)
    log(f"[{name}] {len(x)} images; CD-5 {args.epochs} epochs in {time.time() - t0:.1f} s: "
        f"exact log-likelihood {ll[0]:.2f} -> {ll[-1]:.2f} nats/image")
    t0 = time.time()
    ws = WakeSleepConfig(updates=args.ws_updates)
    rbm_lif = wake_sleep_finetune(rbm, x, LIF, fit, ws, seed=args.seed)
    log(f"[{name}] wake-sleep ({args.ws_updates} updates, LIF sleep phase) in {time.time() - t0:.1f} s; "
        f"exact log-likelihood of the fine-tuned weights read as an RBM: {log_likelihood(rbm_lif, x):.2f}")

    g = torch.Generator().manual_seed(args.seed + 1)
    starts = x[torch.randint(len(x), (args.chains,), generator=g)]
    n_v = x.shape[1]
    every = round(LIF.tau_ref / LIF.dt)
    results = {}

    def model_classes(net) -> torch.Tensor:
        """Exact class proportions of a Boltzmann machine, up to Monte Carlo error: 100k i.i.d. samples."""
        v_iid, _ = sample_exact(net, 100_000, torch.Generator().manual_seed(args.seed + 5))
        return class_proportions(classify(v_iid, prototypes), k)

    def record(method: str, v: torch.Tensor, model_props: torch.Tensor, seconds: float, cost: str) -> None:
        labels = classify(v, prototypes)
        sw = switches_per_1000(labels)
        props = class_proportions(labels, k)
        results[method] = {
            "switches_mean": float(sw.mean()), "switches_std": float(sw.std()), "proportions": props.tolist(),
            "kl_classes_vs_data": categorical_kl(props, data_props), "kl_classes_vs_model": categorical_kl(props, model_props),
            "model_proportions": model_props.tolist(), "seconds": seconds, "cost": cost, "pixels_off": distance_to_data(v, x),
            "trace": labels[: args.trace, : 3].T.tolist()}
        log(f"  {method}: {float(sw.mean()):.1f} switches/1000, classes {[round(p, 3) for p in props.tolist()]}, "
            f"{seconds:.1f} s")

    props_cd = model_classes(rbm)
    t0 = time.time()
    v, _ = sample_exact(rbm, args.samples * args.chains, g)
    record("RBM, exact i.i.d. samples", v.view(args.samples, args.chains, n_v), props_cd, time.time() - t0, "-")
    t0 = time.time()
    s = gibbs_sample(rbm, starts, args.samples, seed=args.seed + 2, burn_in=args.burn_in)
    record("RBM, Gibbs", s.v, props_cd, time.time() - t0, "1 sweep")
    t0 = time.time()
    s = parallel_tempering(rbm, starts, PT_BETAS, args.samples, seed=args.seed + 3, burn_in=args.burn_in)
    record(f"RBM, parallel tempering ({len(PT_BETAS)} temperatures, swap rate {s.swap_rate:.2f})",
           s.v, props_cd, time.time() - t0, f"{len(PT_BETAS)} sweeps")

    lif_runs = [("LIF, renewing, CD weights (no fine-tuning)", rbm, None, "all"),
                ("LIF, renewing (no STP)", rbm_lif, None, "all")]
    lif_runs += [(label, rbm_lif, dep, which) for label, dep, which in DEPRESSION]
    hidden_only = torch.arange(n_v + rbm.W.shape[1]) >= n_v
    props_lif = model_classes(rbm_lif)
    for method, net, depression, which in lif_runs:
        W, b = rbm_to_boltzmann(net)
        mu, w = boltzmann_to_lif(W, b, fit, LIF)
        # LIF chains start with every neuron off; the burn-in (burn_in samples x 10 ms) lets them settle
        t0 = time.time()
        z = sample_lif(mu, w, LIF, args.chains, every * (args.samples + args.burn_in), every * args.burn_in, every,
                       seed=args.seed + 4, depression=depression, depress=hidden_only if which == "hidden" else None)
        record(method, z[..., :n_v], props_cd if net is rbm else props_lif, time.time() - t0, "10 ms")
    return {"classes": classes.tolist(), "data_proportions": data_props.tolist(), "log_likelihood": ll,
                "images": len(x), "samplers": results}


def markdown(all_results: dict) -> str:
    lines = []
    for name, res in all_results.items():
        cls = ", ".join(str(c) for c in res["classes"])
        data = ", ".join(f"{p:.2f}" for p in res["data_proportions"])
        lines += [f"**{name}** ({res['images']} images; data classes {cls}: {data})", "",
                  ("| sampler | one sample | switches / 1000 samples | class proportions | KL(classes \\|\\| data) "
                  "| KL(classes \\|\\| model) | pixels off nearest image |"),
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for method, r in res["samplers"].items():
            props = ", ".join(f"{p:.2f}" for p in r["proportions"])
            lines.append(f"| {method} | {r['cost']} | {r['switches_mean']:.1f} ± {r['switches_std']:.1f} | {props} | "
                         f"{r['kl_classes_vs_data']:.3f} | {r['kl_classes_vs_model']:.3f} | {r['pixels_off']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def plots(all_results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for d, (name, res) in enumerate(all_results.items()):
        methods = list(res["samplers"])
        fig, axes = plt.subplots(len(methods), 1, figsize=(9, 1.3 * len(methods)), sharex=True)
        for ax, method in zip(axes, methods):
            for c, trace in enumerate(res["samplers"][method]["trace"]):
                ax.plot(torch.tensor(trace, dtype=torch.float64) + 0.08 * c, lw=0.8)
            ax.set_yticks(range(len(res["classes"])), [str(c) for c in res["classes"]])
            ax.set_title(method, fontsize=8)
        axes[-1].set_xlabel("sample")
        fig.suptitle(f"{name}: class of the sampled image (3 chains)", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / f"traces_{d}.png", dpi=110)
        plt.close(fig)
    fig, axes = plt.subplots(1, len(all_results), figsize=(12, 4.5))
    for ax, (name, res) in zip(axes, all_results.items()):
        methods = list(res["samplers"])
        means = [res["samplers"][m]["switches_mean"] for m in methods]
        stds = [res["samplers"][m]["switches_std"] for m in methods]
        ax.barh(range(len(methods)), means, xerr=stds)
        ax.set_yticks(range(len(methods)), [m.replace(" (", "\n(") for m in methods], fontsize=6)
        ax.set_xlabel("class switches per 1000 samples")
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "switches.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/stp_mixing"))
    parser.add_argument("--quick", action="store_true", help="fewer samples, epochs and wake-sleep updates")
    parser.add_argument("--tiny", action="store_true",
                        help="a budget that only shows the script runs end to end (the test suite uses it)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    calibration_steps = 4000
    if args.tiny:
        args.epochs, args.ws_updates, args.chains, args.samples, args.burn_in, args.trace = 5, 2, 2, 20, 2, 10
        calibration_steps = 400
    elif args.quick:
        args.epochs, args.ws_updates, args.chains, args.samples, args.burn_in, args.trace = 300, 60, 8, 300, 20, 300
    else:
        args.epochs, args.ws_updates, args.chains, args.samples, args.burn_in, args.trace = 300, 200, 16, 1000, 50, 500
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    fit = calibrate_activation(LIF, torch.linspace(-1.5, 3.5, 21), steps=calibration_steps, burn_in=200,
                               seed=args.seed)
    print(f"activation fit at dt={LIF.dt} ms: alpha={fit.alpha:.3f}, mu0={fit.mu0:.3f}, "
          f"max residual {fit.max_residual:.3f}", flush=True)
    all_results = {name: run_dataset(name, spec, args, fit, lambda s: print(s, flush=True))
                   for name, spec in DATASETS.items()}
    table = markdown(all_results)
    print()
    print(table)
    wall = time.time() - start
    print(f"wall time {wall:.0f} s on {torch.get_num_threads()} thread")
    plots(all_results, args.out)
    (args.out / "results.json").write_text(json.dumps({"results": all_results, "wall_s": wall}, indent=1))


if __name__ == "__main__":
    main()
