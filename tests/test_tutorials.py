"""The tutorials under docs/tutorials/ run: every ```bash and ```python block, in page order, at a tiny budget.

Blocks are read from the pages themselves, so an edit that breaks a tutorial breaks this test. Each
budget substitution must find its text in the page (a renamed option fails here instead of silently
running the full budget). ```python blocks of a page share one namespace; ```bash blocks run with the
test venv's scripts first on PATH; in a page without Python the bash blocks run as one script, so shell
variables (RUN=...) carry from block to block. ```text blocks are output and are not run.
"""
from __future__ import annotations

import ctypes.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"
TINY_ES = "es.params.population_size=4 env.max_episode_steps=30 train.eval_episodes=1 train.eval_every=1"

#: page -> (text in the page, its tiny-budget replacement)
BUDGETS: dict[str, list[tuple[str, str]]] = {
    "train-evaluate-render.md": [
        ("train.generations=60", f"train.generations=2 {TINY_ES} logging.wandb.mode=disabled"),
        ("--episodes 10 --out $RUN/eval", "--episodes 2 --out $RUN/eval --wandb-mode disabled"),
        ("--out $RUN/dead_motors.mp4", "--steps 12 --width 64 --height 48 --out $RUN/dead_motors.mp4"),
    ],
    "new-plasticity-rule.md": [
        ('"train.generations=30"', '"train.generations=1", ' + ", ".join(f'"{o}"' for o in TINY_ES.split())),
    ],
    "new-perturbation.md": [
        ('"train.generations=20"', '"train.generations=1", ' + ", ".join(f'"{o}"' for o in TINY_ES.split())),
    ],
    "stable-baselines3.md": [
        ('PPO("MlpPolicy", env, seed=0, verbose=0)',
         'PPO("MlpPolicy", env, seed=0, verbose=0, n_steps=64, batch_size=32, n_epochs=1)'),
        ("total_timesteps=100_000", "total_timesteps=64"),
        ('perturbation="dead_actuator_mid@mild")', 'perturbation="dead_actuator_mid@mild", max_episode_steps=230)'),
        ("--episodes 10 --out eval-ppo", "--episodes 2 --max-episode-steps 20 --out eval-ppo --wandb-mode disabled"),
    ],
}
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.S | re.M)


def tutorial_blocks(page: str) -> list[tuple[str, str]]:
    """The page's runnable blocks, in order, with its budget substitutions applied (each must match)."""
    text = (TUTORIALS / page).read_text(encoding="utf-8")
    for old, new in BUDGETS[page]:
        assert text.count(old) == 1, f"{page}: budget text {old!r} should occur once"
        text = text.replace(old, new)
    return BLOCK.findall(text)


def run_tutorial(page: str, cwd: Path) -> None:
    blocks = tutorial_blocks(page)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "WANDB_MODE": "disabled"}
    if all(lang == "bash" for lang, _ in blocks):
        blocks = [("bash", "\n".join(code for _, code in blocks))]
    namespace: dict = {"__name__": f"tutorial:{page}"}
    old_cwd = os.getcwd()
    os.chdir(cwd)
    try:
        for k, (lang, code) in enumerate(blocks):
            if lang == "python":
                exec(compile(code, f"{page} block {k}", "exec"), namespace)  # noqa: S102 - our own docs
            else:
                done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env,
                                      capture_output=True, text=True, timeout=900)
                assert done.returncode == 0, f"{page} bash block {k} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    finally:
        os.chdir(old_cwd)


@pytest.fixture
def restore_registries():
    """The tutorials register a rule and a perturbation in this process: undone afterwards, so no other
    test sees them."""
    from plasticrl.envs.perturb import dynamics
    from plasticrl.envs.perturb.spec import TYPES
    from plasticrl.plasticity import rules

    saved = (dict(rules.RULES), dict(rules._REGISTERED), dict(TYPES), dict(dynamics.REGISTERED_EDITS),
             dynamics.MODEL_EDITS)
    yield
    for live, kept in zip((rules.RULES, rules._REGISTERED, TYPES, dynamics.REGISTERED_EDITS), saved):
        live.clear()
        live.update(kept)
    dynamics.MODEL_EDITS = saved[-1]


def test_every_tutorial_is_tested_and_in_the_nav():
    pages = sorted(p.name for p in TUTORIALS.glob("*.md"))
    assert pages == sorted(BUDGETS)
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in pages:
        assert f"tutorials/{page}" in nav, page
        assert tutorial_blocks(page), f"{page} has no runnable block"


@pytest.mark.slow
def test_train_evaluate_report_render(tmp_path):
    if ctypes.util.find_library("OSMesa") is None and not os.environ.get("CI"):
        pytest.skip("OSMesa not installed (Debian: apt-get install libosmesa6)")
    run_tutorial("train-evaluate-render.md", tmp_path)
    (run,) = (tmp_path / "runs" / "tutorial").iterdir()
    report = (run / "eval" / "report.md").read_text()
    for condition in ("shorten_limb@severe", "remove_limb_mid@mild", "dead_actuator_mid@moderate"):
        assert f"| {condition} |" in report
    assert "/frozen" in report  # the frozen twin beside the agent
    for name in ("eval/retained.png", "eval/severity.png", "training.png", "training.md", "dead_motors.mp4"):
        assert (run / name).is_file(), name
    import imageio.v3 as iio

    assert iio.imread(run / "dead_motors.mp4").shape == (12, 48, 64, 3)


def test_new_plasticity_rule(tmp_path, restore_registries):
    from plasticrl.plasticity.rules import RULES

    run_tutorial("new-plasticity-rule.md", tmp_path)
    assert RULES["decaying_hebb"].coefficients == ("D",)
    (run,) = (tmp_path / "runs" / "rules").iterdir()
    assert "rule: decaying_hebb" in (run / "config.yaml").read_text()


def test_new_perturbation(tmp_path, restore_registries):
    run_tutorial("new-perturbation.md", tmp_path)
    (run,) = (tmp_path / "runs" / "perturbations").iterdir()
    assert "heavy_feet" in (run / "config.yaml").read_text()


@pytest.mark.slow
def test_stable_baselines3(tmp_path, monkeypatch):
    # the tutorial's own model.learn uses SB3's default logger, whose folder would land in the system temp dir
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3-log"))
    run_tutorial("stable-baselines3.md", tmp_path)
    assert (tmp_path / "ppo_short_shin.zip").is_file()
    report = (tmp_path / "eval-ppo" / "report.md").read_text()
    assert "| shorten_limb@mild |" in report and "| dead_actuator_mid@severe |" in report
