"""Tsodyks-Markram synapse: NEST reference efficacies, clock- vs event-driven, batching, policy use."""
import json
import math
from pathlib import Path

import pytest
import torch

from plasticrl.agents import PlasticSpikingPolicy, parse_policy_config
from plasticrl.errors import PlasticRLError
from plasticrl.snn.stp import (
    STPParameters,
    check_stp_parameters,
    stp_event_initial_state,
    stp_initial_state,
    stp_step,
    stp_train_efficacies,
)

REFERENCE = json.loads((Path(__file__).parent / "data" / "stp_nest_reference.json").read_text())
F64 = torch.float64


def _params(setting):
    return STPParameters(setting["U"], setting["tau_rec"], setting["tau_fac"])


def _start(setting, shape=()):
    return stp_event_initial_state(shape, setting["U"], x0=setting["x0"], u0=setting["u0"], dtype=F64)


def _tsodyks2_by_hand(times, setting):
    """NEST's tsodyks2 update written out spike by spike (the first spike transmits u0 * x0)."""
    x, u = setting["x0"], setting["u0"]
    out = [u * x]
    for h in (b - a for a, b in zip(times, times[1:])):
        x = 1 + (x - x * u - 1) * math.exp(-h / setting["tau_rec"])
        fac = math.exp(-h / setting["tau_fac"]) if setting["tau_fac"] > 0 else 0.0
        u = setting["U"] + u * (1 - setting["U"]) * fac
        out.append(u * x)
    return out


def test_the_code_depresses_facilitates_and_renews_in_the_three_reference_settings():
    """The reference settings are NEST's (file provenance) and pin three regimes; the code, on a
    train of its own, follows the tsodyks2 update by hand in each, and shows the regime: a regular
    train depresses the depressing synapse spike after spike, builds up the facilitating one, and
    the renewing one (U = 1) transmits 1 - exp(-h / tau_rec) after every interval h."""
    assert REFERENCE["source"].startswith("NEST tsodyks2_synapse") and REFERENCE["nest_version"].startswith("3.")
    settings = REFERENCE["settings"]
    assert settings["depressing"]["tau_fac"] == 0.0
    assert settings["facilitating"]["tau_fac"] > settings["facilitating"]["tau_rec"]
    assert settings["renewing"]["U"] == 1.0
    irregular = [3.0, 4.5, 30.0, 31.0, 90.0, 400.0, 401.5, 402.0]
    regular = [50.0 * k for k in range(8)]
    code = {}
    for name in ("depressing", "facilitating", "renewing"):
        setting = settings[name]
        for times in (irregular, regular):
            efficacy, _ = stp_train_efficacies(torch.diff(torch.tensor(times, dtype=F64)), _params(setting),
                                               _start(setting))
            torch.testing.assert_close(efficacy, torch.tensor(_tsodyks2_by_hand(times, setting), dtype=F64),
                                       rtol=0, atol=1e-12)
        code[name] = efficacy.tolist()  # the regular train
    assert all(b < a for a, b in zip(code["depressing"], code["depressing"][1:]))
    assert all(b > a for a, b in zip(code["facilitating"][:4], code["facilitating"][1:4]))
    tau = settings["renewing"]["tau_rec"]
    assert code["renewing"][1:] == pytest.approx([1 - math.exp(-50.0 / tau)] * 7, abs=1e-12)


@pytest.mark.parametrize("name", sorted(REFERENCE["settings"]))
def test_event_driven_efficacies_equal_nest(name):
    setting = REFERENCE["settings"][name]
    for train in setting["trains"]:
        times = torch.tensor(train["spike_times"], dtype=F64)
        efficacy, _ = stp_train_efficacies(torch.diff(times), _params(setting), _start(setting))
        expected = torch.tensor(train["efficacy"], dtype=F64)
        assert efficacy.shape == expected.shape
        torch.testing.assert_close(efficacy, expected, rtol=0, atol=1e-12)


def test_first_spike_convention_is_the_stored_state_whatever_its_time():
    """NEST transmits u0 * x0 at the first spike, with no decay from t = 0: the clock-driven code
    gives the same efficacies whether the train starts at step 0, 7 or 300 (its later spikes shifted
    along), the first being u0 * x0; the renewing synapse's second is 1 - exp(-h / tau_rec)."""
    for name, setting in REFERENCE["settings"].items():
        for train in setting["trains"]:  # the stored vectors pin the convention too
            assert train["efficacy"][0] == pytest.approx(setting["u0"] * setting["x0"], abs=1e-15), name
        params = _params(setting)
        offsets = []
        for first in (0, 7, 300):
            spikes = torch.zeros(first + 40, dtype=F64)
            spikes[[first, first + 4, first + 9, first + 30]] = 1.0
            efficacy = _clock_efficacies(spikes, params, 1.0, u0=setting["u0"], x0=setting["x0"])
            offsets.append(efficacy[spikes > 0])
        assert offsets[0][0].item() == pytest.approx(setting["u0"] * setting["x0"], abs=1e-12), name
        for other in offsets[1:]:
            torch.testing.assert_close(other, offsets[0], rtol=0, atol=1e-12)
        if name == "renewing":
            assert offsets[0][1].item() == pytest.approx(1.0 - math.exp(-4.0 / setting["tau_rec"]), abs=1e-12)


def _grid_train(steps, rate, seed, shape=()):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((*shape, steps), generator=g, dtype=F64) < rate).to(F64)


def _clock_efficacies(spikes, params, dt, u0=None, x0=1.0):
    """Run stp_step over the last axis; return the transmitted efficacies per step."""
    state = stp_initial_state(spikes.shape[:-1], params.U, x0=x0, u0=u0, dtype=F64)
    out = []
    for k in range(spikes.shape[-1]):
        efficacy, state = stp_step(spikes[..., k], state, params, dt)
        out.append(efficacy * spikes[..., k])
    return torch.stack(out, -1)


@pytest.mark.parametrize("name", sorted(REFERENCE["settings"]))
def test_clock_driven_equals_event_driven_on_the_dt_grid(name):
    setting = REFERENCE["settings"][name]
    params, dt = _params(setting), 0.5  # ms, like the settings
    spikes = _grid_train(400, 0.08, seed=1)
    clock = _clock_efficacies(spikes, params, dt, u0=setting["u0"], x0=setting["x0"])
    times = torch.nonzero(spikes).flatten().to(F64) * dt
    assert len(times) > 15
    event, _ = stp_train_efficacies(torch.diff(times), params, _start(setting))
    torch.testing.assert_close(clock[spikes > 0], event, rtol=0, atol=1e-12)
    assert (clock[spikes == 0] == 0).all()


def test_batched_over_population_and_synapses_equals_a_loop():
    P, S = 3, 4
    g = torch.Generator().manual_seed(2)
    params = STPParameters(
        U=torch.rand(P, S, generator=g, dtype=F64) * 0.9 + 0.05,
        tau_rec=torch.rand(P, S, generator=g, dtype=F64) * 0.5 + 0.02,
        tau_fac=torch.where(torch.arange(S) % 2 == 0, 0.0, 0.3).to(F64).expand(P, S),
    )
    spikes = _grid_train(200, 0.1, seed=3, shape=(P, S))
    batched = _clock_efficacies(spikes, params, dt=0.005)
    intervals = torch.rand(P, S, 9, generator=g, dtype=F64) * 0.2
    event_batched, _ = stp_train_efficacies(intervals, params)
    for p in range(P):
        for s in range(S):
            single = STPParameters(params.U[p, s], params.tau_rec[p, s], params.tau_fac[p, s])
            torch.testing.assert_close(batched[p, s], _clock_efficacies(spikes[p, s], single, dt=0.005),
                                       rtol=0, atol=0)
            torch.testing.assert_close(event_batched[p, s], stp_train_efficacies(intervals[p, s], single)[0],
                                       rtol=0, atol=0)
    assert batched.std() > 0


def test_depression_and_facilitation_go_the_expected_ways():
    regular = torch.full((5,), 0.01, dtype=F64)  # 100 Hz
    dep, _ = stp_train_efficacies(regular, STPParameters(0.5, 0.8, 0.0))
    fac, _ = stp_train_efficacies(regular, STPParameters(0.1, 0.1, 1.0))
    assert (dep.diff() < 0).all() and (fac[:3].diff() > 0).all()


def test_parameter_errors_name_the_bad_value_and_the_valid_range():
    assert check_stp_parameters(STPParameters(1.0, 0.1, 0.0))
    with pytest.raises(PlasticRLError, match=r"U=1\.5.*U in \(0, 1\]"):
        check_stp_parameters(STPParameters(1.5, 0.1, 0.0))
    with pytest.raises(PlasticRLError, match=r"tau_rec=0\.0.*tau_rec > 0"):
        check_stp_parameters(STPParameters(0.5, torch.tensor([0.1, 0.0]), 0.0))
    with pytest.raises(PlasticRLError, match=r"tau_fac=-1\.0.*tau_fac >= 0"):
        check_stp_parameters(STPParameters(0.5, 0.1, -1.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    setting = REFERENCE["settings"]["facilitating"]
    params, spikes = _params(setting), _grid_train(300, 0.1, seed=4, shape=(2, 3))
    cpu = _clock_efficacies(spikes, params, dt=0.5)
    state = stp_initial_state((2, 3), params.U, device="cuda", dtype=F64)
    cuda = []
    for k in range(spikes.shape[-1]):
        efficacy, state = stp_step(spikes[..., k].cuda(), state, params, 0.5)
        cuda.append(efficacy * spikes[..., k].cuda())
    torch.testing.assert_close(torch.stack(cuda, -1).cpu(), cpu, rtol=0, atol=1e-12)


# -- the synapse inside the plastic spiking policy --------------------------------------------
OBS, ACT = 5, 2
LOW, HIGH = [-1.0, -1.0], [1.0, 1.0]


def stp_policy(config=None, dtype="float64"):
    base = {"hidden": [10, 8], "synapse": "stp", "weight_init_gain": 12.0, "zero_output_init": False,
            "stp": {"U": 0.4, "tau_rec": 0.05, "tau_fac": 0.02},
            "plasticity": {"rule": "bcm", "modulation": "reward"}}
    return PlasticSpikingPolicy(OBS, ACT, LOW, HIGH, {**base, **(config or {})}, dtype=dtype)


def drive(policy, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        out.append(policy.act(3.0 * torch.randn(policy.num_rows, OBS, generator=g, dtype=policy.dtype)))
        policy.learn(torch.ones(policy.num_rows, dtype=policy.dtype))
    return torch.stack(out, 1)


def test_stp_layers_and_genome_groups():
    direct = stp_policy()
    assert direct.stp_layers == [1, 2]  # direct current injection: layer 0 sees no spikes
    assert {"layers.1.stp_U", "layers.2.stp_tau_rec", "layers.1.stp_tau_fac"} <= set(direct.genome.names)
    assert not any("stp" in n for n in direct.genome.searched_names)  # fixed by default
    spiking_in = stp_policy({"encoder": {"spiking": True}})
    assert spiking_in.stp_layers == [0, 1, 2]
    static = PlasticSpikingPolicy(OBS, ACT, LOW, HIGH, {"hidden": [10]})
    assert static.stp_layers == [] and not any("stp" in n for n in static.genome.names)


def test_stp_changes_the_policy_and_depresses_its_synapses():
    policy = stp_policy()
    twin = PlasticSpikingPolicy(OBS, ACT, LOW, HIGH, {**policy.config.model_dump(), "synapse": "static"},
                                dtype="float64")
    genome = policy.initial_genome(2)
    policy.load_genome(genome)
    twin.load_genome(twin.initial_genome(2))
    with_stp, without = drive(policy, 10), drive(twin, 10)
    assert not torch.allclose(with_stp, without)
    state = policy.live_state.stp[1]
    assert (state.fresh == 0).any() and (state.x < 1).any()  # some hidden neurons spiked and released


def test_reset_mask_restores_stp_state_for_masked_rows_only():
    policy = stp_policy()
    policy.load_genome(policy.initial_genome(3), episodes_per_member=2)
    drive(policy, 8)
    before = {l: st for l, st in policy.live_state.stp.items()}
    assert all((st.fresh == 0).any() for st in before.values())
    mask = torch.tensor([True, False, False, True, True, False])
    policy.reset(mask)
    for l, st in policy.live_state.stp.items():
        assert (st.fresh[mask] == 1).all() and (st.x[mask] == 1).all()
        assert torch.allclose(st.u[mask], torch.full_like(st.u[mask], 0.4))
        for field in ("u", "x", "fresh"):
            assert torch.equal(getattr(st, field)[~mask], getattr(before[l], field)[~mask]), (l, field)


def test_gradients_reach_searched_stp_groups():
    policy = stp_policy({"genome": {"search": ["layers.*.w", "layers.*.stp_*"]}}, dtype="float32")
    names = [f"layers.{l}.stp_{c}" for l in (1, 2) for c in ("U", "tau_rec", "tau_fac")]
    assert set(names) <= set(policy.genome.searched_names)
    noise = torch.randn(2, policy.genome.dim, generator=torch.Generator().manual_seed(0))
    flat = policy.initial_genome(2) + 0.05 * noise
    flat.requires_grad_(True)
    policy.load_genome(flat)
    loss = drive(policy, 6).pow(2).sum()
    loss.backward()
    assert torch.isfinite(flat.grad).all()
    for name in names:
        assert flat.grad[:, policy.genome.slice_of(name)].abs().sum() > 0, name


def test_searched_stp_values_are_clamped_to_valid_ranges():
    policy = stp_policy({"genome": {"search": ["layers.*.stp_*"]}})
    flat = policy.initial_genome(1)
    flat[:, policy.genome.slice_of("layers.1.stp_U")] = 3.0
    flat[:, policy.genome.slice_of("layers.1.stp_tau_rec")] = -1.0
    flat[:, policy.genome.slice_of("layers.1.stp_tau_fac")] = -1.0
    policy.load_genome(flat)
    params = policy._stp_params[1]
    assert (params.U == 1.0).all() and (params.tau_rec > 0).all() and (params.tau_fac == 0).all()
    assert torch.isfinite(drive(policy, 5)).all()


def test_stp_config_errors_name_bad_values():
    with pytest.raises(PlasticRLError, match=r"policy.synapse.*'static' or 'stp'.*'tm'"):
        parse_policy_config({"synapse": "tm"})
    with pytest.raises(PlasticRLError, match=r"policy.stp.U.*less than or equal to 1.*1\.5"):
        parse_policy_config({"synapse": "stp", "stp": {"U": 1.5}})
    with pytest.raises(PlasticRLError, match=r"policy.stp.tau_rec.*greater than 0.*0\.0"):
        parse_policy_config({"synapse": "stp", "stp": {"tau_rec": 0.0}})
    with pytest.raises(PlasticRLError, match=r"policy.stp.tau_fac.*greater than or equal to 0.*-0\.1"):
        parse_policy_config({"synapse": "stp", "stp": {"tau_fac": -0.1}})
