"""Combining evaluations of different agents on the same paired episodes (`plasticrl report --combine`)."""
import json

import pytest
from typer.testing import CliRunner

from plasticrl.cli import app
from plasticrl.errors import PlasticRLError
from plasticrl.eval.combine import combine_results
from plasticrl.eval.evaluate import with_derived
from plasticrl.eval.result import as_result

from genomes import random_agent_file

ENV = "HalfCheetah-v5"
CONDS = ["nominal", "heavy", "dead"]
PERTURBATION = {"nominal": None, "heavy": [{"name": "mass_scale", "scale": 2.0}],
                "dead": [{"name": "dead_actuator", "index": 0, "start": 2}]}


def _row(agent, cond, returns):
    mean = sum(returns) / len(returns)
    row = {"agent": agent, "condition": cond, "perturbation": PERTURBATION[cond], "returns": returns,
           "mean_return": mean, "ci_low": min(returns), "ci_high": max(returns), "retained": None,
           "mean_length": 6.0, "mid_episode": cond == "dead", "time_to_recover": None}
    if cond == "dead":  # mid-episode: switch at step 2 of 6, a third of each return before it
        row.update(switch_step=2, steps_after_switch=4, returns_after_switch=[2 * r / 3 for r in returns])
    return row


def _result(agents, seed=1000, oracle=None):
    """A hand-made result: agent k earns 10 k + episode on nominal, less under the perturbations."""
    rows, curves = [], []
    for k, agent in enumerate(agents):
        base = [10.0 * k + e for e in range(3)]
        for cond, scale in zip(CONDS, (1.0, 0.5, 0.8)):
            rows.append(_row(agent, cond, [scale * b for b in base]))
        curves.append({"agent": agent, "condition": "dead", "switch_step": 2, "window": 2, "offsets": [-2, 0, 2],
                       "reward": [k, k / 2, k], "pre_switch_reward": k, "time_to_recover": 2, "episodes_used": 3})
    data = {"kind": "plasticrl-eval", "env_id": ENV, "env_kwargs": {"max_episode_steps": 6}, "suite": "novel",
            "episodes": 3, "seed": seed, "confidence": 0.95, "window": 2, "agents": agents, "conditions": CONDS,
            "rows": rows, "curves": curves, "reference_conditions": []}
    if oracle is not None:
        data["oracle"] = oracle
    return as_result(data)


def _part(whole, agents):
    """The evaluation of ``agents`` alone: the rows and curves of ``whole`` that belong to them."""
    return whole.replace(agents=tuple(agents), rows=tuple(r for r in whole.rows if r.agent in agents),
                         curves=tuple(c for c in whole.curves if c.agent in agents))


def test_combining_the_parts_of_an_evaluation_gives_it_back():
    agents = ["p_s0", "p_s1", "s_s0", "p_s0/frozen", "p_s1/frozen"]
    whole = with_derived(_result(agents))
    combined = combine_results([_part(whole, ["p_s0", "s_s0", "p_s0/frozen"]), _part(whole, ["p_s1", "p_s1/frozen"])])
    # the agents in the order of the parts; every row, curve and derived entry the same as evaluated together
    assert combined.agents == ("p_s0", "s_s0", "p_s0/frozen", "p_s1", "p_s1/frozen")
    for agent in agents:
        assert combined.rows_of(agent) == whole.rows_of(agent)
    assert sorted(map(str, combined.curves)) == sorted(map(str, whole.curves))
    by_key = lambda effects: sorted((e.agent, e.condition, e.difference) for e in effects)  # noqa: E731
    assert by_key(combined.plasticity_effect) == by_key(whole.plasticity_effect)
    # the effect pairs p_s1 (k=1: 10, 11, 12 on nominal) with its twin p_s1/frozen (k=4: 40, 41, 42)
    nominal = {(e.agent, e.condition): e.difference for e in combined.plasticity_effect}
    assert nominal[("p_s1", "nominal")] == pytest.approx(-30.0)
    assert combined.to_json()["seed"] == 1000 and combined.episodes == 3


@pytest.mark.parametrize("field, value", [("seed", 0), ("episodes", 5), ("suite", "morphology"),
                                          ("env_kwargs", {"max_episode_steps": 7})])
def test_a_different_protocol_is_refused_naming_the_field_and_both_values(field, value):
    a, b = _result(["a_s0"]), _result(["a_s1"]).replace(**{field: value})
    with pytest.raises(PlasticRLError) as err:
        combine_results([a, b], ["first/eval", "second/eval"])
    msg = str(err.value)
    assert field in msg and repr(value) in msg and repr(getattr(a, field)) in msg
    assert "first/eval" in msg and "second/eval" in msg


def test_a_changed_perturbation_under_the_same_condition_name_is_refused():
    a, b = _result(["a_s0"]), _result(["a_s1"])
    rows = tuple(r if r.condition != "heavy" else type(r)(**{**r.__dict__, "perturbation": [{"name": "mass_scale",
                                                                                              "scale": 3.0}]})
                 for r in b.rows)
    with pytest.raises(PlasticRLError, match="'heavy'.*3.0"):
        combine_results([a, b.replace(rows=rows)])


def test_an_agent_in_two_results_and_a_single_result_are_refused():
    with pytest.raises(PlasticRLError, match="'a_s0' is in both result 1 and result 2"):
        combine_results([_result(["a_s0"]), _result(["a_s0"])])
    with pytest.raises(PlasticRLError, match="at least two"):
        combine_results([_result(["a_s0"])])


def test_a_shared_oracle_is_kept_once_and_a_different_one_refused():
    a, b = _result(["oracle", "a_s0"], oracle="oracle"), _result(["oracle", "a_s1"], oracle="oracle")
    combined = combine_results([a, b])
    assert combined.agents == ("oracle", "a_s0", "a_s1") and len(combined.rows_of("oracle")) == len(CONDS)
    other = b.replace(rows=tuple(r if r.agent != "oracle" else type(r)(**{**r.__dict__, "mean_return": -1.0})
                                 for r in b.rows))
    with pytest.raises(PlasticRLError, match="oracle 'oracle' returned different episodes"):
        combine_results([a, other])
    with pytest.raises(PlasticRLError, match="oracle"):
        combine_results([a, _result(["a_s1"])])


def _eval(runner, agents, names, out):
    args = ["eval", *map(str, agents), "--only", "mass_scale@severe", "--episodes", "2", "--seed", "3",
            "--max-episode-steps", "20", "--out", str(out), "--wandb-mode", "disabled", "--quiet", "--no-plots"]
    for n in names:
        args += ["--name", n]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return json.loads((out / "eval.json").read_text())


def test_report_combine_equals_evaluating_the_agents_together(tmp_path):
    pytest.importorskip("rliable")
    runner = CliRunner()
    files = [random_agent_file(tmp_path / f"a{k}.pt", ENV, seed=k) for k in range(2)]
    together = _eval(runner, files, ["a_s0", "a_s1"], tmp_path / "together")
    _eval(runner, files[:1], ["a_s0"], tmp_path / "one" / "eval")
    _eval(runner, files[1:], ["a_s1"], tmp_path / "two" / "eval")
    out = tmp_path / "combined"
    res = runner.invoke(app, ["report", "--combine", "--no-plots", str(tmp_path / "one"), str(tmp_path / "two"),
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    combined = json.loads((out / "eval.json").read_text())
    assert combined["agents"] == together["agents"]
    assert combined["rows"] == together["rows"]
    assert (out / "seeds.md").is_file() and (out / "report.md").is_file()
    # the same --out again: refused, the combined result kept
    again = runner.invoke(app, ["report", "--combine", str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(out)])
    assert again.exit_code == 2 and "already holds an evaluation" in again.output
    assert json.loads((out / "eval.json").read_text()) == combined


def test_report_combine_bad_input_is_one_line_and_writes_nothing(tmp_path):
    runner = CliRunner()
    a, b = tmp_path / "a", tmp_path / "b"
    for d, agent, seed in ((a, "a_s0", 1000), (b, "a_s1", 0)):
        d.mkdir()
        (d / "eval.json").write_text(json.dumps(_result([agent], seed=seed).to_json()))
    out = tmp_path / "out"
    res = runner.invoke(app, ["report", "--combine", str(a), str(b), "--out", str(out)])
    assert res.exit_code == 2 and "seed is 0 there and 1000" in res.output and "Traceback" not in res.output
    assert not out.exists()
    res = runner.invoke(app, ["report", "--combine", str(a), str(b)])
    assert res.exit_code == 2 and "--combine needs --out" in res.output
    (b / "eval.json").write_text("{not json")
    res = runner.invoke(app, ["report", "--combine", str(a), str(b), "--out", str(out)])
    assert res.exit_code == 2 and "not JSON" in res.output and not out.exists()
    res = runner.invoke(app, ["report", "--combine", str(a), str(tmp_path / "missing"), "--out", str(out)])
    assert res.exit_code == 2 and "missing" in res.output and not out.exists()
