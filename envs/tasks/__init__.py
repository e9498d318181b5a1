"""Per-task observation, reward and termination, vectorised over instances."""
from .ant import Ant
from .base import Task
from .humanoid import Humanoid
from .pendulum import InvertedDoublePendulum, InvertedPendulum
from .planar import HalfCheetah, Hopper, Swimmer, Walker2d

#: Every natively batched task, by Gymnasium id.
TASKS: dict[str, type[Task]] = {
    t.env_id: t
    for t in (Ant, HalfCheetah, Hopper, Walker2d, Humanoid, Swimmer, InvertedPendulum,
              InvertedDoublePendulum)
}

__all__ = ["TASKS", "Task"]
