"""Load agents, evaluate them together and write the reports: the one sequence behind both
``plasticrl eval`` and the evaluation stage of ``plasticrl experiment``, so the two cannot drift
apart in what they record."""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from plasticrl.errors import PlasticRLError
from plasticrl.eval.result import EvaluationResult
from plasticrl.eval.settings import EvalSettings

#: given the controllers' names, a context manager yielding ``evaluate``'s progress callback
ProgressFactory = Callable[[list[str]], AbstractContextManager]


def evaluate_agents(
    agents: Sequence[str | Path],
    out: str | Path,
    settings: Optional[EvalSettings] = None,
    *,
    names: Sequence[str] = (),
    env: Optional[str] = None,
    env_kwargs: Optional[dict[str, Any]] = None,
    env_kwargs_update: Optional[dict[str, Any]] = None,
    wandb_mode: Optional[str] = None,
    plots: bool = True,
    run_name: Optional[str] = None,
    progress: Optional[ProgressFactory] = None,
    oracle: Optional[str | Path] = None,
    oracle_name: Optional[str] = None,
    trust_pickle: bool = False,
    force: bool = False,
) -> tuple[EvaluationResult, dict[str, Path]]:
    """Evaluate agent files (plasticrl ``.pt`` / run directories, SB3 ``.zip``) on the nominal
    condition and every condition of the settings' suite (:class:`~plasticrl.eval.settings.EvalSettings`,
    default: its defaults); write ``eval.json``, CSVs, ``report.md`` and plots to ``out`` and log them
    to W&B. Returns the result and the written paths.

    ``settings.frozen_twins`` adds each plastic agent again with its learning rates at 0
    (``NAME/frozen``, :func:`~plasticrl.eval.evaluate.evaluate`); ``settings.obs_std_floor`` replaces
    the plasticrl agents' floor on the observation std and is recorded in the result.
    ``env_kwargs`` default to those the agents were trained with (they must agree); ``env_kwargs_update``
    changes some of them (``plasticrl eval --env-kwarg KEY=VALUE``: e.g. a fixed goal direction for agents
    trained on random ones).
    ``oracle`` (shown as ``oracle_name``, default the run's name): an agent trained with the goal in
    its observation (``goal_observed=True``) on the same goal-switching task; it runs first on the
    same episodes and is the yardstick of the adaptation ratio and the time to adapt.
    ``trust_pickle`` lets SB3 unpickle what plasticrl cannot rebuild of a model zip (unsafe for
    files of unknown origin; see :mod:`plasticrl.agents.sb3`). ``force`` skips the memory guard
    (:mod:`plasticrl.rollouts.memory`).
    """
    from plasticrl.rollouts.controllers import check_same_env, common_env_kwargs, load_controller
    from plasticrl.eval.evaluate import evaluate
    from plasticrl.report.writer import write_reports
    from plasticrl.config import resolve_wandb_mode
    from plasticrl.report.wandb_log import log_evaluation

    settings = EvalSettings() if settings is None else settings
    obs_std_floor = settings.obs_std_floor
    if names and len(names) != len(agents):
        raise PlasticRLError(f"--name given {len(names)} times for {len(agents)} agents; give one per agent or none")
    mode = resolve_wandb_mode(wandb_mode)
    controllers = [load_controller(p, names[i] if names else None, obs_std_floor=obs_std_floor, env_id=env,
                                   trust_pickle=trust_pickle)
                   for i, p in enumerate(agents)]
    env_id = check_same_env(controllers, env)
    oracle_ctrl = None
    if oracle is not None:
        oracle_ctrl = load_controller(oracle, _oracle_name(oracle, oracle_name), obs_std_floor=obs_std_floor)
        if oracle_ctrl.env_id and oracle_ctrl.env_id != env_id:
            raise PlasticRLError(f"the oracle was trained on {oracle_ctrl.env_id!r}, the agents on {env_id!r}")
        if not (oracle_ctrl.env_kwargs or {}).get("goal_observed"):
            raise PlasticRLError(f"oracle {str(oracle)!r} was not trained with goal_observed=True; an oracle must "
                                 "observe the goal (env.kwargs.goal_observed: true)")
    env_kwargs = common_env_kwargs(controllers) if env_kwargs is None else dict(env_kwargs)
    env_kwargs.update(env_kwargs_update or {})
    with (progress([c.name for c in controllers]) if progress is not None else nullcontext(None)) as bar:
        result = evaluate(controllers, env_id, settings, env_kwargs=env_kwargs, progress=bar, oracle=oracle_ctrl,
                          force=force)
    # Recorded because it changes how the plasticrl agents saw their observations.
    result = result.replace(obs_std_floor=obs_std_floor)
    out = Path(out)
    paths = write_reports(result, out, plots=plots)
    images = [p for p in paths.values() if p.suffix == ".png"]
    log_evaluation(result, out, images, mode, name=run_name or f"eval-{env_id}")
    return result, paths


def _oracle_name(path: str | Path, label: str | None = None) -> str:
    """How the oracle is shown: ``label`` (an experiment's agent label) or the run it comes from (a run
    directory's name; for ``RUN/best_agent.pt`` the run's name, not "best_agent"), marked "(oracle)"
    unless the name says so already."""
    if label is None and str(path).startswith("pretrained:"):
        label = str(path)[len("pretrained:"):]
    path = Path(path)
    if label is None:
        label = path.name if path.is_dir() else (
            path.parent.name if path.stem in ("best_agent", "final_agent") and path.parent.name else path.stem)
    return label if "oracle" in label else f"{label} (oracle)"
