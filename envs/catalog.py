"""``catalog()``: everything a user can choose, as JSON-serialisable data (for ``plasticrl envs``), in the
package's one JSON convention (:func:`plasticrl.io.json_safe`): tuples as lists, non-finite floats as
``null`` (an unbounded range such as Ant's ``healthy_z_range`` reads ``[0.2, null]``)."""
from __future__ import annotations

from typing import Any

from plasticrl.io import json_safe

from .perturb.morphology import segments
from .perturb.spec import TYPES
from .perturb.suites import SEVERITIES, SUITES, suite, suites_of
from .registry import make_config, registered_max_episode_steps, supported_ids


def env_info(env_id: str) -> dict[str, Any]:
    """Id, parent (adaptation tasks), sizes, defaults, limb segments and suites of one natively
    batched env."""
    cfg = make_config(env_id)
    model = cfg.load_model()
    task = cfg.task_cls(model)
    return {
        "id": env_id,
        "parent_id": cfg.task_cls.parent_id,  # adaptation tasks: the task whose robot they run
        "obs_dim": task.obs_dim,
        "action_dim": model.nu,
        "frame_skip": cfg.frame_skip,
        "max_episode_steps": registered_max_episode_steps(env_id),
        "kwargs": json_safe({"xml_file": cfg.task_cls.xml_file, "frame_skip": cfg.frame_skip,
                             **cfg.task_cls.defaults}),
        "segments": segments(env_id),
        "suites": {name: json_safe(suite(env_id, name)) for name in suites_of(env_id)},
    }


def catalog() -> dict[str, Any]:
    """Envs (with their suites), perturbation types with parameters, suite names, severities."""
    return {
        "envs": [env_info(env_id) for env_id in supported_ids()],
        "perturbations": [json_safe(TYPES[name].describe()) for name in sorted(TYPES)],
        "suites": list(SUITES),
        "severities": list(SEVERITIES),
    }
