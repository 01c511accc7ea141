"""Gymnasium versions of the tabular tasks: the chain and the grid mazes.

`import adaptive_td.envs` registers

    adaptive_td/Chain-v0   WallChain's dynamics, actions left (0) and right (1)
    adaptive_td/Maze-v0    GridMaze's dynamics, actions up, down, left, right

so that

    >>> import gymnasium
    >>> import adaptive_td.envs
    >>> env = gymnasium.make("adaptive_td/Maze-v0", layout="four_rooms")

builds a `gymnasium.Env`. Keyword arguments go to the task's constructor
(`WallChain` or `GridMaze`): the layout, rewards, reward noise, cliff and
observation kind. The dynamics, rewards, start distribution and observations
are those of the task's `TabularMDP` and its per-move `action_model()`; the
caller chooses the actions, so the task's evaluated policy (`p_right`,
`policy`, `epsilon`) plays no part in the environment. Its exact values
(`env.unwrapped.task.exact_values()`) are those of the evaluated policy, not
of whatever policy drives the environment.

Episodes end (`terminated`) on entering the terminal state; `gymnasium.make`
adds a `TimeLimit` of 200 steps (pass `max_episode_steps` to change it).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from adaptive_td.envs.chain import WallChain
from adaptive_td.envs.maze import GridMaze
from adaptive_td.envs.tabular import TabularTask

CHAIN_ID = "adaptive_td/Chain-v0"
MAZE_ID = "adaptive_td/Maze-v0"


class TabularEnv(gymnasium.Env):
    """A `gymnasium.Env` stepping a tabular task's per-move dynamics.

    ## Action space

    `Discrete(A)`: the moves of `task.action_model()`.

    ## Observation space

    `Box` of the task's `obs_shape`, float32, bounded by the smallest and
    largest feature value (the terminal observation included).

    ## Rewards

    R_a(s, s') of the move taken, plus zero-mean Gaussian noise of standard
    deviation `task.reward_noise` (drawn from the environment's `np_random`).

    ## Episode end

    `terminated` on entering the terminal state, which is then observed as
    `task.mdp.terminal_feature`. The environment never truncates; the
    registered versions add a `TimeLimit`.

    ## Starting state

    Drawn from `task.mdp.start`.

    Args:
      task: a `TabularTask` with an `action_model()` method.
    """

    metadata = {"render_modes": []}

    def __init__(self, task: TabularTask):
        if not hasattr(task, "action_model"):
            raise ValueError(
                f"TabularEnv: task {task!r} has no action_model(); expected a "
                "WallChain or a GridMaze."
            )

        self.task = task
        self.mdp = task.mdp
        self.move_transitions, self.move_rewards = task.action_model()
        features = np.vstack(
            [self.mdp.features.reshape(self.mdp.num_states, -1)]
            + [self.mdp.terminal_feature.reshape(1, -1)]
        )
        self.action_space = spaces.Discrete(self.move_transitions.shape[0])
        self.observation_space = spaces.Box(
            low=float(features.min()),
            high=float(features.max()),
            shape=tuple(self.mdp.features.shape[1:]),
            dtype=np.float32,
        )
        self.state: int | None = None

    def _observation(self) -> np.ndarray:
        if self.state == self.mdp.num_states:
            return np.array(self.mdp.terminal_feature, np.float32)
        return np.array(self.mdp.features[self.state], np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.state = int(self.np_random.choice(self.mdp.num_states, p=self.mdp.start))
        return self._observation(), {"state": self.state}

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.state is None:
            raise RuntimeError("TabularEnv.step: call reset() before step().")
        if not self.action_space.contains(action):
            raise ValueError(
                f"TabularEnv.step: action={action!r}; expected an integer in "
                f"0 ... {self.action_space.n - 1}."
            )
        if self.state == self.mdp.num_states:
            raise RuntimeError(
                "TabularEnv.step: the episode has terminated; call reset()."
            )

        a, s = int(action), self.state
        probs = self.move_transitions[a, s]
        s_next = int(self.np_random.choice(len(probs), p=probs))
        reward = float(self.move_rewards[a, s, s_next])
        if self.mdp.reward_noise > 0:
            reward += float(self.mdp.reward_noise * self.np_random.normal())
        self.state = s_next
        terminated = s_next == self.mdp.num_states
        return self._observation(), reward, terminated, False, {"state": s_next}


def make_chain_env(**kwargs) -> TabularEnv:
    """`TabularEnv(WallChain(**kwargs))`, the entry point of Chain-v0."""
    return TabularEnv(WallChain(**kwargs))


def make_maze_env(**kwargs) -> TabularEnv:
    """`TabularEnv(GridMaze(**kwargs))`, the entry point of Maze-v0."""
    return TabularEnv(GridMaze(**kwargs))


def register() -> None:
    """Register Chain-v0 and Maze-v0 with Gymnasium; a second call does nothing."""
    for env_id, entry_point in (
        (CHAIN_ID, make_chain_env),
        (MAZE_ID, make_maze_env),
    ):
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id, entry_point=entry_point, max_episode_steps=200
            )
