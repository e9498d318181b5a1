"""`plasticrl eval` / `plasticrl report` end to end on a tiny agent and short HalfCheetah episodes."""
import csv
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from plasticrl.rollouts.saved_agent import save_agent
from plasticrl.agents import make_policy
from plasticrl.cli import app
from plasticrl.envs import make_vec

from genomes import random_agent_file

ENV = "HalfCheetah-v5"
PNG = b"\x89PNG\r\n\x1a\n"


def _tiny_agent(path, kind="linear", seed=0):
    """A random (untrained) agent file: cheap, but its actions are large enough that perturbations matter."""
    return random_agent_file(path, ENV, kind, seed, modulation="rpe")


@pytest.fixture(scope="module")
def agent_file(tmp_path_factory):
    return _tiny_agent(tmp_path_factory.mktemp("agent") / "tiny.pt")


def test_batched_rows_match_the_reference_evaluator(agent_file):
    """Rows of a mixed batch give the same returns as each condition run alone (paired seeds)."""
    import plasticrl
    from plasticrl.rollouts.batch import run_batch
    from plasticrl.rollouts.controllers import load_controller
    from plasticrl.eval.robustness import evaluate_conditions

    conds = {"nominal": None, "heavy": [{"name": "mass_scale", "scale": 2.5}],
             "noisy": [{"name": "action_noise", "std": 0.5}]}
    kwargs = {"max_episode_steps": 20}
    ref = evaluate_conditions(plasticrl.load(agent_file), ENV, conds, episodes=3, seed=7, env_kwargs=kwargs)
    got = run_batch(load_controller(agent_file), ENV, list(conds.items()), episodes=3, seed=7, env_kwargs=kwargs,
                    max_rows=6)  # 2 chunks: (nominal, heavy), (noisy)
    for r in ref:
        np.testing.assert_allclose(got[r.name].returns, r.returns, rtol=1e-9, atol=1e-9)
        assert got[r.name].rewards.shape == (20, 3)
    assert not np.allclose(got["heavy"].returns, got["nominal"].returns)


def test_eval_cli_writes_consistent_reports(agent_file, tmp_path):
    out = tmp_path / "ev"
    res = CliRunner().invoke(app, ["eval", str(agent_file), "--only", "dead_actuator_mid@severe", "--only",
                                   "mass_scale@severe", "--episodes", "3", "--seed", "4", "--max-episode-steps",
                                   "240", "--out", str(out), "--name", "tiny", "--wandb-mode", "offline"])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "eval.json").read_text())
    assert data["conditions"] == ["nominal", "mass_scale@severe", "dead_actuator_mid@severe"]
    rows = {r["condition"]: r for r in data["rows"]}
    # The untrained agent loses return on HalfCheetah (control cost): a retained fraction relative to a
    # negative nominal return is undefined, recorded as null and shown as '-' (hand-valued cases with a
    # positive nominal: tests/test_eval_stats.py).
    assert rows["nominal"]["mean_return"] < 0
    assert all(r["retained"] is None and r["retained_low"] is None for r in rows.values())
    for r in rows.values():
        assert r["mean_return"] == pytest.approx(np.mean(r["returns"]))
        assert r["ci_low"] <= r["mean_return"] <= r["ci_high"]
        assert len(r["returns"]) == 3
    heavy = rows["mass_scale@severe"]
    assert "retained_beyond_survival" not in heavy  # HalfCheetah pays no survival bonus
    assert rows["dead_actuator_mid@severe"]["mid_episode"] and rows["dead_actuator_mid@severe"]["switch_step"] == 200
    [curve] = data["curves"]
    assert curve["condition"] == "dead_actuator_mid@severe" and 0 in curve["offsets"]
    assert math.isfinite(curve["pre_switch_reward"]) and curve["episodes_used"] == 3
    # the return from the switch on equals the curve's windows from offset 0 on (20-step windows, 40 steps left)
    mid = rows["dead_actuator_mid@severe"]
    assert mid["steps_after_switch"] == 40 and "returns_after_switch" not in heavy
    after = [rew * curve["window"] for off, rew in zip(curve["offsets"], curve["reward"]) if off >= 0]
    assert np.mean(mid["returns_after_switch"]) == pytest.approx(sum(after), rel=1e-5)
    with open(out / "eval.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [t["condition"] for t in table] == data["conditions"]
    assert float(table[1]["mean_return"]) == pytest.approx(heavy["mean_return"])
    md = (out / "report.md").read_text()
    assert "| mass_scale@severe |" in md and "## Mid-episode switches" in md
    assert f"| mass_scale@severe | {heavy['mean_return']:.1f} |" in md
    [heavy_line] = [line for line in md.splitlines() if line.startswith(f"| mass_scale@severe | {heavy['mean_return']:.1f}")]
    assert heavy_line.split("|")[4].strip() == "-"  # the retained column
    for png in ("retained.png", "severity.png", "adaptation.png"):
        assert (out / png).read_bytes()[:8] == PNG
    assert list((out / "wandb").glob("offline-run-*")), "W&B offline run expected"
    curves = list(csv.DictReader(open(out / "curves.csv")))
    assert len(curves) == len(curve["offsets"]) and curves[0]["condition"] == "dead_actuator_mid@severe"


def test_eval_rejects_bad_choices(agent_file, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["eval", str(agent_file), "--only", "no_such@*", "--out", str(tmp_path / "x"),
                              "--wandb-mode", "disabled", "--quiet"])
    assert res.exit_code == 2 and "no_such@*" in res.output and "mass_scale@mild" in res.output
    res = runner.invoke(app, ["eval", str(agent_file), "--wandb-mode", "sometimes", "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "sometimes" in res.output and "offline" in res.output
    res = runner.invoke(app, ["eval", str(agent_file), "--suite", "train", "--out", str(tmp_path / "z")])
    assert res.exit_code == 2 and "'train'" in res.output and "novel" in res.output


def test_report_rebuilds_eval_and_draws_training_curves(agent_file, tmp_path):
    ev = tmp_path / "run" / "eval"
    res = CliRunner().invoke(app, ["eval", str(agent_file), "--only", "light@severe", "--episodes", "2",
                                   "--max-episode-steps", "20", "--out", str(ev), "--wandb-mode", "disabled",
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    original = (ev / "report.md").read_text()
    (ev / "report.md").unlink()
    (ev / "eval.csv").unlink()
    run = tmp_path / "run"
    rows = [{"generation": g, "env_steps": 1000 * (g + 1), "fitness_mean": float(g), "fitness_max": 2.0 * g,
             "eval_return_mean": 3.0 * g if g % 2 == 0 else None} for g in range(5)]
    (run / "metrics.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n"
                                               for r in rows) + '{"torn')
    res = CliRunner().invoke(app, ["report", str(run)])
    assert res.exit_code == 0, res.output
    assert (ev / "report.md").read_text() == original
    assert (ev / "eval.csv").is_file()
    assert (run / "training.png").read_bytes()[:8] == PNG
    md = (run / "training.md").read_text()
    assert "| run | 5 | 5000 | 12.0 | 4.0 |" in md
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert bad.exit_code == 2 and "nothing" in bad.output
    assert not math.isnan(json.loads((ev / "eval.json").read_text())["rows"][0]["mean_return"])


def test_frozen_twins_keep_their_weights_and_are_reported_beside_the_agent(tmp_path):
    from plasticrl.rollouts.controllers import frozen_twins, load_controller

    plastic = _tiny_agent(tmp_path / "plastic.pt", kind="plastic_spiking")
    linear = _tiny_agent(tmp_path / "linear.pt")
    agent = load_controller(plastic, "p")
    [twin] = frozen_twins([agent, load_controller(linear, "l")])  # the linear agent has nothing to freeze
    assert twin.name == "p/frozen" and twin.agent.policy_config.plasticity.eta_scale == 0.0
    rng = np.random.default_rng(0)
    for ctrl in (agent, twin):
        ctrl.start(4)
    for t in range(40):
        obs, reward = 3.0 * rng.normal(size=(4, 17)), rng.normal(size=4)
        a, b = agent.act(obs), twin.act(obs)
        if t == 0:
            np.testing.assert_array_equal(a, b)  # same genome: identical until the first learning step
        agent.learn(reward)
        twin.learn(reward)
    pairs = list(zip(agent.policy.fast_weights, agent.policy.initial_weights))
    assert any(not torch.equal(w, w0) for w, w0 in pairs)
    for w, w0 in zip(twin.policy.fast_weights, twin.policy.initial_weights):
        assert torch.equal(w, w0)

    out = tmp_path / "ev"
    common = ["--only", "mass_scale@severe", "--episodes", "2", "--max-episode-steps", "40", "--wandb-mode",
              "disabled", "--no-plots"]
    res = CliRunner().invoke(app, ["eval", str(plastic), str(linear), "--name", "p", "--name", "l",
                                   "--frozen-twins", "--out", str(out), *common])
    assert res.exit_code == 0, res.output
    assert "plasticity adds, p minus p/frozen" in " ".join(res.output.split())  # the console summary says it too
    common.append("--quiet")
    data = json.loads((out / "eval.json").read_text())
    assert sorted({r["agent"] for r in data["rows"]}) == ["l", "p", "p/frozen"]
    # the paired comparison of p with its twin: per condition, the difference of the rows' means
    effects = {e["condition"]: e for e in data["plasticity_effect"]}
    assert {e["agent"] for e in data["plasticity_effect"]} == {"p"}
    assert set(effects) == {"nominal", "held-out mean", "mass_scale@severe"}
    rows = {(r["agent"], r["condition"]): r for r in data["rows"]}
    for cond in ("nominal", "mass_scale@severe"):
        assert effects[cond]["difference"] == pytest.approx(
            rows["p", cond]["mean_return"] - rows["p/frozen", cond]["mean_return"], abs=1e-9)
    assert "## What within-episode plasticity adds" in (out / "report.md").read_text()
    res = CliRunner().invoke(app, ["eval", str(linear), "--frozen-twins", "--out", str(tmp_path / "x"), *common])
    assert res.exit_code != 0 and "nothing to freeze" in res.output
    import plasticrl
    from plasticrl.errors import PlasticRLError

    with pytest.raises(PlasticRLError, match="no learning rate to freeze"):
        plasticrl.load(linear, frozen=True)


def test_agent_directory_loads_best_then_final_agent_and_names_what_it_missed(tmp_path):
    """A run directory loads best_agent.pt, else final_agent.pt; one with neither names both, and the
    CLI says so instead of claiming the directory does not exist."""
    import plasticrl
    from plasticrl.errors import PlasticRLError

    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(PlasticRLError, match=r"'.*run' is a directory without an agent file \(looked for "
                                             r"best_agent.pt and final_agent.pt\)"):
        plasticrl.load(run)
    res = CliRunner().invoke(app, ["eval", str(run), "--out", str(tmp_path / "x"), "--episodes", "1"])
    assert res.exit_code != 0 and "without an agent file" in " ".join(res.output.split())
    _tiny_agent(run / "final_agent.pt", seed=1)
    final = plasticrl.load(run)
    _tiny_agent(run / "best_agent.pt", seed=2)
    best = plasticrl.load(run)
    assert torch.equal(final.genome, plasticrl.load(run / "final_agent.pt").genome)
    assert torch.equal(best.genome, plasticrl.load(run / "best_agent.pt").genome)
    assert not torch.equal(best.genome, final.genome)


def test_obs_std_floor_at_evaluation_replaces_the_saved_one_and_is_reported(tmp_path):
    """A floor above the smallest std changes what the policy sees only on those entries: the
    nominal (noise-free) observation at the mean gives the same action, sensor noise on an
    entry that never varied in training no longer saturates the input."""
    import plasticrl
    from plasticrl.errors import PlasticRLError
    from plasticrl.rollouts.controllers import frozen_twins, load_controller
    from plasticrl.rollouts.obs_norm import ObsBatchMoments, ObsNormalizer

    env = make_vec(ENV, 1)
    cfg = {"kind": "plastic_spiking", "hidden": [8], "plasticity": {"rule": "bcm", "modulation": "rpe"}}
    policy = make_policy(cfg, env.single_observation_space, env.single_action_space)
    env.close()
    rng = np.random.default_rng(0)
    sample = torch.as_tensor(rng.normal(size=(50, 17)) * 2.0)
    sample[:, 0] = 0.3  # one sensor that never varied in training
    norm = ObsNormalizer(17)
    norm.update(ObsBatchMoments(50.0, sample.sum(0), (sample * sample).sum(0)))
    gen = torch.Generator().manual_seed(1)
    genome = policy.initial_genome(1)[0] + 0.5 * torch.randn(policy.genome.dim, generator=gen, dtype=policy.dtype)
    path = save_agent(tmp_path / "a.pt", policy, cfg, genome, norm, {"env_id": ENV, "env_kwargs": {}})

    plain, floored = load_controller(path, "a"), load_controller(path, "a", obs_std_floor=0.5)
    assert plain.agent.obs_norm.std_floor == 0.0 and floored.agent.obs_norm.std_floor == 0.5
    assert frozen_twins([floored])[0].agent.obs_norm.std_floor == 0.5
    assert norm.std[1:].min() > 0.5  # only the constant sensor is affected by this floor
    at_mean = norm.mean.numpy()[None, :].copy()
    noisy = at_mean.copy()
    noisy[0, 0] += 0.05
    for ctrl in (plain, floored):
        ctrl.start(1)
    np.testing.assert_array_equal(plain.act(at_mean), floored.act(at_mean))
    expected = torch.as_tensor(noisy - at_mean) / norm.std.clamp_min(0.5)
    assert torch.allclose(floored.agent.obs_norm.normalise(torch.as_tensor(noisy)), expected)
    assert plain.agent.obs_norm.normalise(torch.as_tensor(noisy))[0, 0] == plain.agent.obs_norm.clip

    out = tmp_path / "ev"
    common = ["--only", "mass_scale@severe", "--episodes", "2", "--max-episode-steps", "30", "--wandb-mode",
              "disabled", "--no-plots", "--quiet"]
    res = CliRunner().invoke(app, ["eval", str(path), "--obs-std-floor", "0.5", "--out", str(out), *common])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "eval.json").read_text())["obs_std_floor"] == 0.5
    assert "Observation std floor: 0.5 (raw units)" in (out / "report.md").read_text()
    res = CliRunner().invoke(app, ["eval", str(path), "--obs-std-floor", "-1", "--out", str(tmp_path / "x"), *common])
    assert res.exit_code != 0 and "obs_std_floor must be >= 0" in res.output and "-1" in res.output
    with pytest.raises(PlasticRLError, match="trained without observation normalisation"):
        plasticrl.load(_tiny_agent(tmp_path / "l.pt"), obs_std_floor=0.1)


def test_return_beyond_the_survival_bonus_on_a_task_that_pays_one(tmp_path):
    """Hopper pays 1 per healthy step: the survival part of a return is (length - 1) for an episode
    that ended by falling (the terminal step is unhealthy) and the length for one cut by the cap."""
    from plasticrl.rollouts.batch import run_batch
    from plasticrl.rollouts.controllers import load_controller

    env = make_vec("Hopper-v5", 1)
    policy = make_policy({"kind": "linear"}, env.single_observation_space, env.single_action_space)
    env.close()
    gen = torch.Generator().manual_seed(0)
    genome = policy.initial_genome(1)[0] + 0.3 * torch.randn(policy.genome.dim, generator=gen, dtype=policy.dtype)
    path = save_agent(tmp_path / "hop.pt", policy, {"kind": "linear"}, genome, None,
                      {"env_id": "Hopper-v5", "env_kwargs": {}})
    conds = [("nominal", None), ("heavy", [{"name": "mass_scale", "scale": 2.5}])]
    # This agent falls after 15-18 steps: with a cap of 40 every episode ends by falling, with 10 none does.
    for cap, falls in ((40, 1), (10, 0)):
        got = run_batch(load_controller(path), "Hopper-v5", conds, episodes=4, seed=0,
                        env_kwargs={"max_episode_steps": cap})
        for batch in got.values():
            assert (batch.lengths < cap).all() == bool(falls) and (batch.lengths < cap).any() == bool(falls)
            np.testing.assert_array_equal(batch.survival, batch.lengths - falls)

    out = tmp_path / "ev"
    res = CliRunner().invoke(app, ["eval", str(path), "--only", "mass_scale@severe", "--episodes", "4",
                                   "--max-episode-steps", "40", "--out", str(out), "--wandb-mode", "disabled",
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    rows = {r["condition"]: r for r in json.loads((out / "eval.json").read_text())["rows"]}
    nominal, heavy = rows["nominal"], rows["mass_scale@severe"]
    for r in rows.values():
        assert r["mean_return_beyond_survival"] == pytest.approx(r["mean_return"] - r["mean_survival_bonus"])
        assert r["mean_survival_bonus"] == pytest.approx(r["mean_length"] - 1)
        assert r["mean_survival_bonus"] == pytest.approx(np.mean(r["survival_bonus"]))
    assert heavy["retained_beyond_survival"] == pytest.approx(
        heavy["mean_return_beyond_survival"] / nominal["mean_return_beyond_survival"])
    table = {t["condition"]: t for t in csv.DictReader(open(out / "eval.csv"))}
    assert float(table["mass_scale@severe"]["retained_beyond_survival"]) == pytest.approx(
        heavy["retained_beyond_survival"])
    md = (out / "report.md").read_text()
    assert "mean retained beyond survival" in md and f"{heavy['retained_beyond_survival']:.3f}" in md


def _row(agent, cond, returns):
    """A result row with only what the report's tables read."""
    return {"agent": agent, "condition": cond, "returns": returns, "mean_return": float(np.mean(returns)),
            "ci_low": 0.0, "ci_high": 0.0, "retained": 1.0, "retained_low": 1.0, "retained_high": 1.0,
            "mean_length": 10.0, "mid_episode": False, "time_to_recover": None}


def _hand_result(agents, rows):
    return {"env_id": ENV, "suite": "novel", "episodes": 2, "seed": 0, "confidence": 0.95, "window": 20,
            "agents": agents, "conditions": ["nominal", "a", "b"], "curves": [], "rows": rows}


def test_summary_mean_held_out_return_against_hand_values():
    from plasticrl.report.writer import markdown

    # held out: a and b average 50 / 45 (episodes 0 / 1), 47.5 in all; two episodes, so a resample's mean is
    # 50, 47.5 or 45 and the 95% percentile interval spans [45, 50]
    result = _hand_result(["p"], [_row("p", "nominal", [100.0, 100.0]), _row("p", "a", [60.0, 40.0]),
                                  _row("p", "b", [40.0, 50.0])])
    summary = next(line for line in markdown(result).splitlines() if line.startswith("| p |"))
    assert summary.startswith("| p | 100.0 | 47.5 [45.0, 50.0] |")
    # a result saved before per-episode returns were kept: the mean alone, no interval
    result["rows"][2]["returns"] = None
    summary = next(line for line in markdown(result).splitlines() if line.startswith("| p |"))
    assert summary.startswith("| p | 100.0 | 47.5 |")


def test_plasticity_effect_against_hand_values():
    from plasticrl.eval.plasticity_effect import plasticity_effect
    from plasticrl.eval.result import as_result
    from plasticrl.report.writer import markdown

    result = _hand_result(
        ["p", "s", "p/frozen"],
        [_row("p", "nominal", [110.0, 90.0]), _row("p", "a", [60.0, 40.0]), _row("p", "b", [30.0, 50.0]),
         _row("s", "nominal", [1.0, 1.0]), _row("s", "a", [1.0, 1.0]), _row("s", "b", [1.0, 1.0]),
         _row("p/frozen", "nominal", [100.0, 100.0]), _row("p/frozen", "a", [50.0, 30.0]),
         _row("p/frozen", "b", [30.0, 50.0])])
    # b switches on at step 2 of 6: p earns 20, 40 after it (so 10, 10 before), its twin 10, 30 (20, 20 before)
    for agent, after in (("p", [20.0, 40.0]), ("p/frozen", [10.0, 30.0])):
        row_b = next(r for r in result["rows"] if r["agent"] == agent and r["condition"] == "b")
        row_b.update(mid_episode=True, switch_step=2, steps_after_switch=4, returns_after_switch=after)
    effects = {e["condition"]: e for e in plasticity_effect(as_result(result))}
    assert {e["agent"] for e in effects.values()} == {"p"}
    # same total on b, but -10 per episode before the switch (-5 per step) and +10 after it (+2.5 per step)
    for cond in ("b", "mid-episode mean"):
        assert effects[cond]["before_switch_per_step"] == -5.0 and effects[cond]["after_switch_per_step"] == 2.5
        assert effects[cond]["after_switch_per_step_low"] == effects[cond]["after_switch_per_step_high"] == 2.5
    assert "after_switch_per_step" not in effects["a"] and "after_switch_per_step" not in effects["held-out mean"]  # s has no twin; the twin is not compared with itself
    # nominal: differences +10, -10 -> 0, interval [-10, 10]; a: +10, +10 -> 10 exactly; b: 0
    assert (effects["nominal"]["difference"], effects["nominal"]["low"], effects["nominal"]["high"]) == (0, -10, 10)
    assert (effects["a"]["difference"], effects["a"]["low"], effects["a"]["high"]) == (10, 10, 10)
    assert effects["b"]["difference"] == 0
    # held out: per-episode means over a and b are 5 and 5 -> 5, and 5 / 100 of the twin's nominal
    held = effects["held-out mean"]
    assert (held["difference"], held["low"], held["high"]) == (5, 5, 5)
    assert held["of_twin_nominal"] == pytest.approx(0.05)
    md = markdown(result)
    assert "| p | **held-out mean** | 5.0 | [5.0, 5.0] | 0.050 | [0.050, 0.050] | - | - |" in md
    assert "| p | b | 0.0 | [0.0, 0.0] | 0.000 | [0.000, 0.000] | -5.000 [-5.000, -5.000] | 2.500 [2.500, 2.500] |" in md
    # results saved before per-episode returns were kept: no comparison rather than a wrong one
    for r in result["rows"]:
        r["returns"] = None
    assert plasticity_effect(as_result(result)) == [] and "plasticity adds" not in markdown(result)
