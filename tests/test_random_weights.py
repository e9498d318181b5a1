"""Random initial weights (policy.initial_weights) and the Hebbian MLP (kind: hebbian_mlp)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gym_episodes import gym_returns
import plasticrl
from plasticrl.agents import HebbianMLPPolicy, PlasticSpikingPolicy, make_policy
from plasticrl.cli import app
from plasticrl.config import config_from_dict, load_config
from plasticrl.envs import make_vec
from plasticrl.errors import PlasticRLError
from plasticrl.rollouts.saved_agent import save_agent

OBS, ACT = 5, 2
MLP = {"kind": "hebbian_mlp", "hidden": [6, 4], "initial_weights": {"kind": "random"}}
SPIKING = {"kind": "plastic_spiking", "hidden": [6], "initial_weights": {"kind": "random"},
           "plasticity": {"rule": "hebbian_abcd", "modulation": "none", "bounds": "normalise",
                          "weight_limit": 1.0, "eta_scale": 0.05}}


def _policy(cfg, dtype="float64", obs_dim=OBS, act_dim=ACT):
    if cfg["kind"] == "hebbian_mlp":
        return HebbianMLPPolicy(obs_dim, act_dim, [-1.0] * act_dim, [1.0] * act_dim, cfg, dtype=dtype)
    return PlasticSpikingPolicy(obs_dim, act_dim, [-1.0] * act_dim, [1.0] * act_dim, cfg, dtype=dtype)


def _genome(policy, population, seed=0, noise=0.3):
    g = torch.Generator().manual_seed(seed)
    flat = policy.initial_genome(population)
    return flat + noise * torch.randn(flat.shape, generator=g, dtype=flat.dtype)


def _rows(weights, row):
    return [w[row] for w in weights]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


# -- the draw ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [MLP, SPIKING], ids=["hebbian_mlp", "plastic_spiking"])
def test_the_draw_is_a_pure_function_of_the_episode_seed(cfg):
    """Rows reset with the same seed start from the same weights whatever their member, position or
    batch layout; another seed gives other weights; the draws are U[-0.1, 0.1]."""
    a = _policy(cfg)
    a.load_genome(_genome(a, 2), episodes_per_member=3, seeds=[7, 7, 8, 9, 7, 8])
    w = a.initial_weights
    assert _same(_rows(w, 0), _rows(w, 1)) and _same(_rows(w, 0), _rows(w, 4))  # other member, same seed
    assert _same(_rows(w, 2), _rows(w, 5))
    assert not any(torch.equal(x, y) for x, y in zip(_rows(w, 0), _rows(w, 2)))
    assert _same(a.fast_weights, w)  # episodes start at the draw
    b = _policy(cfg)  # a fresh policy, another layout: one member, two episodes
    b.load_genome(_genome(b, 1, seed=5), episodes_per_member=2, seeds=[8, 7])
    assert _same(_rows(b.initial_weights, 0), _rows(w, 2)) and _same(_rows(b.initial_weights, 1), _rows(w, 0))
    first = w[0]
    assert float(first.abs().max()) <= 0.1 and float(first.abs().max()) > 0.09
    assert abs(float(first.mean())) < 0.03


def test_an_int_seed_gives_row_i_seed_plus_i_as_a_vector_env():
    a, b = _policy(MLP), _policy(MLP)
    a.load_genome(_genome(a, 3), seeds=10)
    b.load_genome(_genome(b, 3), seeds=[10, 11, 12])
    assert _same(a.initial_weights, b.initial_weights)


@pytest.mark.parametrize("cfg", [MLP, SPIKING], ids=["hebbian_mlp", "plastic_spiking"])
def test_episodes_differ_and_an_unseeded_reset_moves_to_the_next_episode_of_the_seed(cfg):
    """As a Gymnasium env: reset(seed=s) then reset() is the second episode of s, the same in every
    policy; a masked reset redraws only its rows and leaves the others' running weights alone."""
    a = _policy(cfg)
    flat = _genome(a, 2)
    a.load_genome(flat, seeds=[3, 4])
    start = [w.clone() for w in a.initial_weights]
    with torch.no_grad():
        a.act(torch.ones(2, OBS, dtype=a.dtype))
        a.learn(torch.ones(2, dtype=a.dtype))
    running = [w[1].clone() for w in a.fast_weights]
    assert not _same(running, _rows(start, 1))  # row 1 learned
    a.reset(torch.tensor([True, False]))
    assert not any(torch.equal(x, y) for x, y in zip(_rows(a.initial_weights, 0), _rows(start, 0)))
    assert _same(_rows(a.fast_weights, 1), running)  # row 1 was not reset
    b = _policy(cfg)
    b.load_genome(flat, seeds=[3, 4])
    b.reset()
    assert _same(_rows(b.initial_weights, 0), _rows(a.initial_weights, 0))  # (3, episode 1) in both
    assert not _same(_rows(b.initial_weights, 1), _rows(start, 1))  # row 1 of b moved on to (4, 1)
    a.reset(seeds=[3, 4])
    assert _same(a.initial_weights, start)  # reseeding goes back to the first episode


def test_per_member_draw_is_fixed_across_episodes_and_follows_the_genome():
    cfg = {**MLP, "initial_weights": {"kind": "random", "draw": "per_member", "distribution": "normal"}}
    a = _policy(cfg)
    flat = _genome(a, 2)
    a.load_genome(flat, episodes_per_member=3, seeds=[1, 2, 3, 4, 5, 6])
    w = a.initial_weights
    assert _same(_rows(w, 0), _rows(w, 2)) and _same(_rows(w, 3), _rows(w, 5))
    assert not any(torch.equal(x, y) for x, y in zip(_rows(w, 0), _rows(w, 3)))
    a.reset()
    assert _same(a.initial_weights, w)  # a new episode starts from the same weights
    # the same genome values (a float32 genome, as saved agents hold) give the same draw in float32 and
    # float64 policies; other values (float64 noise rounded to float32) are another member
    single = flat.float()
    b, c = _policy(cfg, dtype="float32"), _policy(cfg, dtype="float64")
    b.load_genome(single)
    c.load_genome(single.double())
    assert _same(b.initial_weights, [x.float() for x in c.initial_weights])
    assert not _same(_rows(c.initial_weights, 1), _rows(w, 3))
    assert 0.05 < float(w[1][0].std()) < 0.15  # N(0, 0.1^2), 24 weights


# -- the genome ----------------------------------------------------------------------------------
def test_random_weights_are_not_in_the_genome():
    """Counted by hand: 5 -> 6 -> 4 -> 2 has 5*6 + 6*4 + 4*2 = 62 synapses, x 5 coefficients (A, B, C, D,
    eta) = 310; evolved adds the 62 weights. The spiking policy adds its encoder gain and bias (2 x 5)."""
    mlp = _policy(MLP)
    assert mlp.genome.dim == 310
    assert not [n for n in mlp.genome.names if n.endswith((".w", ".w_scale"))]
    evolved = _policy({**MLP, "initial_weights": {"kind": "evolved"}})
    assert evolved.genome.dim == 310 + 62 and "layers.0.w" in evolved.genome.searched_names
    post = _policy({**MLP, "plasticity": {"sharing": "post"}})
    assert post.genome.dim == (6 + 4 + 2) * 5
    spiking = _policy(SPIKING)
    assert spiking.genome.dim == (5 * 6 + 6 * 2) * 5 + 2 * 5
    assert not [n for n in spiking.genome.names if n.endswith((".w", ".w_scale"))]
    with pytest.raises(PlasticRLError, match="'layers.0.w' matches no parameter group"):
        _policy({**SPIKING, "genome": {"search": ["layers.0.w"]}})
    with pytest.raises(PlasticRLError, match="leaves nothing to search"):
        _policy({**SPIKING, "plasticity": {"rule": "none"}, "genome": {"fix": ["encoder.*"]}})


def test_evolved_default_is_unchanged():
    """The default (evolved) keeps the weight groups and draws nothing: two loads of the same genome
    under different seeds start from identical weights."""
    cfg = {k: v for k, v in SPIKING.items() if k != "initial_weights"}
    p = _policy(cfg)
    assert "layers.0.w" in p.genome.searched_names and "layers.0.w_scale" in p.genome.names
    flat = _genome(p, 1)
    p.load_genome(flat, seeds=1)
    first = [w.clone() for w in p.initial_weights]
    p.load_genome(flat, seeds=2)
    assert _same(first, p.initial_weights)


# -- fused kernel --------------------------------------------------------------------------------
@pytest.mark.parametrize("draw", ["per_episode", "per_member"])
def test_fused_kernel_equals_torch_with_random_initial_weights(draw):
    pytest.importorskip("numba")
    cfg = {**SPIKING, "hidden": [8, 6], "initial_weights": {"kind": "random", "draw": draw, "scale": 0.5}}
    pols = [_policy({**cfg, "kernel": k}) for k in ("torch", "fused")]
    flat = _genome(pols[0], 3)
    for p in pols:
        p.load_genome(flat, episodes_per_member=2, seeds=40)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for t in range(30):
            obs = 2.0 * torch.randn(6, OBS, generator=g, dtype=torch.float64)
            reward = torch.randn(6, generator=g, dtype=torch.float64)
            acts = [p.act(obs) for p in pols]
            torch.testing.assert_close(acts[1], acts[0], rtol=0, atol=1e-10)
            for p in pols:
                p.learn(reward)
            for wa, wb in zip(pols[0].fast_weights, pols[1].fast_weights):
                torch.testing.assert_close(wb, wa, rtol=0, atol=1e-10)
            if t == 12:
                mask = torch.tensor([True, False, False, True, False, True])
                for p in pols:
                    p.reset(mask)
                for wa, wb in zip(pols[0].initial_weights, pols[1].initial_weights):
                    assert torch.equal(wa, wb)
    moved = not _same(pols[1].fast_weights, pols[1].initial_weights)
    assert moved


def test_bad_hebbian_mlp_settings_are_one_clear_line():
    with pytest.raises(PlasticRLError, match="rule 'bcm' is not available for kind hebbian_mlp; valid choices: "
                                             "hebbian_abcd, oja, none"):
        config_from_dict({"policy": {"kind": "hebbian_mlp", "plasticity": {"rule": "bcm"}}})
    with pytest.raises(PlasticRLError, match="nothing to search"):
        config_from_dict({"policy": {"kind": "hebbian_mlp", "plasticity": {"rule": "none"},
                                     "initial_weights": {"kind": "random"}}})
    with pytest.raises(PlasticRLError, match="initial_weights.kind='random'.*trainer 'ppo'"):
        config_from_dict({"trainer": "ppo", "policy": {"initial_weights": {"kind": "random"}}})
    with pytest.raises(PlasticRLError, match="initial_weights.draw"):
        config_from_dict({"policy": {"initial_weights": {"kind": "random", "draw": "per_generation"}}})


# -- the Hebbian MLP by hand ------------------------------------------------------------------------
def test_hebbian_mlp_step_equals_the_hand_computed_abcd_update_and_max_norm():
    """2 inputs -> 2 hidden -> 1 output, evolved weights, one act and one learn, written out synapse by
    synapse: dW_ij = eta_ij (A_ij x_j y_i + B_ij x_j + C_ij y_i + D_ij), then W /= max|W| per layer."""
    # w_scale searched too (set to 1 here): a fixed group's value is stored in float32
    cfg = {"kind": "hebbian_mlp", "hidden": [2], "initial_weights": {"kind": "evolved"},
           "plasticity": {"eta_scale": 1.0}, "genome": {"search": ["layers.*"]}}
    p = HebbianMLPPolicy(2, 1, [-1.0], [1.0], cfg, dtype="float64")
    W0 = [[0.2, -0.4], [0.3, 0.1]]
    W1 = [[0.6, -0.8]]
    coeffs = {  # per synapse, [post][pre]
        0: {"A": [[1.0, 0.5], [-1.0, 2.0]], "B": [[0.1, 0.0], [0.2, -0.3]], "C": [[-0.2, 0.4], [0.0, 0.1]],
            "D": [[0.05, 0.0], [-0.1, 0.02]], "eta": [[0.5, 1.0], [0.25, 2.0]]},
        1: {"A": [[3.0, -1.0]], "B": [[0.5, 0.5]], "C": [[0.1, -0.1]], "D": [[0.0, 0.3]], "eta": [[0.1, 0.2]]},
    }
    f64 = torch.float64
    named = {"layers.0.w": torch.tensor([W0], dtype=f64), "layers.1.w": torch.tensor([W1], dtype=f64),
             "layers.0.w_scale": torch.ones(1, 1, 1, dtype=f64), "layers.1.w_scale": torch.ones(1, 1, 1, dtype=f64)}
    for l, cs in coeffs.items():
        for c, v in cs.items():
            named[f"layers.{l}.{c}"] = torch.tensor([v], dtype=torch.float64)
    p.load_genome(p.genome.flatten(named))
    x0, x1 = 0.5, -1.0
    h0 = math.tanh(0.2 * x0 - 0.4 * x1)  # tanh(0.5)
    h1 = math.tanh(0.3 * x0 + 0.1 * x1)  # tanh(0.05)
    o = math.tanh(0.6 * h0 - 0.8 * h1)
    with torch.no_grad():
        action = p.act(torch.tensor([[x0, x1]], dtype=torch.float64))
        assert float(action[0, 0]) == pytest.approx(o, abs=1e-12)
        p.learn(torch.tensor([1.0], dtype=torch.float64))
    # layer 0: pre x, post h
    n00 = 0.2 + 0.5 * (1.0 * x0 * h0 + 0.1 * x0 - 0.2 * h0 + 0.05)
    n01 = -0.4 + 1.0 * (0.5 * x1 * h0 + 0.0 * x1 + 0.4 * h0 + 0.0)
    n10 = 0.3 + 0.25 * (-1.0 * x0 * h1 + 0.2 * x0 + 0.0 * h1 - 0.1)
    n11 = 0.1 + 2.0 * (2.0 * x1 * h1 - 0.3 * x1 + 0.1 * h1 + 0.02)
    peak0 = max(abs(n00), abs(n01), abs(n10), abs(n11))
    # layer 1: pre h, post o
    m0 = 0.6 + 0.1 * (3.0 * h0 * o + 0.5 * h0 + 0.1 * o + 0.0)
    m1 = -0.8 + 0.2 * (-1.0 * h1 * o + 0.5 * h1 - 0.1 * o + 0.3)
    peak1 = max(abs(m0), abs(m1))
    expected0 = [[n00 / peak0, n01 / peak0], [n10 / peak0, n11 / peak0]]
    expected1 = [[m0 / peak1, m1 / peak1]]
    torch.testing.assert_close(p.fast_weights[0][0], torch.tensor(expected0, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(p.fast_weights[1][0], torch.tensor(expected1, dtype=torch.float64), rtol=0, atol=1e-12)
    assert float(p.fast_weights[0].abs().max()) == pytest.approx(1.0, abs=1e-15)


# -- evaluation and deployment ----------------------------------------------------------------------
ENV = "HalfCheetah-v5"


def _agent_file(path, cfg):
    from plasticrl.envs import make_vec

    env = make_vec(ENV, 1)
    policy = make_policy(cfg, env.single_observation_space, env.single_action_space)
    env.close()
    genome = _genome(policy, 1, seed=3, noise=0.5)[0]
    return save_agent(path, policy, cfg, genome, None, {"env_id": ENV, "env_kwargs": {}})


def test_paired_evaluation_is_exact_and_the_frozen_twin_stays_at_its_draw(tmp_path):
    """Two evaluations on the same seeds give the same returns; the episodes of one evaluation differ
    (their own reset state and weights); the frozen twin (eta 0) starts from the same draws and its
    weights never move, though bounds: normalise would rescale them at every update."""
    from plasticrl.rollouts.batch import run_batch
    from plasticrl.rollouts.controllers import frozen_twins, load_controller

    cfg = {"kind": "hebbian_mlp", "hidden": [8, 4], "initial_weights": {"kind": "random"}}
    path = _agent_file(tmp_path / "agent.pt", cfg)
    runs = []
    for _ in range(2):
        ctrl = load_controller(path, name="agent")
        [twin] = frozen_twins([ctrl])
        runs.append({c.name: (run_batch(c, ENV, [("nominal", None)], episodes=3, seed=11, max_steps=30)["nominal"], c)
                     for c in (ctrl, twin)})
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name][0].returns, runs[1][name][0].returns)
    plastic, twin = runs[0]["agent"][1], runs[0]["agent/frozen"][1]
    returns = runs[0]["agent"][0].returns
    assert len(set(returns.tolist())) == 3
    assert _same(plastic.policy.initial_weights, twin.policy.initial_weights)
    assert _same(twin.policy.fast_weights, twin.policy.initial_weights)
    assert not _same(plastic.policy.fast_weights, plastic.policy.initial_weights)
    assert not np.array_equal(runs[0]["agent/frozen"][0].returns, returns)
    # row e was reset with seed 11 + e: a loaded agent reset with that seed starts from the same weights
    agent = plasticrl.load(path)
    agent.reset(seed=12)
    assert _same(_rows(agent.policy.initial_weights, 0), _rows(plastic.policy.initial_weights, 1))


# -- training: resume and deployment ------------------------------------------------------------------
TINY = ["env.id=HalfCheetah-v5", "env.max_episode_steps=20", "policy.kind=hebbian_mlp", "policy.hidden=[6]",
        "policy.initial_weights.kind=random", "es.params={population_size: 8, sigma: 0.1, learning_rate: 0.05}",
        "train.eval_every=2", "train.eval_episodes=2", "train.checkpoint_every=2", "logging.wandb.mode=disabled",
        "logging.progress=false"]


def _metrics(run_dir):
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("generation_seconds", "wall_seconds", "env_steps_per_s")}
            for r in rows]


def test_es_resume_repeats_the_draws_and_a_loaded_agent_earns_its_logged_return(tmp_path):
    """A 4-generation run equals a 2-generation run extended to 4 (metrics rows and best genome): the
    draws follow the episode seeds, not the process's history. Another initial_weights.seed changes the
    run, so the draws do matter. The best agent, driving Gymnasium's HalfCheetah with agent.reset(seed=...)
    on the centre-evaluation seeds, earns the evaluation return logged for it."""
    from plasticrl.seeding import Stream, derive_env_seed
    from plasticrl.trainers.es import ESTrainer

    ESTrainer(load_config(None, TINY + ["train.generations=4"]), tmp_path / "straight").train()
    ESTrainer(load_config(None, TINY + ["train.generations=2"]), tmp_path / "resumed").train()
    result = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "resumed"), "train.generations=4",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    assert _metrics(tmp_path / "straight") == _metrics(tmp_path / "resumed")
    best = [torch.load(Path(d) / "best_agent.pt", weights_only=True)["genome"]
            for d in (tmp_path / "straight", tmp_path / "resumed")]
    assert torch.equal(best[0], best[1])
    ESTrainer(load_config(None, TINY + ["train.generations=2", "policy.initial_weights.seed=1"]),
              tmp_path / "other").train()
    assert _metrics(tmp_path / "other")[0]["fitness_mean"] != _metrics(tmp_path / "straight")[0]["fitness_mean"]

    cfg = load_config(None, TINY)
    rows = _metrics(tmp_path / "straight")
    summary = json.loads((tmp_path / "straight" / "summary.json").read_text())
    logged = next(r["eval_return_mean"] for r in rows if r["generation"] == summary["best_generation"])
    agent = plasticrl.load(tmp_path / "straight")
    seed = derive_env_seed(cfg.seed, 0, Stream.ES_EVAL_ENV)
    returns = gym_returns(agent, "HalfCheetah-v5", 20, seed, cfg.train.eval_episodes, seed_agent=True)
    assert returns[0] != returns[1]
    assert np.mean(returns) == pytest.approx(logged, rel=1e-4, abs=1e-4)


# -- plasticrl genome ----------------------------------------------------------------------------------
def test_genome_command_compares_the_hebbian_mlp_with_najarro(tmp_path):
    """Ant-v5 observes 105 values by default (27 without contact forces). By hand: (105*128 + 128*64 + 64*8)
    * 5 = 110,720 and (27*128 + 128*64 + 64*8) * 5 = 60,800, next to Najarro & Risi's 61,440."""
    config = tmp_path / "h.yaml"
    config.write_text("policy: {kind: hebbian_mlp, initial_weights: {kind: random}}\n")
    result = CliRunner().invoke(app, ["genome", str(config), "--env", "Ant-v5"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "110,720 searched" in result.output and "61,440 searched" in result.output
    assert "105 observations" in result.output and "initial weights random" in result.output
    assert "layers.0.w " not in result.output
    config.write_text("env: {id: Ant-v5, kwargs: {include_cfrc_ext_in_observation: false}}\n"
                      "policy: {kind: hebbian_mlp, initial_weights: {kind: random}}\n")
    result = CliRunner().invoke(app, ["genome", str(config)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "60,800 searched" in result.output and "27 observations" in result.output


def test_hebbian_mlp_kernel_auto_is_the_default_and_picks_the_fused_kernel():
    """``kernel: auto`` (every config's default) picks the fused kernel for hebbian_mlp on the CPU
    (tests/test_hebbian_mlp_kernel.py compares it with the torch path)."""
    pytest.importorskip("numba")
    assert config_from_dict({"policy": {"kind": "hebbian_mlp", "kernel": "fused"}}).policy.kernel == "fused"
    assert config_from_dict({"policy": {"kind": "hebbian_mlp"}}).policy.kernel == "auto"
    env = make_vec("HalfCheetah-v5", 1)
    policy = make_policy({"kind": "hebbian_mlp"}, env.single_observation_space, env.single_action_space)
    env.close()
    assert policy.kernel == "fused"
