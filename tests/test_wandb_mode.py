"""One W&B-mode rule for runs, evaluations, baselines and videos (plasticrl.config.resolve_wandb_mode)."""
from __future__ import annotations

import pytest

from plasticrl.config import ExperimentConfig, resolve_wandb_mode
from plasticrl.errors import PlasticRLError


@pytest.mark.parametrize("given, env, expected", [
    (None, None, "offline"),          # never needs a key or the network
    (None, "online", "online"),
    (None, "dryrun", "offline"),      # W&B's old name for offline
    ("disabled", "online", "disabled"),  # the config or the option wins over the environment
    ("", "disabled", "disabled"),     # an empty option is no option
])
def test_mode_from_option_then_environment_then_offline(monkeypatch, given, env, expected):
    if env is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", env)
    assert resolve_wandb_mode(given) == expected
    if given is None:  # a config without logging.wandb.mode follows the same rule
        assert ExperimentConfig().wandb_mode() == expected


def test_bad_mode_names_value_source_and_choices(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    with pytest.raises(PlasticRLError) as given:
        resolve_wandb_mode("weird")
    assert str(given.value) == "unknown wandb mode 'weird'; valid choices: disabled, offline, online"
    monkeypatch.setenv("WANDB_MODE", "sideways")
    for resolve in (lambda: resolve_wandb_mode(None), lambda: ExperimentConfig().wandb_mode()):
        with pytest.raises(PlasticRLError) as from_env:
            resolve()
        assert str(from_env.value) == ("unknown wandb mode 'sideways' (from $WANDB_MODE); "
                                       "valid choices: disabled, offline, online")


def test_render_refuses_a_bad_mode_before_rendering(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from plasticrl.cli import app

    monkeypatch.delenv("WANDB_MODE", raising=False)
    video = tmp_path / "v.mp4"
    done = CliRunner().invoke(app, ["render", str(tmp_path / "missing.pt"), "--out", str(video), "--wandb",
                                    "--wandb-mode", "weird"])
    assert done.exit_code != 0 and "unknown wandb mode 'weird'" in done.output  # not the missing agent
    assert not video.exists()
