"""The README's and the Python-API guide's snippets and every script in examples/ run, at small budgets.

The snippets are read from README.md and docs/guide/python-api.md themselves, so an edit that breaks them breaks this test; the
budget is cut by textual substitutions that must each apply exactly once (an edit that removes the
line they target fails here too, instead of silently running the full budget)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def readme_block(heading: str, index: int = 0, page: str = "README.md") -> str:
    """The ``index``-th ```python block after ``heading`` in ``page`` (README.md by default)."""
    text = (ROOT / page).read_text()
    start = text.index(heading)
    blocks = re.findall(r"```python\n(.*?)```", text[start:], flags=re.S)
    return blocks[index]


def substitute(code: str, old: str, new: str) -> str:
    assert code.count(old) == 1, f"README snippet no longer contains {old!r} exactly once"
    return code.replace(old, new)


def test_readme_quickstart_snippet_runs():
    code = readme_block("## Quickstart (Python API)")
    code = substitute(code, "P, E = 32, 2", "P, E = 3, 2")
    code = substitute(code, 'make_env("HalfCheetah-v5", P * E)', 'make_env("HalfCheetah-v5", P * E, max_episode_steps=15)')
    code = substitute(code, '"hidden": [128]', '"hidden": [16]')
    code = substitute(code, "print(plasticrl.rollout(", "result = (plasticrl.rollout(")
    namespace: dict = {}
    exec(compile(code, "README.md quickstart", "exec"), namespace)  # noqa: S102 - our own README
    P, E, fitness = namespace["P"], namespace["E"], namespace["result"]
    assert fitness.shape == (P,) and torch.isfinite(fitness).all()
    assert namespace["policy"].genome.dim == namespace["genome"].shape[1]


def test_python_api_guide_snippet_runs():
    code = readme_block("## A population rollout", page="docs/guide/python-api.md")
    code = substitute(code, "P, E = 32, 2", "P, E = 3, 2")
    code = substitute(code, 'make_env("HalfCheetah-v5", P * E)', 'make_env("HalfCheetah-v5", P * E, max_episode_steps=15)')
    code = substitute(code, '"hidden": [128]', '"hidden": [16]')
    namespace: dict = {}
    exec(compile(code, "python-api.md rollout", "exec"), namespace)  # noqa: S102 - our own docs
    P, E, env, result, actions = (namespace[k] for k in ("P", "E", "env", "result", "actions"))
    assert result.fitness.shape == (P,) and torch.isfinite(result.fitness).all()
    assert result.returns.shape == (P, E) and (result.lengths == 15).all()  # HalfCheetah runs to the cap
    low, high = env.single_action_space.low, env.single_action_space.high
    assert actions.shape == (P * E, 6)
    assert np.all(actions.numpy() >= low) and np.all(actions.numpy() <= high)
    assert namespace["policy"].genome.dim == namespace["genome"].shape[1]


def test_readme_deploying_snippet_runs_on_a_trained_run(tmp_path):
    from plasticrl.config import load_config
    from plasticrl.trainers.es import ESTrainer

    run = tmp_path / "run"
    ESTrainer(load_config(None, ["policy.hidden=[8]", "env.max_episode_steps=20", "train.generations=1",
                                 "es.params={population_size: 4}", "train.eval_episodes=1",
                                 "logging.wandb.mode=disabled", "logging.progress=false"]), run).train()
    code = readme_block("## Deploying a trained agent", page="docs/guide/python-api.md")
    code = substitute(code, '"runs/halfcheetah-bcm-modulated-20261125-101500"', repr(str(run)))
    code = substitute(code, "range(1000)", "range(20)")
    namespace: dict = {}
    exec(compile(code, "README.md deploying", "exec"), namespace)  # noqa: S102
    assert namespace["agent"].metadata["generation"] == 1
    assert isinstance(namespace["reward"], float) and np.isfinite(namespace["reward"])


def run_example(args, cwd, timeout=600):
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_example_es_plastic_spiking(tmp_path):
    out = run_example([ROOT / "examples" / "es_plastic_spiking.py", "--generations", "2", "--population", "4",
                       "--max-episode-steps", "20"], tmp_path)
    assert out.strip()


def test_example_csdp_digits(tmp_path):
    pytest.importorskip("sklearn")
    out = run_example([ROOT / "examples" / "csdp_digits.py", "--tiny", "--seeds", "1", "--epochs", "1", "--json",
                       tmp_path / "r.json"], tmp_path)
    assert out.strip() and json.loads((tmp_path / "r.json").read_text())


def test_example_differentiable_plasticity(tmp_path):
    run_example([ROOT / "examples" / "differentiable_plasticity.py", "--steps", "3", "--batch", "4",
                 "--eval-batch", "8", "--eval-noise", "0.0", "--train-noise", "0.0", "--out", tmp_path / "dp",
                 "--wandb-mode", "disabled"], tmp_path)
    assert any((tmp_path / "dp").iterdir())


def test_example_stp_mixing(tmp_path):
    run_example([ROOT / "examples" / "stp_mixing.py", "--tiny", "--out", tmp_path / "stp"], tmp_path)
    results = json.loads((tmp_path / "stp" / "results.json").read_text())
    assert results["results"]


def test_example_stp_nest_reference_reproduces_the_stored_settings_and_trains(tmp_path):
    """The script that wrote tests/data/stp_nest_reference.json still holds the settings and draws the
    trains stored there."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("stp_nest_reference", ROOT / "examples" / "stp_nest_reference.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    stored = json.loads((ROOT / "tests" / "data" / "stp_nest_reference.json").read_text())
    trains = script.spike_trains(np.random.default_rng(script.TRAIN_SEED))
    for name, setting in stored["settings"].items():
        assert [t["spike_times"] for t in setting["trains"]] == trains, name
    assert set(script.SETTINGS) == set(stored["settings"])
    for name, params in script.SETTINGS.items():
        assert {k: stored["settings"][name][k] for k in params} == params


def test_example_stp_nest_reference_regenerates_the_stored_efficacies(tmp_path):
    """Needs NEST (not a dependency of plasticrl; skipped without it)."""
    pytest.importorskip("nest")
    stored = json.loads((ROOT / "tests" / "data" / "stp_nest_reference.json").read_text())
    run_example([ROOT / "examples" / "stp_nest_reference.py", "--out", tmp_path / "ref.json"], tmp_path)
    regenerated = json.loads((tmp_path / "ref.json").read_text())
    assert regenerated["settings"] == stored["settings"]
