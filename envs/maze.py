"""A random walk in a two-room grid maze: the value jumps across the wall."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from adaptive_td.envs.tabular import TabularMDP, TabularTask

# Two 7 x 6 rooms joined by a door in the middle column; the goal sits in the
# right room against the separating wall, three rows below the door.
TWO_ROOMS = (
    "###############",
    "#......#......#",
    "#......#......#",
    "#......#......#",
    "#.............#",
    "#......#......#",
    "#......#G.....#",
    "#......#......#",
    "###############",
)

_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right


class TwoRoomMaze(TabularTask):
    """A uniform random walk in a grid maze with two rooms and one goal.

    ## States

    The free cells of an ASCII layout (`#` wall, `.` free, `G` goal), except
    the goal, which is the terminal state. The default layout `TWO_ROOMS` has
    two 7 x 6 rooms joined by a one-cell door; the goal is in the right room,
    against the separating wall and three rows below the door, so cells that
    face each other through the wall are far apart by walking.

    ## Policy

    Up, down, left or right, each with probability 1/4. A move into a wall or
    off the grid leaves the agent where it is.

    ## Rewards

    +1 for entering the goal; 0 for every other step.

    ## Episode end

    Entering the goal terminates the episode. Episodes are cut (truncated)
    after `max_steps` steps.

    ## Observation

    `(x, y)`, shape `(2,)`: the column and the row of the cell, scaled so that
    the free cells span [0, 1] (x grows to the right, y grows downwards, as
    the rows of the layout). The terminal state is observed at the goal.

    ## Starting state

    Uniform over the free non-goal cells.

    ## Ground truth

    Exact V^pi of every free non-goal cell from the linear system (float64),
    see `TabularMDP.exact_values`.

    With the defaults (gamma = 0.99, max_steps = 200) values run from 0.06
    (far corners of the left room) to 0.83 (beside the goal); the right room
    is worth 0.30 ... 0.83, the left room 0.06 ... 0.16 (0.29 in the door).
    Right below the goal V is 0.83 at (row 7, col 8) and 0.09 across the wall
    at (7, 6). A discount of 0.95 would leave the whole left room below 0.01.
    About 55% of the random-walk episodes reach the 200-step limit
    (truncated); the rest find the goal.

    Args:
      layout: rows of the maze, all the same length, with exactly one `G`.
      gamma: the discount, in [0, 1).
      max_steps: the time limit of `collect`.
    """

    name = "maze"
    description = "Random walk in a two-room grid maze; V jumps across the wall"

    def __init__(
        self,
        layout: Sequence[str] = TWO_ROOMS,
        gamma: float = 0.99,
        max_steps: int = 200,
    ):
        grid = np.array([list(row) for row in layout])
        if grid.ndim != 2 or len({len(row) for row in layout}) != 1:
            raise ValueError(
                "TwoRoomMaze: layout rows must all have the same length; got "
                f"lengths {[len(row) for row in layout]}."
            )
        unknown = set(grid.ravel()) - set("#.G")
        if unknown:
            raise ValueError(
                f"TwoRoomMaze: layout has characters {sorted(unknown)}; allowed: "
                "'#' (wall), '.' (free), 'G' (goal)."
            )
        if np.sum(grid == "G") != 1:
            raise ValueError(
                f"TwoRoomMaze: layout has {np.sum(grid == 'G')} goal cells 'G'; "
                "expected exactly one."
            )
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"TwoRoomMaze: gamma={gamma}; expected 0 <= gamma < 1.")
        if max_steps < 1:
            raise ValueError(f"TwoRoomMaze: max_steps={max_steps}; expected >= 1.")

        self.layout = tuple(layout)
        self.grid = grid
        self.goal = tuple(int(i) for i in np.argwhere(grid == "G")[0])
        self.cells = np.argwhere(grid == ".")
        self.gamma = gamma
        self.max_steps = max_steps
        self.obs_shape = (2,)
        self.mdp = _maze_mdp(grid, self.cells, self.goal)

    @property
    def walls(self) -> np.ndarray:
        """`[H, W]` bool, True at wall cells."""
        return self.grid == "#"

    def labels(self) -> np.ndarray:
        """The `(row, col)` of every state, `[S, 2]`."""
        return self.cells.copy()

    def value_grid(self, values: np.ndarray) -> np.ndarray:
        """Lay per-state values out on the grid for plotting.

        Args:
          values: `[S]`, one value per state in `evaluation_set` order.

        Returns:
          `[H, W]` float64, NaN at walls and at the goal (terminal).
        """
        values = np.asarray(values, np.float64)
        if values.shape != (len(self.cells),):
            raise ValueError(
                f"value_grid: values has shape {values.shape}; expected "
                f"({len(self.cells)},), one per free non-goal cell."
            )

        out = np.full(self.grid.shape, np.nan)
        out[self.cells[:, 0], self.cells[:, 1]] = values
        return out


def _maze_mdp(grid: np.ndarray, cells: np.ndarray, goal: tuple[int, int]):
    """The random-walk `TabularMDP` of a maze (states are `cells`, in order)."""
    height, width = grid.shape
    num_states = len(cells)
    index = {(int(r), int(c)): i for i, (r, c) in enumerate(cells)}
    index[goal] = num_states
    p = np.zeros((num_states, num_states + 1))
    for i, (r, c) in enumerate(cells):
        for dr, dc in _MOVES:
            nr, nc = r + dr, c + dc
            blocked = not (0 <= nr < height and 0 <= nc < width) or grid[nr, nc] == "#"
            p[i, i if blocked else index[(nr, nc)]] += 1.0 / len(_MOVES)
    rewards = np.zeros_like(p)
    rewards[:, num_states] = 1.0

    free = np.argwhere(grid != "#").astype(np.float64)
    low, high = free.min(0), free.max(0)
    scale = np.where(high > low, high - low, 1.0)

    def xy(rc):
        row, col = (np.asarray(rc, np.float64) - low) / scale
        return np.array([col, row], np.float32)

    return TabularMDP(
        transitions=p,
        rewards=rewards,
        start=np.full(num_states, 1.0 / num_states),
        features=np.stack([xy(rc) for rc in cells]),
        terminal_feature=xy(goal),
    )
