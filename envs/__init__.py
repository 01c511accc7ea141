"""Benchmark tasks: fixed policies in environments, with true values.

Every task implements `Task`: `collect(num_episodes, seed)` gives on-policy
`Trajectories`, `evaluation_set()` gives held-out states with V^pi (`EvalSet`).

    >>> from adaptive_td import envs
    >>> task = envs.make("chain")
    >>> batch = task.collect(num_episodes=100, seed=0)
    >>> truth = task.evaluation_set()
"""

from __future__ import annotations

from collections.abc import Callable

from adaptive_td.envs.cartpole import BalancingPolicy, CartPole
from adaptive_td.envs.chain import WallChain
from adaptive_td.envs.classic import (
    Acrobot,
    AcrobotPolicy,
    MountainCar,
    MountainCarPolicy,
    Pendulum,
    PendulumPolicy,
)
from adaptive_td.envs.gym_env import TabularEnv
from adaptive_td.envs.gym_env import register as _register_gymnasium
from adaptive_td.envs.maze import GridMaze, TwoRoomMaze
from adaptive_td.envs.tabular import TabularMDP, TabularTask
from adaptive_td.envs.task import EvalSet, Task

TASKS: dict[str, tuple[Callable[..., Task], str]] = {
    cls.name: (cls, cls.description)
    for cls in (WallChain, TwoRoomMaze, CartPole, Acrobot, MountainCar, Pendulum)
}

# adaptive_td/Chain-v0 and adaptive_td/Maze-v0 (see `gym_env`); idempotent.
_register_gymnasium()


def make(name: str, **kwargs) -> Task:
    """Build the task registered as `name`, passing `kwargs` to its constructor.

    Raises:
      ValueError: for an unknown name, listing the known ones.
    """
    if name not in TASKS:
        raise ValueError(
            f"make: unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}."
        )

    factory, _ = TASKS[name]
    return factory(**kwargs)


__all__ = [
    "TASKS",
    "Acrobot",
    "AcrobotPolicy",
    "BalancingPolicy",
    "CartPole",
    "EvalSet",
    "GridMaze",
    "MountainCar",
    "MountainCarPolicy",
    "Pendulum",
    "PendulumPolicy",
    "TabularEnv",
    "TabularMDP",
    "TabularTask",
    "Task",
    "TwoRoomMaze",
    "WallChain",
    "make",
]
