"""Load agents, evaluate them together and write the reports: the one sequence behind both
``plasticrl eval`` and the evaluation stage of ``plasticrl experiment``, so the two cannot drift
apart in what they record."""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from plasticrl.errors import PlasticRLError

#: given the controllers' names, a context manager yielding ``evaluate``'s progress callback
ProgressFactory = Callable[[list[str]], AbstractContextManager]


def evaluate_agents(
    agents: Sequence[str | Path],
    out: str | Path,
    *,
    names: Sequence[str] = (),
    env: Optional[str] = None,
    env_kwargs: Optional[dict[str, Any]] = None,
    suite: str = "novel",
    episodes: int = 10,
    seed: int = 0,
    only: Sequence[str] = (),
    max_rows: int = 512,
    window: int = 20,
    max_episode_steps: Optional[int] = None,
    frozen: bool = False,
    obs_std_floor: Optional[float] = None,
    wandb_mode: Optional[str] = None,
    plots: bool = True,
    run_name: Optional[str] = None,
    progress: Optional[ProgressFactory] = None,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Evaluate agent files (plasticrl ``.pt`` / run directories, SB3 ``.zip``) on the nominal
    condition and every condition of ``suite``; write ``eval.json``, CSVs, ``report.md`` and plots
    to ``out`` and log them to W&B. Returns the result dict and the written paths.

    ``frozen`` adds each plastic agent again with its learning rates at 0 (``NAME/frozen``);
    ``obs_std_floor`` replaces the plasticrl agents' floor on the observation std and is recorded.
    ``env_kwargs`` default to those the agents were trained with (they must agree).
    """
    from plasticrl.eval.controllers import check_same_env, frozen_twins, load_controller
    from plasticrl.eval.evaluate import evaluate
    from plasticrl.eval.report import write_reports
    from plasticrl.eval.wandb_log import log_evaluation, resolve_mode

    if names and len(names) != len(agents):
        raise PlasticRLError(f"--name given {len(names)} times for {len(agents)} agents; give one per agent or none")
    mode = resolve_mode(wandb_mode)
    controllers = [load_controller(p, names[i] if names else None, obs_std_floor=obs_std_floor)
                   for i, p in enumerate(agents)]
    if frozen:
        twins = frozen_twins(controllers)
        if not twins:
            raise PlasticRLError("frozen twins asked for, but none of the agents learns within the episode (a "
                                 "plastic_spiking policy with plasticity.rule or input_plasticity.rule set); "
                                 "nothing to freeze")
        controllers += twins
    env_id = check_same_env(controllers, env)
    if env_kwargs is None:
        # An agent trained on the task's defaults records {}: a setting too, not a blank. Files that do
        # not name their env (a bare SB3 zip, a hand-made agent file) record no settings at all.
        distinct = {repr(sorted(c.env_kwargs.items())) for c in controllers if c.env_id}
        if len(distinct) > 1:
            raise PlasticRLError(f"the agents were trained with different env keyword arguments {sorted(distinct)}; "
                                 "evaluate them separately so each keeps its own")
        env_kwargs = next((c.env_kwargs for c in controllers if c.env_kwargs), {})
    env_kwargs = dict(env_kwargs)
    if max_episode_steps is not None:
        env_kwargs["max_episode_steps"] = max_episode_steps
    with (progress([c.name for c in controllers]) if progress is not None else nullcontext(None)) as bar:
        result = evaluate(controllers, env_id, suite=suite, episodes=episodes, seed=seed, only=only,
                          env_kwargs=env_kwargs, max_rows=max_rows, window=window, progress=bar)
    # Recorded because it changes how the plasticrl agents saw their observations.
    result["obs_std_floor"] = obs_std_floor
    out = Path(out)
    paths = write_reports(result, out, plots=plots)
    images = [p for p in paths.values() if p.suffix == ".png"]
    log_evaluation(result, out, images, mode, name=run_name or f"eval-{env_id}")
    return result, paths
