"""Files from elsewhere never run code: SB3 model zips given to eval/render and baseline checkpoints.

Each attack is a real pickle whose unpickling creates a marker file (the ``--trust-pickle`` test
shows the payload does fire when it is unpickled), so "no marker" means "never unpickled".
"""
import base64
import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli_checks import assert_one_line_error, entries
from plasticrl.cli import app
from plasticrl.errors import PlasticRLError

ENV = "HalfCheetah-v5"
KW = {"max_episode_steps": 30}


class _TouchOnUnpickle:
    """Unpickling this calls ``open(path, "w")``: the file appearing is proof that code ran."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _payload(marker: Path) -> dict:
    """An SB3 ``data`` entry as SB3 writes a cloudpickled attribute, holding the payload."""
    return {":type:": "<class 'int'>", ":serialized:": base64.b64encode(pickle.dumps(_TouchOnUnpickle(marker))).decode()}


def _rewrite_zip(src: Path, dst: Path, data_changes: dict | None = None, members: dict | None = None) -> Path:
    """Copy an SB3 zip, changing entries of its ``data`` JSON and/or replacing whole members."""
    with zipfile.ZipFile(src) as zin:
        files = {name: zin.read(name) for name in zin.namelist()}
    data = json.loads(files["data"])
    data.update(data_changes or {})
    files["data"] = json.dumps(data).encode()
    files.update(members or {})
    dst.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dst, "w") as zout:
        for name, blob in files.items():
            zout.writestr(name, blob)
    return dst


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A PPO (VecNormalize, pickled activation class in policy_kwargs) and a TD3 (pickled action
    noise and train_freq) baseline, trained for a few steps by plasticrl's own trainer."""
    from plasticrl.trainers.sb3 import train_baseline

    base = tmp_path_factory.mktemp("sb3")
    out = {}
    for algo, hp in (("ppo", {"n_steps": 64, "batch_size": 32, "n_epochs": 1}),
                     ("td3", {"learning_starts": 20, "batch_size": 16, "buffer_size": 500})):
        train_baseline(algo, ENV, 128, base / algo, env_kwargs=KW, overrides=hp, eval_every=64, eval_episodes=1,
                       wandb_mode="disabled")
        out[algo] = base / algo
    return out


def _observations(n: int = 16) -> np.ndarray:
    return np.random.default_rng(3).normal(size=(n, 17)).astype(np.float32)


@pytest.mark.parametrize("algo", ["ppo", "td3"])
def test_baseline_model_loads_without_unpickling_and_acts_like_sb3s_own_load(runs, algo, monkeypatch):
    """The safe loader rebuilds every pickled entry: same spaces, policy class and keyword
    arguments as SB3's unpickling load, and bit-identical deterministic actions. SB3's
    cloudpickle.loads is replaced by a tripwire while the safe loader runs."""
    import stable_baselines3.common.save_util as save_util

    from plasticrl.agents.sb3 import SB3Controller, algo_class, read_zip_data

    path = runs[algo] / "model.zip"
    pickled = [k for k, v in read_zip_data(path).items() if isinstance(v, dict) and ":serialized:" in v]
    assert {"policy_class", "observation_space", "action_space"} <= set(pickled)

    def tripwire(*args, **kwargs):
        raise AssertionError("cloudpickle.loads called")

    monkeypatch.setattr(save_util.cloudpickle, "loads", tripwire)
    safe = SB3Controller.load(path).model
    monkeypatch.undo()
    trusted = algo_class(algo).load(str(path), device="cpu")  # SB3's own load, unpickling (our file)
    assert safe.observation_space == trusted.observation_space and safe.action_space == trusted.action_space
    assert type(safe.policy) is type(trusted.policy) and safe.policy_kwargs == trusted.policy_kwargs
    a_safe, _ = safe.predict(_observations(), deterministic=True)
    a_trusted, _ = trusted.predict(_observations(), deterministic=True)
    assert np.array_equal(a_safe, a_trusted)
    if algo == "ppo":  # the clip range is rebuilt from its text form, not unpickled
        assert safe.clip_range(0.3) == trusted.clip_range(0.3) == 0.1


def test_payload_in_an_entry_plasticrl_rebuilds_is_never_unpickled(runs, tmp_path):
    """A payload hidden in the spaces, policy kwargs or schedule is replaced, never unpickled."""
    from plasticrl.agents.sb3 import SB3Controller

    marker = tmp_path / "marker"
    src = runs["ppo"] / "model.zip"
    original = SB3Controller.load(src).model
    for key in ("observation_space", "lr_schedule", "_last_obs", "ep_info_buffer"):
        evil = _rewrite_zip(src, tmp_path / key / "model.zip", {key: {**_payload(marker),
                                                                      ":type:": "<class 'gymnasium.spaces.box.Box'>",
                                                                      "_shape": [17], "dtype": "float64"}})
        shutil.copy(src.with_suffix(".json"), evil.with_suffix(".json"))
        model = SB3Controller.load(evil).model
        assert not marker.exists(), key
        assert np.array_equal(model.predict(_observations(), deterministic=True)[0],
                              original.predict(_observations(), deterministic=True)[0])


def test_entry_plasticrl_cannot_rebuild_is_refused_unless_trust_pickle(runs, tmp_path):
    """An unknown pickled entry is refused by name; --trust-pickle semantics: SB3 then unpickles it
    (and the payload runs, which is what the flag's warning is about)."""
    from plasticrl.agents.sb3 import SB3Controller

    marker = tmp_path / "marker"
    evil = _rewrite_zip(runs["ppo"] / "model.zip", tmp_path / "evil.zip", {"payload_entry": _payload(marker)})
    with pytest.raises(PlasticRLError, match=r"needs unpickling to load payload_entry.*--trust-pickle"):
        SB3Controller.load(evil, env_id=ENV)
    assert not marker.exists()
    SB3Controller.load(evil, env_id=ENV, trust_pickle=True)
    assert marker.exists()


def test_policy_class_other_than_the_algorithms_is_refused(runs, tmp_path):
    """The policy class is taken from the algorithm, after checking the zip names one of its own:
    a zip naming another class (here the payload, typed as a class) is refused."""
    from plasticrl.agents.sb3 import SB3Controller

    marker = tmp_path / "marker"
    entry = {**_payload(marker), ":type:": "<class 'abc.ABCMeta'>", "__module__": "stable_baselines3.common.policies"}
    evil = _rewrite_zip(runs["ppo"] / "model.zip", tmp_path / "evil.zip", {"policy_class": entry})
    with pytest.raises(PlasticRLError, match="needs unpickling to load policy_class"):
        SB3Controller.load(evil, env_id=ENV)
    assert not marker.exists()


def test_zip_without_sidecar_needs_the_env_for_its_spaces(runs, tmp_path):
    from plasticrl.agents.sb3 import SB3Controller

    bare = tmp_path / "bare.zip"
    shutil.copy(runs["td3"] / "model.zip", bare)
    with pytest.raises(PlasticRLError, match=r"action_space, observation_space \(.*give --env\)"):
        SB3Controller.load(bare)
    with pytest.raises(PlasticRLError, match=r"bare.zip': the model's observation_space is Box of shape \[17\] \(float64\); the env has Box of shape \[105\]"):
        SB3Controller.load(bare, env_id="Ant-v5")
    assert SB3Controller.load(bare, env_id=ENV).model.action_space.shape == (6,)


def test_weights_are_loaded_with_weights_only(runs, tmp_path):
    """SB3 2.9.2 reads the zip's .pth members with torch.load(weights_only=True): a policy.pth
    holding the payload is refused (one line) and never runs."""
    from plasticrl.agents.sb3 import SB3Controller

    marker = tmp_path / "marker"
    buffer = io.BytesIO()
    torch.save({"weights": _TouchOnUnpickle(marker)}, buffer)
    evil = _rewrite_zip(runs["ppo"] / "model.zip", tmp_path / "evil.zip", members={"policy.pth": buffer.getvalue()})
    shutil.copy(runs["ppo"] / "model.json", evil.with_suffix(".json"))
    with pytest.raises(PlasticRLError, match="could not be loaded as an SB3 ppo model.*UnpicklingError") as info:
        SB3Controller.load(evil)
    assert "\n" not in str(info.value) and not marker.exists()


def test_eval_and_render_cli_refuse_the_payload_in_one_line(runs, tmp_path):
    marker = tmp_path / "marker"
    evil = _rewrite_zip(runs["ppo"] / "model.zip", tmp_path / "evil.zip", {"payload_entry": _payload(marker)})
    out = tmp_path / "eval-out"
    res = CliRunner().invoke(app, ["eval", str(evil), "--env", ENV, "--out", str(out), "--wandb-mode", "disabled",
                                   "--quiet", "--no-plots"])
    assert_one_line_error(res, "payload_entry", "--trust-pickle", str(evil))
    res = CliRunner().invoke(app, ["render", str(evil), "--env", ENV, "--out", str(tmp_path / "v.mp4")])
    assert_one_line_error(res, "payload_entry", "--trust-pickle")
    assert not marker.exists() and not out.exists() and not (tmp_path / "v.mp4").exists()


# ---------------------------------------------------------------- baseline checkpoints


def _run_dir_with(tmp_path: Path, runs, name: str, blob: bytes) -> Path:
    """A baseline run directory (a real run's config.yaml) whose checkpoint file is ``blob``."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(runs["ppo"] / "config.yaml", run / "config.yaml")
    (run / name).write_bytes(blob)
    return run


@pytest.mark.parametrize("name, kind", [("checkpoint.pkl", "pickle"), ("checkpoint.pt", "pickle"),
                                        ("checkpoint.pt", "torch")])
def test_baseline_resume_never_unpickles_a_crafted_checkpoint(runs, tmp_path, name, kind):
    """The pickled checkpoint of older versions is not read at all; checkpoint.pt is read with
    weights_only: either way a payload gives one line and runs nothing; the run is untouched."""
    marker = tmp_path / "marker"
    if kind == "pickle":
        blob = pickle.dumps({"progress": {}, "model": _TouchOnUnpickle(marker)})
    else:
        buffer = io.BytesIO()
        torch.save({"format": "plasticrl-sb3-checkpoint/1", "progress": _TouchOnUnpickle(marker)}, buffer)
        blob = buffer.getvalue()
    run = _run_dir_with(tmp_path, runs, name, blob)
    before = entries(run)
    res = CliRunner().invoke(app, ["baseline", "--resume", str(run), "--wandb-mode", "disabled"])
    line = assert_one_line_error(res, name)
    assert ("older plasticrl" in line) if name.endswith(".pkl") else ("UnpicklingError" in line)
    assert not marker.exists() and entries(run) == before


def test_baseline_checkpoint_is_plain_data_and_restores_vec_normalize(runs, tmp_path):
    """checkpoint.pt loads with torch weights_only; the VecNormalize statistics it restores are the
    ones saved beside the final model (no steps between them), and a PPO run resumes from it."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from plasticrl.trainers.sb3 import train_baseline
    from plasticrl.trainers.sb3.trainer import _restore_vec_normalize, make_env, read_checkpoint

    state = torch.load(runs["ppo"] / "checkpoint.pt", weights_only=True)
    assert state["progress"]["env_steps"] == 128 and state["replay_buffer"] is None
    vec_norm = _restore_vec_normalize(read_checkpoint(runs["ppo"] / "checkpoint.pt")["vec_normalize"],
                                      DummyVecEnv([lambda: make_env(ENV, KW, 0)]))
    sidecar = json.loads((runs["ppo"] / "model.json").read_text())["obs_norm"]
    assert np.array_equal(vec_norm.obs_rms.mean, sidecar["mean"]) and np.array_equal(vec_norm.obs_rms.var,
                                                                                      sidecar["var"])
    assert vec_norm.norm_reward and vec_norm.ret_rms.count > 1  # reward statistics came back too
    td3 = torch.load(runs["td3"] / "checkpoint.pt", weights_only=True)["replay_buffer"]
    filled = td3["arrays"]["observations"].abs().sum(dim=(1, 2)) > 0  # rows written so far, then zeros
    assert td3["arrays"]["observations"].shape == (500, 1, 17) and not td3["full"]
    assert filled[:td3["pos"]].all() and not filled[td3["pos"]:].any() and td3["pos"] > 100

    run = tmp_path / "ppo"
    shutil.copytree(runs["ppo"], run)
    train_baseline("ppo", ENV, 192, run, env_kwargs=KW, overrides={"n_steps": 64, "batch_size": 32, "n_epochs": 1},
                   eval_every=64, eval_episodes=1, wandb_mode="disabled", resume=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in rows] == [64, 128, 192]
