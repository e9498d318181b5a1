"""Looking around: ``plasticrl envs`` (tasks, perturbations, suites), ``genome`` (a policy's parameter groups), ``bench``."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from plasticrl.cli.common import app, console, fail, load_yaml_file, os_error
from plasticrl.errors import PlasticRLError
from plasticrl.io import json_dumps


@app.command()
def envs(as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")) -> None:
    """List environments, perturbations with their parameters, and suites."""
    import plasticrl.envs as penvs

    catalog = penvs.catalog()
    if as_json:
        print(json_dumps(catalog, indent=2))
        return
    envs_table = Table(title="environments (natively batched; other Gymnasium ids use Gymnasium's vector env)")
    for col in ("id", "obs", "act", "limb segments", "novel conditions"):
        envs_table.add_column(col)
    env_rows = catalog["envs"].items() if isinstance(catalog["envs"], dict) else [(e["id"], e) for e in catalog["envs"]]
    for env_id, e in env_rows:
        novel = e.get("suites", {}).get("novel", [])
        envs_table.add_row(env_id, str(e.get("obs_dim", "")), str(e.get("action_dim", "")),
                           ", ".join(e.get("segments", [])) or "-", str(len(novel)))
    console.print(envs_table)
    pert_table = Table(title="perturbations (compose as a list; start_step switches one on mid-episode)")
    for col in ("name", "kind", "parameters (default)", "what it does"):
        pert_table.add_column(col)
    for p in catalog["perturbations"]:
        params = ", ".join(f"{q['name']}={q['default']!r}" for q in p["params"] if q["name"] != "start_step")
        pert_table.add_row(p["name"], p["kind"], params, p["doc"])
    console.print(pert_table)
    console.print(f"suites: {', '.join(catalog['suites'])}   (plasticrl envs --json for everything)")


@app.command()
def genome(
    args: Optional[list[str]] = typer.Argument(
        None, help="YAML file with a 'policy' mapping (default policy if omitted), then key=value overrides "
                   "(e.g. policy.plasticity.sharing=post), as for plasticrl train."),
    env: Optional[str] = typer.Option(None, help="Environment whose spaces size the policy (default: the "
                                      "config's env.id, else HalfCheetah-v5); the config's env.kwargs apply "
                                      "when it is the config's env."),
) -> None:
    """Show a policy's parameter groups: the names that genome.search / genome.fix patterns match."""
    from plasticrl.agents import make_policy
    from plasticrl.config import parse_overrides, set_dotted
    from plasticrl.envs import make_vec

    args = list(args or [])
    config = Path(args.pop(0)) if args and "=" not in args[0] else None
    data = load_yaml_file(config) if config else {}
    try:  # the same key=value overrides as plasticrl train, on the file's mapping
        for key, value in parse_overrides(args):
            set_dotted(data, key, value)
    except PlasticRLError as exc:
        fail(str(exc))
    policy_cfg = data.get("policy", {})
    env_section = data.get("env") if isinstance(data.get("env"), dict) else {}
    env_id = env or env_section.get("id") or "HalfCheetah-v5"
    env_kwargs = dict(env_section.get("kwargs") or {}) if env_section.get("id") == env_id else {}
    try:
        if isinstance(policy_cfg, dict) and policy_cfg.get("kind") == "symmetric" and not policy_cfg.get("base"):
            from plasticrl.config import load_config
            from plasticrl.rollouts.env_setup import with_policy_base

            policy_cfg = with_policy_base(load_config(config, args)).policy  # the base of train.init_agent
        vec = make_vec(env_id, 1, **env_kwargs)
        try:
            policy = make_policy(policy_cfg, vec.single_observation_space, vec.single_action_space)
        finally:
            vec.close()
    except PlasticRLError as exc:
        fail(str(exc))
    except OSError as exc:  # read-only or full disk, a file where a directory goes
        fail(os_error(exc))
    inputs = f"{policy.obs_dim} observations" + (" + the previous reward" if policy.reward_input else "")
    if policy.context_unit is not None:
        unit = policy.context_unit
        inputs += (f" + a reward-latched context unit (eta {unit.eta:g}, {unit.modulation}, crossing {unit.crossing}; "
                   "its rule is fixed, not in the genome)")
    if getattr(policy.config, "kind", None) == "symmetric":
        goal = policy.config.goal
        inputs += (f"; steered by {policy.config.symmetry}, heading {goal.source}"
                   + (f" (3 goal synapses, eta {goal.eta:g}, margin {goal.margin:g}; not in the genome)"
                      if goal.source == "inferred" else "")
                   + (f" ({goal.hidden} tanh units, goal.* in the genome)" if goal.source == "recurrent" else "")
                   + f"; the base's genome is a {policy.base.config.kind}'s")
    initial = getattr(policy.config, "initial_weights", None)
    if initial is not None and initial.kind == "random":
        inputs += (f"; initial weights random ({initial.distribution}, scale {initial.scale}, "
                   f"drawn {initial.draw.replace('_', ' ')}), not in the genome")
    kernel = f"kernel: {policy.kernel}" + (f" ({policy.kernel_reason})" if hasattr(policy, "kernel_reason") else "")
    table = Table(title=f"genome: D = {policy.genome.dim} searched scalars", caption=f"inputs: {inputs}; {kernel}")
    for col in ("group", "shape", "count", "searched", "init"):
        table.add_column(col)
    for row in policy.genome.describe():
        table.add_row(row["name"], str(row["shape"]), str(row["count"]), "yes" if row["searched"] else "fixed",
                      row["init"])
    console.print(table)
    if getattr(policy.config, "kind", None) == "hebbian_mlp" and env_id.split("-")[0] == "Ant":
        console.print(_najarro_comparison(policy, env_id, env_kwargs))


def _najarro_comparison(policy, env_id: str, env_kwargs: dict) -> str:
    """Our searched count next to Najarro & Risi's Ant network (AntBulletEnv-v0, 28 observations)."""
    from plasticrl.agents.hebbian_mlp import NAJARRO_ANT_SEARCHED, NAJARRO_ANT_SYNAPSES

    synapses = policy.plastic_synapses
    contact = env_kwargs.get("include_cfrc_ext_in_observation", True)
    obs_note = ("contact forces included (Ant-v5's default; include_cfrc_ext_in_observation=false gives 27)"
                if contact else "include_cfrc_ext_in_observation=false (105 with the contact forces)")
    return (f"{env_id}: {policy.obs_dim} observations, {obs_note}; network {' -> '.join(map(str, policy.sizes))}, "
            f"{synapses:,} plastic synapses, D = {policy.genome.dim:,} searched.\n"
            f"Najarro & Risi (2020), AntBulletEnv-v0 (28 observations): 28 -> 128 -> 64 -> 8, "
            f"{NAJARRO_ANT_SYNAPSES:,} synapses x 5 coefficients = {NAJARRO_ANT_SEARCHED:,} searched.")


@app.command()
def bench(
    name: Optional[str] = typer.Argument(None, help="Benchmark to run (file stem in bench/); all if omitted."),
) -> None:
    """Run the benchmarks in the source checkout's bench/ directory (each prints JSON)."""
    bench_dir = Path(__file__).resolve().parents[2] / "bench"  # plasticrl/cli/inspect.py -> repo root
    scripts = sorted(bench_dir.glob("bench_*.py")) if bench_dir.is_dir() else []
    if not scripts:
        fail(f"no benchmarks found in {bench_dir}; benchmarks live in a source checkout of plasticrl")
    valid = [s.stem for s in scripts]
    if name is not None:
        if name not in valid and f"bench_{name}" not in valid:
            fail(f"unknown benchmark {name!r}; valid choices: {', '.join(valid)}")
        scripts = [s for s in scripts if s.stem in (name, f"bench_{name}")]
    for script in scripts:
        console.print(f"[bold]{script.stem}[/]")
        code = subprocess.call([sys.executable, str(script)])
        if code != 0:
            raise typer.Exit(code)


@app.command()
def pretrained(as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")) -> None:
    """List the agents shipped with plasticrl (load them as pretrained:NAME): task, budget, scores."""
    from plasticrl.rollouts.pretrained import pretrained_index

    index = pretrained_index()
    if as_json:
        print(json_dumps(index, indent=2))
        return
    table = Table(title="shipped agents: plasticrl eval pretrained:NAME ..., plasticrl.load('pretrained:NAME')")
    for col in ("name", "env", "env steps", "recorded score", "what it is"):
        table.add_column(col, justify="right" if col in ("env steps",) else "left")
    for name, entry in sorted(index.items()):
        scores = entry.get("scores", {})
        score = (f"{scores['mean_return']:.1f} ({scores['episodes']} episodes from seed {scores['seed']})"
                 if "mean_return" in scores else "-")
        kwargs = entry.get("env_kwargs") or {}
        env = entry["env_id"] + (f" {kwargs}" if kwargs else "")
        table.add_row(name, env, f"{entry.get('env_steps', 0):,}", score, entry.get("note", ""))
    console.print(table)
