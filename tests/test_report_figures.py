"""Paper-ready figures and report text: legends name every line, adaptation as a family x severity grid,
severity defined in the report, the demo's report and plots."""
import json
import math

import numpy as np
from matplotlib.lines import Line2D

from plasticrl.report.demo_report import robustness_table, write_demo_report
from plasticrl.report.plots import _adaptation_cells, adaptation_plot
from plasticrl.report.training_curves import training_figure


def _rows(g: int, scale: float) -> list[dict]:
    return [{"generation": k, "env_steps": 100 * k, "fitness_mean": scale * k, "fitness_max": scale * k + 5,
             **({"eval_return_mean": scale * k + 1} if k % 2 == 0 else {})} for k in range(1, g + 1)]


def test_every_training_line_is_in_the_legend():
    fig = training_figure({"plastic": _rows(4, 1.0), "static": _rows(4, 0.5)})
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    lines = [ln.get_label() for ln in ax.get_lines()]
    assert sorted(legend) == sorted(lines) and len(lines) == 6  # 2 runs x (mean, best member, evaluation)
    assert "plastic: best member's fitness" in legend and "static: centre evaluation" in legend


def test_adaptation_grid_rows_are_families_columns_severities():
    conds = ["dead_actuator_mid@severe", "dead_actuator_mid@mild", "remove_limb_mid@moderate"]
    assert _adaptation_cells(sorted(conds)) == {"dead_actuator_mid@mild": (0, 0), "dead_actuator_mid@severe": (0, 2),
                                                "remove_limb_mid@moderate": (1, 1)}
    odd = [f"c{i}" for i in range(6)]  # names without severities: reading order, four to a row
    assert _adaptation_cells(odd)["c4"] == (1, 0) and _adaptation_cells(odd)["c3"] == (0, 3)


def test_adaptation_png_is_a_grid_not_a_strip(tmp_path):
    curves = [{"agent": a, "condition": f"{fam}@{sev}", "offsets": [-20, 0, 20], "reward": [1.0, 0.2, 0.9],
               "pre_switch_reward": 1.0, "time_to_recover": 20, "switch_step": 200}
              for fam in ("dead_actuator_mid", "remove_limb_mid") for sev in ("mild", "moderate", "severe")
              for a in ("plastic", "static")]
    path = adaptation_plot({"curves": curves, "window": 20, "env_id": "HalfCheetah-v5"}, tmp_path / "a.png")
    import imageio.v3 as iio

    height, width = iio.imread(path).shape[:2]
    assert width / height < 2.5  # 2 rows x 3 columns: today's 1 x 6 strip was 7:1


def test_report_defines_severity_and_lists_each_condition():
    rows = [{"agent": "a", "condition": "nominal", "severity": None, "perturbation": None},
            {"agent": "a", "condition": "shorten_limb@mild", "severity": "mild",
             "perturbation": [{"name": "shorten_limb", "segment": "bshin", "scale": 0.75, "start_step": 0}]},
            {"agent": "a", "condition": "dead_actuator_mid@severe", "severity": "severe",
             "perturbation": [{"name": "dead_actuator", "actuator": [0, 1, 2], "start_step": 200}]}]
    from plasticrl.report.writer import _conditions_lines

    text = "\n".join(_conditions_lines({"rows": rows}))
    assert "`mild` < `moderate` < `severe`" in text
    assert "| shorten_limb@mild | mild | shorten_limb(segment=bshin, scale=0.75) |" in text
    assert "| dead_actuator_mid@severe | severe | dead_actuator(actuator=[0, 1, 2]) from step 200 |" in text


def test_demo_report_marks_invalid_episodes_and_writes_plots(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(3, 2.0)))
    rows = [{"condition": "nominal", "returns": [10.0, 20.0]},
            {"condition": "mass x1.5", "returns": [4.0, -math.inf, 8.0]}]
    table = robustness_table(rows)
    # hand values: nominal 15 +- 5; damaged: mean of the finite 4 and 8 = 6 (std 2), one invalid, change -9
    assert table[0]["mean_return"] == 15.0 and table[0]["std_return"] == 5.0
    assert (table[1]["mean_return"], table[1]["std_return"], table[1]["invalid_episodes"],
            table[1]["change_vs_nominal"]) == (6.0, 2.0, 1, -9.0)
    paths = write_demo_report(tmp_path, rows, "HalfCheetah-v5", 3)
    report = paths["report"].read_text()
    assert "| mass x1.5 | 6.0 | 2.0 | -9.0 | 1 |" in report
    for key in ("training", "robustness"):
        assert paths[key].read_bytes().startswith(b"\x89PNG") and f"({paths[key].name})" in report
    assert np.isfinite([t["mean_return"] for t in table]).all()
