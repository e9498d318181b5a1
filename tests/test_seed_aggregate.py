"""Multi-seed aggregation with rliable: IQM and stratified bootstrap intervals against hand values."""
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from plasticrl.cli import app
from plasticrl.report.aggregate import aggregate, score_matrix, seed_groups

pytest.importorskip("rliable")


def _result(scores: dict[str, list[float]], nominal: dict[str, float]) -> dict:
    conds = ["nominal"] + [f"c{i}" for i in range(len(next(iter(scores.values()))))]
    rows = []
    for agent, values in scores.items():
        rows.append({"agent": agent, "condition": "nominal", "mean_return": nominal[agent], "retained": 1.0})
        rows += [{"agent": agent, "condition": c, "mean_return": v,
                  "retained": v / nominal[agent] if math.isfinite(v) else None} for c, v in zip(conds[1:], values)]
    return {"agents": list(scores), "conditions": conds, "rows": rows, "env_id": "HalfCheetah-v5"}


def test_seed_groups_from_labels():
    labels = ["plastic_s0", "plastic_s1", "static-seed3", "static-seed1", "ppo", "lone_s0",
              "damage", "damage_seed1", "damage_seed2", "plastic_s0/frozen", "plastic_s1/frozen"]
    assert seed_groups(labels) == {"damage": ["damage", "damage_seed1", "damage_seed2"],
                                   "plastic": ["plastic_s0", "plastic_s1"],
                                   "plastic/frozen": ["plastic_s0/frozen", "plastic_s1/frozen"],
                                   "static": ["static-seed1", "static-seed3"]}


def test_iqm_mean_median_against_hand_values():
    # two seeds x four held-out conditions; pooled and sorted: 0 1 2 3 4 6 9 100
    result = _result({"a_s0": [0.0, 1.0, 2.0, 100.0], "a_s1": [3.0, 4.0, 9.0, 6.0]}, {"a_s0": 10.0, "a_s1": 10.0})
    agg = aggregate(result)["groups"]["a"]["return"]
    assert agg["iqm"] == pytest.approx((2 + 3 + 4 + 6) / 4)  # middle half: drop 0, 1 and 9, 100
    # rliable's median: over conditions, of each condition's mean over runs (1.5, 2.5, 5.5, 53)
    assert agg["mean"] == pytest.approx(125 / 8) and agg["median"] == pytest.approx((2.5 + 5.5) / 2)
    for k in ("iqm", "mean", "median"):
        assert agg[f"{k}_low"] <= agg[k] <= agg[f"{k}_high"]
    # runs are resampled within each condition: some resamples draw condition 3's 100 for both runs
    assert agg["mean_high"] > agg["mean"] > agg["mean_low"]


def test_identical_seeds_give_a_zero_width_interval_and_non_finite_cells_are_removed():
    result = _result({"a_s0": [1.0, 2.0, 3.0, -math.inf], "a_s1": [1.0, 2.0, 3.0, 4.0]}, {"a_s0": 4.0, "a_s1": 4.0})
    scores, kept, removed = score_matrix(result, ["a_s0", "a_s1"], "return")
    assert kept == ["c0", "c1", "c2"] and removed == ["c3"] and scores.shape == (2, 3)
    agg = aggregate(result)["groups"]["a"]
    ret = agg["return"]
    # every resample of identical runs is the same matrix: the interval is the point
    assert ret["iqm"] == pytest.approx(2.0) and ret["iqm_low"] == ret["iqm_high"] == pytest.approx(ret["iqm"])
    assert ret["removed_conditions"] == ["c3"] and agg["retained"]["removed_conditions"] == ["c3"]
    assert agg["retained"]["median"] == pytest.approx(0.5)  # 1/4, 2/4, 3/4 in both runs


def test_pairs_of_settings_against_hand_values():
    result = _result({"a_s0": [1.0, 5.0], "a_s1": [3.0, 7.0], "b_s0": [2.0, 4.0], "b_s1": [0.0, 8.0]},
                     {"a_s0": 1.0, "a_s1": 1.0, "b_s0": 1.0, "b_s1": 1.0})
    (pair,) = aggregate(result)["pairs"]["return"]
    assert (pair["x"], pair["y"], pair["conditions"]) == ("a", "b", 2)
    # P(a > b) per condition over the 2 x 2 run pairs: c0 {1, 3} vs {2, 0}: 3 of 4; c1 {5, 7} vs {4, 8}: 2 of 4
    assert pair["probability_of_improvement"] == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert pair["probability_of_improvement_low"] <= 0.625 <= pair["probability_of_improvement_high"]
    # paired by seed: s0 mean 3 - 3 = 0, s1 mean 5 - 4 = 1
    assert pair["paired_seeds"] == [0, 1] and pair["paired_difference"] == pytest.approx(0.5)
    assert pair["paired_difference_low"] == pytest.approx(0.0) and pair["paired_difference_high"] == pytest.approx(1.0)


def test_plasticrl_report_writes_the_seed_aggregate(tmp_path):
    from test_eval_report import _tiny_agent

    a0, a1 = _tiny_agent(tmp_path / "a0.pt", seed=0), _tiny_agent(tmp_path / "a1.pt", seed=1)
    out = tmp_path / "eval"
    res = CliRunner().invoke(app, ["eval", str(a0), str(a1), "--name", "lin_s0", "--name", "lin_s1",
                                   "--episodes", "2", "--only", "obs_noise@*", "--only", "light@*",
                                   "--max-episode-steps", "20", "--out", str(out), "--quiet",
                                   "--wandb-mode", "disabled", "--no-plots"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    agg = json.loads((out / "seeds.json").read_text())
    rows = json.loads((out / "eval.json").read_text())["rows"]
    pooled = np.sort([r["mean_return"] for r in rows if r["condition"] != "nominal"])
    assert len(pooled) == 2 * 6  # 2 seeds x (obs_noise, light) x 3 severities
    # reference IQM: the mean of the middle half of the sorted pooled scores
    assert agg["groups"]["lin"]["return"]["iqm"] == pytest.approx(pooled[3:9].mean())
    text = (out / "seeds.md").read_text()
    assert "| lin | 2 | 6 |" in text and (out / "profiles.png").is_file()
