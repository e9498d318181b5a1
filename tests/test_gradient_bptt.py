"""BPTT trainer: a tiny temporal task is learned, checkpoints resume exactly, bad configs are refused."""
import json

import pytest
import torch

from plasticrl.errors import PlasticRLError
from plasticrl.studies.bptt import BPTTConfig, BPTTTrainer, CueAssociationTask, build_policy, initial_genome_with

# Pinned rather than taken from the policy defaults, so the learning test does not drift with them.
NETWORK = {"hidden": [16], "substeps": 4, "input_init_gain": 2.0, "output_init_gain": 0.5, "zero_output_init": True,
           "encoder": {"kind": "direct", "spiking": False, "gain": 3.0, "bias": 0.0},
           "neuron": {"model": "lif", "tau_mem": 0.01, "surrogate_slope": 2.0}, "decoder": {"tau_mem": 0.01}}
TASK = CueAssociationTask(n_pairs=2, cue_dim=6, present_steps=2, gap_steps=1, query_steps=2, n_queries=2)


def trainer(rule, steps=1, run_dir=None, seed=0):
    policy = build_policy(TASK, {**NETWORK, "plasticity": {"rule": rule, "modulation": "reward", "sharing": "layer",
                                                           "layers": "output", "eta_scale": 1.0}})
    init = {"*.A": 1.0, "*.B": 0.0, "*.C": 0.0, "*.D": 0.0, "*.eta": 0.05} if rule == "hebbian_abcd" else {}
    config = BPTTConfig(steps=steps, batch_size=16, lr=0.01, train_noise=(0.0, 0.3), seed=seed, log_every=1)
    return BPTTTrainer(policy, TASK, config, run_dir=run_dir, initial_genome=initial_genome_with(policy, init))


def test_tiny_cue_association_is_learned_by_the_plastic_network_not_the_static_one():
    torch.manual_seed(0)  # nothing here should use the global generator; this only pins it anyway
    results = {}
    for rule in ("hebbian_abcd", "none"):
        t = trainer(rule, steps=150)
        t.train()
        results[rule] = t.evaluate(0.0, batch_size=256, seed=99)["accuracy"]
    # Chance is 0.5: the cue-to-target mapping is new in every episode.
    assert results["hebbian_abcd"] >= 0.8, results
    assert results["none"] <= 0.6, results


def test_checkpoint_resume_reproduces_an_uninterrupted_run(tmp_path):
    straight = trainer("hebbian_abcd", steps=4)
    straight.train()
    first = trainer("hebbian_abcd", steps=4, run_dir=tmp_path)
    first.train(steps=2)
    resumed = trainer("hebbian_abcd", steps=4, run_dir=tmp_path)
    resumed.load_checkpoint(tmp_path / "checkpoint.pt")
    assert resumed.step == 2
    resumed.train()
    assert torch.equal(resumed.genome, straight.genome)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all({"loss", "accuracy", "grad_norm"} <= set(r) for r in rows)
    other = trainer("oja", steps=4)
    with pytest.raises(PlasticRLError, match="another policy or task"):
        other.load_checkpoint(tmp_path / "checkpoint.pt")


def test_callbacks_receive_metrics_and_gradients_are_clipped():
    seen = []
    t = trainer("hebbian_abcd", steps=2)
    t.callbacks.append(seen.append)
    before = t.genome.detach().clone()
    t.config = BPTTConfig(steps=2, batch_size=16, lr=1.0, clip_norm=1e-3, log_every=1)
    t.optimizer = torch.optim.SGD([t.genome], lr=1.0)  # plain SGD: the step equals the clipped gradient
    t.train()
    assert [r["step"] for r in seen] == [1, 2]
    moved = torch.linalg.vector_norm(t.genome.detach() - before)
    assert moved <= 2 * 1e-3 + 1e-6


@pytest.mark.parametrize("bad, match", [
    ({"steps": 0}, "steps must be an integer >= 1; got 0"),
    ({"lr": -1.0}, "lr must be a positive finite number; got -1.0"),
    ({"truncation": 0}, "truncation must be None or an integer >= 1; got 0"),
    ({"train_noise": (0.1, -0.2)}, r"train_noise must be a non-empty list of levels >= 0"),
])
def test_config_errors_name_the_bad_value(bad, match):
    with pytest.raises(PlasticRLError, match=match):
        BPTTConfig(**bad)


def test_initial_value_pattern_matching_nothing_lists_the_groups():
    policy = build_policy(TASK, {**NETWORK, "plasticity": {"rule": "oja", "sharing": "layer"}})
    with pytest.raises(PlasticRLError, match="matches no searched group; searched groups: .*layers.0.eta"):
        initial_genome_with(policy, {"*.A": 1.0})


def test_a_step_with_a_non_finite_gradient_is_skipped_and_leaves_the_genome_alone(tmp_path):
    t = trainer("hebbian_abcd", steps=1, run_dir=tmp_path)
    with torch.no_grad():
        t.genome[0, t.policy.genome.slice_of("layers.1.eta")] = float("inf")  # every row's rule diverges
    before = t.genome.detach().clone()
    t.train()
    assert t.skipped == 1 and t.step == 1
    assert torch.equal(t.genome.detach().nan_to_num(), before.nan_to_num())
    row = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert row["skipped"] == 1 and row["invalid_fraction"] == 1.0 and row["grad_norm"] is None


def test_the_readme_table_script_runs_end_to_end(tmp_path):
    from plasticrl.studies.bptt.experiment import main

    summary = main(["--steps", "2", "--variants", "abcd+mod", "static", "--eval-batch", "8",
                    "--eval-noise", "0", "0.5", "--out", str(tmp_path)])
    table = (tmp_path / "table.md").read_text()
    assert "| Hebbian ABCD, neuromodulated |" in table and "| static (plasticity off) |" in table
    assert "| chance | 0.33 | 0.33 |" in table
    assert set(summary["results"]) == {"abcd+mod", "static"}
    assert json.loads((tmp_path / "results.json").read_text())["results"]["static"]["rule"] == "none"
    assert (tmp_path / "abcd+mod" / "checkpoint.pt").is_file()
