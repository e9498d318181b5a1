"""The typed evaluation result and the one settings object.

``EvaluationResult.to_json()`` must be exactly the dict ``evaluate()`` assembled (the ``eval.json`` that
earlier versions wrote: same keys, same order, same values, non-finite numbers as null), ``from_json`` must
read it back to an equal result, and ``EvalSettings`` must refuse bad values in one line before anything runs.
"""
import importlib
import json

import pytest
from typer.testing import CliRunner

from plasticrl.cli import app
from plasticrl.errors import PlasticRLError
from plasticrl.eval.result import NOT_RECORDED, EvaluationResult
from plasticrl.eval.settings import EvalSettings, eval_settings
from plasticrl.io import json_safe
from plasticrl.rollouts.controllers import frozen_twins, load_controller

from genomes import random_agent_file

evaluate_module = importlib.import_module("plasticrl.eval.evaluate")

# The keys of a row as eval.json has always held them (read off files written before the result was typed)
CORE = ["agent", "condition", "family", "severity", "perturbation", "mid_episode", "switch_step", "mean_return",
        "ci_low", "ci_high", "std_return", "retained", "retained_low", "retained_high", "mean_length",
        "invalid_episodes", "time_to_recover", "returns", "invalid"]
AFTER = ["returns_after_switch", "steps_after_switch", "episode_times_to_recover"]
BEYOND = ["mean_survival_bonus", "survival_bonus", "mean_return_beyond_survival", "beyond_survival_ci_low",
          "beyond_survival_ci_high", "retained_beyond_survival", "retained_beyond_survival_low",
          "retained_beyond_survival_high"]
GOAL = ["goal_switch_steps", "reward_rates_before", "reward_rates_after", "time_to_adapt", "oracle_reward_rate_after"]
HEADER = ["format", "kind", "env_id", "env_kwargs", "suite", "episodes", "seed", "confidence", "window", "agents",
          "conditions", "rows", "curves", "reference_conditions"]


def _agent(path, env_id, kind="linear", seed=0, **env_kwargs):
    return random_agent_file(path, env_id, kind, seed, modulation="reward", env_kwargs=env_kwargs)


def _evaluate_capturing(monkeypatch, *args, **kwargs):
    """``evaluate(...)`` and the plain dict it assembled before typing it (what earlier versions returned)."""
    raw = []
    real = EvaluationResult.from_json
    monkeypatch.setattr(evaluate_module.EvaluationResult, "from_json",
                        classmethod(lambda cls, data: raw.append(json_safe(data)) or real(data)))
    result = evaluate_module.evaluate(*args, **kwargs)
    monkeypatch.undo()
    return result, raw[-1]  # the complete dict (the first reading types the rows the derived tables use)


def _same_order(a, b):
    """Equal, with dict keys in the same order at every depth (``==`` on dicts ignores the order)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same_order(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same_order(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b)


@pytest.fixture(scope="module")
def cheetah(tmp_path_factory):
    """A plastic agent with its frozen twin and a linear one, on nominal and a motor that dies at step 200."""
    d = tmp_path_factory.mktemp("cheetah")
    ctrls = [load_controller(_agent(d / "p.pt", "HalfCheetah-v5", "plastic_spiking", 1), "p"),
             load_controller(_agent(d / "l.pt", "HalfCheetah-v5"), "l")]
    return ctrls[:1] + frozen_twins(ctrls[:1]) + ctrls[1:]


def test_to_json_is_the_dict_evaluate_assembled_and_from_json_reads_it_back(cheetah, monkeypatch, tmp_path):
    from plasticrl.report.writer import load_result, write_reports

    result, raw = _evaluate_capturing(monkeypatch, cheetah, "HalfCheetah-v5", suite="novel", episodes=3, seed=4,
                                      only=["dead_actuator_mid@severe"], env_kwargs={"max_episode_steps": 240})
    assert _same_order(result.to_json(), raw)
    assert EvaluationResult.from_json(result.to_json()) == result
    # the hand-checked layout: header, then the optional oracle, the derived tables (no obs_std_floor: not recorded)
    assert list(raw) == HEADER + ["plasticity_effect", "goal_adaptation"] and result.obs_std_floor is NOT_RECORDED
    nominal, damaged = result.rows_of("p")
    assert list(nominal.to_json()) == CORE and list(damaged.to_json()) == CORE + AFTER  # HalfCheetah: no bonus
    assert damaged.mid_episode and damaged.switch_step == 200 and damaged.after_switch.steps_after_switch == 40
    # one time to recover per episode, each a window start within the 40 steps after the switch (window 20)
    times = damaged.after_switch.episode_times_to_recover
    assert len(times) == 3 and all(t is None or t in (0, 20) for t in times)
    recovered, valid = damaged.after_switch.recovered_within(100)
    assert valid == 3 and recovered == sum(t is not None for t in times)
    assert [(e.agent, e.twin, e.condition) for e in result.plasticity_effect][:1] == [("p", "p/frozen", "nominal")]
    assert result.plasticity_effect[-1].around_switch is not None  # per step before/after the motor dies
    assert [c.condition for c in result.curves] == ["dead_actuator_mid@severe"] * 3 and result.goal_adaptation == ()
    # the file is the dict (sorted keys, nulls), and reading it gives the same result
    write_reports(result, tmp_path, plots=False)
    assert json.loads((tmp_path / "eval.json").read_text()) == raw
    assert f"| {recovered}/3 |" in (tmp_path / "report.md").read_text()  # the report counts them per curve
    assert load_result(tmp_path) == result


def test_goal_switch_survival_oracle_and_twin_round_trip(tmp_path, monkeypatch):
    """AntDir: goal-switch rates, the survival bonus (per episode and per step), the oracle and the twin."""
    kw = {"switch_step": [20, 40]}
    agent = load_controller(_agent(tmp_path / "a.pt", "AntDir-v5", "plastic_spiking", 5, **kw), "a")
    oracle = load_controller(_agent(tmp_path / "o.pt", "AntDir-v5", seed=6, goal_observed=True, **kw), "o")
    result, raw = _evaluate_capturing(monkeypatch, [agent, *frozen_twins([agent])], "AntDir-v5", suite="nominal",
                                      episodes=2, seed=3, env_kwargs={**kw, "max_episode_steps": 70}, oracle=oracle)
    assert _same_order(result.to_json(), raw)
    assert EvaluationResult.from_json(result.to_json()) == result
    assert list(raw) == HEADER + ["oracle", "plasticity_effect", "goal_adaptation"] and result.oracle == "o"
    for row in raw["rows"]:
        assert list(row) == CORE + BEYOND + GOAL + ["survival_per_step", "goal_term_rates_before",
                                                    "goal_term_rates_after"]
    entries = {e.agent: e for e in result.goal_adaptation}
    assert entries["a"].goal_term is not None and "goal_term" in raw["goal_adaptation"][1]
    assert entries["o"].is_oracle and entries["a"].twin_difference.twin == "a/frozen"
    assert entries["a/frozen"].twin_difference is None and entries["a"].beyond_survival is not None
    assert list(raw["goal_adaptation"][1])[-6:] == ["condition", "is_oracle", "twin", "after_minus_twin",
                                                    "after_minus_twin_low", "after_minus_twin_high"]
    recorded = result.replace(obs_std_floor=None).to_json()
    assert list(recorded)[-1] == "obs_std_floor" and recorded["obs_std_floor"] is None


def test_from_json_reads_a_hand_made_result_and_derives_the_plasticity_effect():
    """A result assembled by hand (or saved by an older version) has only some keys: the rest read as None
    or the defaults, and the plasticity effect is derived from the rows as the report always did."""
    def row(agent, returns):
        return {"agent": agent, "condition": "nominal", "returns": returns, "mean_return": sum(returns) / 2}

    result = EvaluationResult.from_json({"agents": ["x", "x/frozen"], "conditions": ["nominal"], "seed": 0,
                                         "rows": [row("x", [3.0, 5.0]), row("x/frozen", [1.0, 2.0])]})
    (effect,) = result.plasticity_effect
    assert (effect.agent, effect.twin, effect.difference) == ("x", "x/frozen", 2.5)  # mean of 3-1 and 5-2
    assert effect.of_twin_nominal == 2.5 / 1.5 and effect.around_switch is None
    assert result.row("x", "nominal").family == "nominal" and result.confidence == 0.95
    assert result.rows[0].retained is None and result.rows[0].after_switch is None


def test_settings_object_and_keywords_give_the_same_result(cheetah):
    kwargs = {"env_kwargs": {"max_episode_steps": 30}}
    by_keywords = evaluate_module.evaluate(cheetah[2:], "HalfCheetah-v5", suite="nominal", episodes=2, seed=9,
                                           **kwargs)
    settings = EvalSettings(suite="nominal", episodes=2, seed=9)
    assert evaluate_module.evaluate(cheetah[2:], "HalfCheetah-v5", settings, **kwargs) == by_keywords
    with pytest.raises(PlasticRLError, match="not both; got both settings and episodes"):
        evaluate_module.evaluate(cheetah[2:], "HalfCheetah-v5", settings, episodes=3, **kwargs)
    # the episode length as a setting is the env keyword argument
    steps = EvalSettings(suite="nominal", episodes=2, seed=9, max_episode_steps=30)
    assert evaluate_module.evaluate(cheetah[2:], "HalfCheetah-v5", steps) == by_keywords
    # frozen_twins: the twin of each controller that learns, after the controllers; none to freeze: one line
    twinned = evaluate_module.evaluate(cheetah[:1] + cheetah[2:], "HalfCheetah-v5", suite="nominal", episodes=2,
                                       seed=9, frozen_twins=True, **kwargs)
    assert twinned.agents == ("p", "l", "p/frozen") and twinned.row("l", "nominal") == by_keywords.row("l", "nominal")
    with pytest.raises(PlasticRLError, match=r"frozen twins asked for, but none of the agents \(l\) learns"):
        evaluate_module.evaluate(cheetah[2:], "HalfCheetah-v5", suite="nominal", frozen_twins=True, **kwargs)


@pytest.mark.parametrize("values,message", [
    ({"episodes": 0}, "invalid eval settings: episodes: Input should be greater than 0 (got 0)"),
    ({"suite": "train"}, "invalid eval settings: suite: unknown suite 'train'; valid choices: morphology, "
                         "motor_failure, nominal, novel"),
    ({"obs_std_floor": -0.5}, "invalid eval settings: obs_std_floor: obs_std_floor must be >= 0 (raw observation "
                              "units); got -0.5"),
    ({"confidence": 1.0}, "invalid eval settings: confidence: Input should be less than 1 (got 1.0)"),
    ({"window": float("nan")}, "invalid eval settings: window: Input should be a finite number (got nan)"),
    ({"episode": 3}, "invalid eval settings: episode: Extra inputs are not permitted (got 3)"),
])
def test_eval_settings_refuse_bad_values_in_one_line(values, message):
    with pytest.raises(PlasticRLError) as err:
        eval_settings(**values)
    assert str(err.value) == message


@pytest.mark.parametrize("args,message", [
    (["--episodes", "0"], "invalid eval options: --episodes: Input should be greater than 0 (got 0)"),
    (["--suite", "weird"], "unknown suite 'weird'; valid choices: morphology, motor_failure, nominal, novel"),
    (["--window", "-1"], "invalid eval options: --window: Input should be greater than 0 (got -1)"),
])
def test_eval_command_refuses_bad_settings_before_loading_or_writing(tmp_path, args, message):
    out = tmp_path / "ev"
    # the agent file does not exist: the settings are checked before it is looked for
    res = CliRunner().invoke(app, ["eval", str(tmp_path / "missing.pt"), *args, "--out", str(out)])
    assert res.exit_code != 0 and message in " ".join(res.output.split())
    assert "Traceback" not in res.output and "missing.pt" not in res.output and not out.exists()


def test_experiment_eval_section_is_the_eval_settings():
    from plasticrl.experiments.comparison import ExpEval

    section = ExpEval(episodes=3, frozen_twins=True, oracle="agent")
    assert isinstance(section, EvalSettings) and section.seed == 1000  # held out from the training seeds
    assert section.model_dump(exclude={"oracle", "seed"}) == EvalSettings(episodes=3, frozen_twins=True).model_dump(
        exclude={"seed"})
    with pytest.raises(Exception, match="obs_std_floor must be >= 0"):
        ExpEval(obs_std_floor=-1)
