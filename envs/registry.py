"""Supported env ids and their keyword arguments (Gymnasium v5 names and defaults)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import gymnasium
import gymnasium.envs.mujoco as gym_mujoco
import mujoco

from .errors import EnvError, unknown
from .tasks import TASKS, Task, robot_id

#: MujocoEnv keyword arguments that only concern rendering; accepted (as Gymnasium accepts
#: them) and ignored, because the batched engine does not render.
RENDER_KWARGS = frozenset({"width", "height", "camera_id", "camera_name",
                           "default_camera_config", "max_geom", "visual_options"})
#: Prefix of the ids registered with Gymnasium by this package (``plasticrl/Ant-v5``).
NAMESPACE = "plasticrl/"


def supported_ids() -> list[str]:
    """Gymnasium ids the batched engine runs natively."""
    return sorted(TASKS)


def canonical_id(env_id: str) -> str:
    """Strip the ``plasticrl/`` namespace: ``plasticrl/Ant-v5`` and ``Ant-v5`` are one task."""
    return env_id[len(NAMESPACE):] if env_id.startswith(NAMESPACE) else env_id


def registered_max_episode_steps(env_id: str) -> int | None:
    """The TimeLimit Gymnasium registers for ``env_id`` (for an adaptation task, its parent's)."""
    return gymnasium.spec(robot_id(canonical_id(env_id))).max_episode_steps


def resolve_xml(xml_file: str) -> str:
    """Resolve an MJCF path the way Gymnasium's MujocoEnv does: paths starting with '.', '/' or
    '~' are used as given, bare names are looked up in Gymnasium's MuJoCo asset folder."""
    if xml_file.startswith((".", "/")):
        path = xml_file
    elif xml_file.startswith("~"):
        path = os.path.expanduser(xml_file)
    else:
        path = os.path.join(os.path.dirname(gym_mujoco.__file__), "assets", xml_file)
    if not os.path.exists(path):
        raise EnvError(f"xml_file {xml_file!r} does not exist (resolved to {path!r})")
    return path


@dataclass(frozen=True)
class EnvConfig:
    """Everything needed to build a batched task, validated."""

    env_id: str
    task_cls: type[Task]
    xml_path: str
    frame_skip: int
    max_episode_steps: int | None
    task_kwargs: dict[str, Any]

    def load_model(self) -> mujoco.MjModel:
        """Compile the nominal model exactly as Gymnasium does (``MjModel.from_xml_path``)."""
        return mujoco.MjModel.from_xml_path(self.xml_path)


def valid_kwargs(task_cls: type[Task]) -> list[str]:
    """Keyword arguments accepted for a task."""
    return sorted({"xml_file", "frame_skip", "max_episode_steps", "render_mode",
                   *RENDER_KWARGS, *task_cls.defaults})


def make_config(env_id: str, **kwargs: Any) -> EnvConfig:
    """Validate ``env_id`` and Gymnasium-style ``kwargs`` into an :class:`EnvConfig`."""
    cid = canonical_id(env_id)
    if cid not in TASKS:
        raise unknown("env id", env_id, supported_ids())
    task_cls = TASKS[cid]
    bad = sorted(set(kwargs) - set(valid_kwargs(task_cls)))
    if bad:
        raise EnvError(f"unknown keyword argument(s) {bad} for {cid}; valid choices: "
                       f"{', '.join(valid_kwargs(task_cls))}")
    if kwargs.get("render_mode") is not None:
        raise EnvError(f"render_mode={kwargs['render_mode']!r} is not supported by the batched "
                       "engine; valid choices: None (render with gymnasium.make instead)")
    frame_skip = kwargs.get("frame_skip", task_cls.frame_skip)
    if not isinstance(frame_skip, int) or frame_skip < 1:
        raise EnvError(f"frame_skip must be a positive int, got {frame_skip!r}")
    max_steps = kwargs.get("max_episode_steps", registered_max_episode_steps(cid))
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
        raise EnvError(f"max_episode_steps must be a positive int or None, got {max_steps!r}")
    task_kwargs = {k: v for k, v in kwargs.items() if k in task_cls.defaults}
    task_cls.check_kwargs(task_kwargs, max_steps)
    return EnvConfig(cid, task_cls, resolve_xml(kwargs.get("xml_file", task_cls.xml_file)),
                     frame_skip, max_steps, task_kwargs)
