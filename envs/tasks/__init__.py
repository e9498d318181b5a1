"""Per-task observation, reward and termination, vectorised over instances."""
from .adaptation import AntDir, GoalTask, HalfCheetahDir, HalfCheetahVel
from .ant import Ant
from .base import Task
from .humanoid import Humanoid
from .pendulum import InvertedDoublePendulum, InvertedPendulum
from .planar import HalfCheetah, Hopper, Swimmer, Walker2d

#: Every natively batched task, by id (Gymnasium's, or plasticrl's for the adaptation tasks).
TASKS: dict[str, type[Task]] = {
    t.env_id: t
    for t in (Ant, HalfCheetah, Hopper, Walker2d, Humanoid, Swimmer, InvertedPendulum,
              InvertedDoublePendulum, HalfCheetahDir, AntDir, HalfCheetahVel)
}
#: The adaptation tasks (goal drawn per episode, optionally switched mid-episode).
ADAPTATION_TASKS: tuple[str, ...] = tuple(sorted(k for k, t in TASKS.items() if issubclass(t, GoalTask)))


def robot_id(env_id: str) -> str:
    """The Gymnasium id whose robot ``env_id`` runs: its parent for an adaptation task
    (``HalfCheetahDir-v5`` -> ``HalfCheetah-v5``), else ``env_id`` itself."""
    task = TASKS.get(env_id)
    return (task.parent_id or env_id) if task is not None else env_id


__all__ = ["ADAPTATION_TASKS", "TASKS", "GoalTask", "Task", "robot_id"]
