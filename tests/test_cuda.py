"""The policies and the ES loop on a CUDA device against the CPU, in float64 (skipped without CUDA;
`bash bench/gpu_check.sh` runs them with `-k cuda`).

Every policy kind runs its torch path on the GPU with no code change (the device comes from the config): the
actions, the fast weights and the episode-seeded random initial weights must equal the CPU's to rounding, and
an ES run with the policy on the GPU must record the CPU run's fitness, generation by generation."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from genomes import perturbed_genome
from plasticrl.agents import make_policy
from plasticrl.config import load_config
from plasticrl.trainers.es import ESTrainer
from test_trainer import metrics

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

OBS, ACT, ROWS, STEPS = 9, 3, 6, 40
OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float64)
ACT_SPACE = gym.spaces.Box(-1.0, 2.0, (ACT,), np.float32)

# one config per code path of the torch kernel: rules, modulations, sharing, bounds, neurons, encoders,
# recurrence, short-term plasticity, eligibility traces, reward input, the context unit, random initial weights
POLICIES = {
    "bcm_reward": {"kind": "plastic_spiking", "hidden": [16],
                   "plasticity": {"rule": "bcm", "modulation": "reward", "eta_scale": 0.05}},
    "oja_rpe_post_recurrent_reward_input": {
        "kind": "plastic_spiking", "hidden": [12], "recurrent": True, "reward_input": True,
        "plasticity": {"rule": "oja", "modulation": "rpe", "sharing": "post", "eta_scale": 0.05}},
    "abcd_stp_two_hidden_normalise": {
        "kind": "plastic_spiking", "hidden": [12, 8], "synapse": "stp",
        "plasticity": {"rule": "hebbian_abcd", "modulation": "reward", "bounds": "normalise", "weight_limit": 2.0,
                       "sharing": "layer", "eta_scale": 0.05}},
    "eligibility_neuromodulators_alif_population": {
        "kind": "plastic_spiking", "hidden": [10], "neuron": {"model": "alif"},
        "encoder": {"kind": "population", "centres": 3, "spiking": True}, "decoder": {"kind": "rate"},
        "plasticity": {"rule": "bcm", "modulation": "neurons", "eligibility_tau": 0.1, "eta_scale": 0.05}},
    "random_initial_weights_spiking": {
        "kind": "plastic_spiking", "hidden": [10],
        "initial_weights": {"kind": "random", "distribution": "normal", "scale": 0.3, "draw": "per_episode"},
        "plasticity": {"rule": "hebbian_abcd", "modulation": "none", "sharing": "synapse", "eta_scale": 0.05}},
    "context_unit_static": {"kind": "static_spiking", "hidden": [10],
                            "context_unit": {"enabled": True, "eta": 0.1, "initial": 1.0, "crossing": "jump"}},
    "hebbian_mlp_random": {"kind": "hebbian_mlp",
                           "initial_weights": {"kind": "random", "draw": "per_episode"},
                           "plasticity": {"rule": "hebbian_abcd"}},
    "linear": {"kind": "linear"},
    "mlp": {"kind": "mlp"},
}


def _pair(config):
    return [make_policy(config, OBS_SPACE, ACT_SPACE, device=d, dtype="float64") for d in ("cpu", "cuda")]


def _assert_same_state(cpu, gpu):
    for name in ("fast_weights", "initial_weights"):
        for a, b in zip(getattr(cpu, name, []), getattr(gpu, name, [])):
            assert b.device.type == "cuda"
            torch.testing.assert_close(b.cpu(), a, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_on_cuda_matches_cpu(name):
    cpu, gpu = _pair(POLICIES[name])
    flat = perturbed_genome(cpu, ROWS, noise=0.3)
    cpu.load_genome(flat)
    gpu.load_genome(flat.cuda())
    seeds = list(range(100, 100 + ROWS))
    cpu.reset(seeds=seeds)
    gpu.reset(seeds=seeds)
    _assert_same_state(cpu, gpu)
    g = torch.Generator().manual_seed(5)
    mask = torch.zeros(ROWS, dtype=torch.bool)
    mask[::2] = True
    with torch.no_grad():
        for t in range(STEPS):
            obs = 2.0 * torch.randn(ROWS, OBS, generator=g, dtype=torch.float64)
            reward = torch.randn(ROWS, generator=g, dtype=torch.float64)
            a, b = cpu.act(obs), gpu.act(obs.cuda())
            assert b.device.type == "cuda"
            torch.testing.assert_close(b.cpu(), a, rtol=0, atol=1e-9)
            cpu.learn(reward)
            gpu.learn(reward.cuda())
            if t == STEPS // 2:  # a masked reset mid-run: fresh episode seeds (and weight draws) for half the rows
                fresh = [7 + i if m else None for i, m in enumerate(mask.tolist())]
                cpu.reset(mask, seeds=fresh)
                gpu.reset(mask.cuda(), seeds=fresh)
                _assert_same_state(cpu, gpu)
    _assert_same_state(cpu, gpu)
    if name not in ("linear", "mlp", "context_unit_static"):  # the learning did move the weights
        assert any(not torch.equal(w, w0) for w, w0 in zip(cpu.fast_weights, cpu.initial_weights))


@pytest.mark.parametrize("source", ["inferred", "recurrent", "observed"])
def test_symmetric_policy_on_cuda_matches_cpu(source):
    """kind symmetric (Ant's quarter turns, a plastic spiking base) on the GPU: the same actions, headings and
    goal state as the CPU's over 40 steps, with velocities and rewards that make the heading change."""
    obs_dim = 105 + (2 if source == "observed" else 0)
    spaces = (gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64), gym.spaces.Box(-1.0, 1.0, (8,), np.float32))
    config = {"kind": "symmetric", "goal": {"source": source, "eta": 0.5, "hidden": 6, "margin": 0.05},
              "base": {"kind": "plastic_spiking", "hidden": [8], "kernel": "torch",
                       "plasticity": {"rule": "bcm", "modulation": "rpe", "eta_scale": 0.05}},
              "base_obs_norm": {"mean": [0.1] * 105, "std": [2.0] * 105}}
    cpu, gpu = [make_policy(config, *spaces, device=d, dtype="float64") for d in ("cpu", "cuda")]
    flat = perturbed_genome(cpu, ROWS, noise=0.3)
    cpu.load_genome(flat)
    gpu.load_genome(flat.cuda())
    g = torch.Generator().manual_seed(6)
    headings = set()
    with torch.no_grad():
        for _ in range(STEPS):
            obs = torch.randn(ROWS, obs_dim, generator=g, dtype=torch.float64)
            reward = 3.0 * torch.randn(ROWS, generator=g, dtype=torch.float64)
            a, b = cpu.act(obs), gpu.act(obs.cuda())
            torch.testing.assert_close(b.cpu(), a, rtol=0, atol=1e-9)
            state_cpu, state_gpu = cpu.episode_state().network, gpu.episode_state().network
            assert torch.equal(state_gpu.heading.cpu(), state_cpu.heading)
            torch.testing.assert_close(state_gpu.goal_weights.cpu(), state_cpu.goal_weights, rtol=0, atol=1e-9)
            torch.testing.assert_close(state_gpu.memory.cpu(), state_cpu.memory, rtol=0, atol=1e-9)
            headings |= set(state_cpu.heading.tolist())
            cpu.learn(reward)
            gpu.learn(reward.cuda())
    assert len(headings) > 1  # the heading did change: the comparison covered the turns


# HalfCheetah's reward is continuous (InvertedPendulum's counts steps, which would hide small differences);
# the torch kernel on both devices (kernel: auto would pick the fused one on the CPU)
TINY = ["env.id=HalfCheetah-v5", "env.max_episode_steps=40", "policy.hidden=[8]", "dtype=float64",
        "policy.kernel=torch",
        "policy.plasticity.modulation=rpe", "es.params={population_size: 8, sigma: 0.1, learning_rate: 0.05}",
        "train.generations=3", "train.eval_every=3", "train.eval_episodes=2", "logging.wandb.mode=disabled",
        "logging.progress=false"]
def test_es_training_on_cuda_matches_cpu(tmp_path):
    """`device: cuda` in the config is the only change: the search stays on the CPU, the policy runs on the
    GPU, and every generation's recorded fitness equals the CPU run's to rounding."""
    runs = {d: ESTrainer(load_config(None, TINY + [f"device={d}"]), tmp_path / d) for d in ("cpu", "cuda")}
    results = {d: trainer.train() for d, trainer in runs.items()}
    cpu, gpu = metrics(tmp_path / "cpu"), metrics(tmp_path / "cuda")
    assert [r["generation"] for r in gpu] == [1, 2, 3]
    for a, b in zip(cpu, gpu):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-7, abs=1e-9), key
    torch.testing.assert_close(results["cuda"].center.cpu(), results["cpu"].center, rtol=0, atol=1e-9)
