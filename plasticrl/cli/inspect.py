"""Looking around: ``plasticrl envs`` (tasks, perturbations, suites), ``genome`` (a policy's parameter groups), ``bench``."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from plasticrl.cli.common import app, console, fail, load_yaml_file, os_error
from plasticrl.errors import PlasticRLError


@app.command()
def envs(as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")) -> None:
    """List environments, perturbations with their parameters, and suites."""
    import plasticrl.envs as penvs

    catalog = penvs.catalog()
    if as_json:
        print(json.dumps(catalog, indent=2, default=str))
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
    config: Optional[Path] = typer.Argument(None, help="YAML file with a 'policy' mapping (default policy if omitted)."),
    env: str = typer.Option("HalfCheetah-v5", help="Environment whose spaces size the policy."),
) -> None:
    """Show a policy's parameter groups: the names that genome.search / genome.fix patterns match."""
    from plasticrl.agents import make_policy
    from plasticrl.envs import make_vec

    policy_cfg = load_yaml_file(config).get("policy", {}) if config else {}
    vec = make_vec(env, 1)
    try:
        policy = make_policy(policy_cfg, vec.single_observation_space, vec.single_action_space)
    except PlasticRLError as exc:
        fail(str(exc))
    except OSError as exc:  # read-only or full disk, a file where a directory goes
        fail(os_error(exc))
    inputs = f"{policy.obs_dim} observations" + (" + the previous reward" if policy.reward_input else "")
    kernel = f"kernel: {policy.kernel}" + (f" ({policy.kernel_reason})" if hasattr(policy, "kernel_reason") else "")
    table = Table(title=f"genome: D = {policy.genome.dim} searched scalars", caption=f"inputs: {inputs}; {kernel}")
    for col in ("group", "shape", "count", "searched", "init"):
        table.add_column(col)
    for row in policy.genome.describe():
        table.add_row(row["name"], str(row["shape"]), str(row["count"]), "yes" if row["searched"] else "fixed",
                      row["init"])
    console.print(table)


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
        print(json.dumps(index, indent=2))
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
