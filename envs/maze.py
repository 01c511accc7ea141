"""Random walks and goal-directed walks in grid mazes built from ASCII layouts."""

from __future__ import annotations

from collections import deque
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

# One 7 x 7 room; the goal in a corner, a trap in the middle.
OPEN_ROOM = (
    "#########",
    "#.......#",
    "#.......#",
    "#.......#",
    "#...T...#",
    "#.......#",
    "#.......#",
    "#......G#",
    "#########",
)

# The four rooms of Sutton, Precup and Singh, "Between MDPs and semi-MDPs"
# (1999): the goal in the bottom-right room, a trap in the bottom-left one.
FOUR_ROOMS = (
    "#############",
    "#.....#.....#",
    "#.....#.....#",
    "#...........#",
    "#.....#.....#",
    "#.....#.....#",
    "##.####.....#",
    "#.....###.###",
    "#.....#.....#",
    "#..T..#.....#",
    "#...........#",
    "#.....#....G#",
    "#############",
)

# One-cell corridors with dead ends; a trap at the end of one of them.
LABYRINTH = (
    "###########",
    "#.....#...#",
    "#.###.#.#.#",
    "#.#T..#.#.#",
    "#.#.###.#.#",
    "#.#.....#.#",
    "#.#####.#.#",
    "#...#...#.#",
    "###.#.###.#",
    "#.....#..G#",
    "###########",
)

LAYOUTS = {
    "open_room": OPEN_ROOM,
    "two_rooms": TWO_ROOMS,
    "four_rooms": FOUR_ROOMS,
    "labyrinth": LABYRINTH,
}
POLICIES = ("random", "goal_directed")
OBSERVATIONS = ("xy", "one_hot", "image")

_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right


class GridMaze(TabularTask):
    """A fixed policy in a grid maze with one goal and optional traps.

    ## States

    The free cells of an ASCII layout: `#` wall, `.` free, `G` goal, `T` trap.
    The goal and the traps end the episode: entering one is a step into the
    terminal state. `layout` is a name from `LAYOUTS` ("open_room",
    "two_rooms", "four_rooms", "labyrinth") or the rows of a layout of one's
    own. One layout rule keeps the terminal rewards well defined: no free
    cell may border both the goal and a trap.

    ## Actions and policy

    Four moves: up, down, left, right (actions 0 ... 3). A move into a wall
    or off the grid leaves the agent where it is.

    `policy="random"` (the default) takes each move with probability 1/4.
    `policy="goal_directed"` takes, with probability 1 - `epsilon`, a move
    along a shortest path to the goal (uniform over the moves that bring the
    agent one step closer by walking, traps counted as walls), and with
    probability `epsilon` a uniform move. A cell with no path to the goal
    moves uniformly. (The Gymnasium version, `adaptive_td/Maze-v0`, lets the
    caller choose the moves; the evaluated policy is not part of it.)

    ## Rewards

    `goal_reward` (+1) for entering the goal, `trap_reward` (-1) for entering
    a trap; 0 for every other step. With `reward_noise` > 0, zero-mean
    Gaussian noise of that standard deviation is added to every sampled
    reward; the exact values do not change.

    ## Episode end

    Entering the goal or a trap terminates the episode. Episodes are cut
    (truncated) after `max_steps` steps.

    ## Observation

    `observation="xy"` (the default): `(x, y)`, shape `(2,)`, the column and
    the row of the cell, scaled so that the non-wall cells span [0, 1] (x
    grows to the right, y grows downwards, as the rows of the layout). The
    terminal state is observed at the goal.

    `observation="one_hot"`: the indicator of the state, shape `(S,)`; the
    terminal state is all zeros.

    `observation="image"`: the rendered grid, shape `(H, W, 3)` float32, with
    channels walls (1 at `#`), agent (1 at the agent's cell) and exits (+1 at
    the goal, -1 at the traps). The terminal state has an empty agent channel.

    ## Starting state

    Uniform over the free cells (neither goal nor trap).

    ## Ground truth

    Exact V^pi of every free cell from the linear system (float64), see
    `TabularMDP.exact_values`.

    Args:
      layout: a name from `LAYOUTS`, or rows of the maze, all the same length,
        with exactly one `G`.
      gamma: the discount, in [0, 1).
      max_steps: the time limit of `collect`.
      policy: "random" or "goal_directed".
      epsilon: for "goal_directed", the probability of a uniform move, in
        [0, 1].
      goal_reward: the reward for entering the goal.
      trap_reward: the reward for entering a trap.
      reward_noise: the standard deviation of the reward noise, >= 0.
      observation: "xy", "one_hot" or "image".
    """

    name = "grid_maze"  # not in `envs.TASKS`; "maze" is its default
    description = "Random or goal-directed walk in a grid maze (exact values)"

    def __init__(
        self,
        layout: str | Sequence[str] = "two_rooms",
        gamma: float = 0.99,
        max_steps: int = 200,
        policy: str = "random",
        epsilon: float = 0.2,
        goal_reward: float = 1.0,
        trap_reward: float = -1.0,
        reward_noise: float = 0.0,
        observation: str = "xy",
    ):
        cls = type(self).__name__
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)):
            raise ValueError(f"{cls}: max_steps={max_steps!r}; expected an integer.")
        if isinstance(layout, str):
            if layout not in LAYOUTS:
                raise ValueError(
                    f"{cls}: layout={layout!r}; expected one of "
                    f"{', '.join(map(repr, LAYOUTS))} or a sequence of rows."
                )
            layout = LAYOUTS[layout]
        grid = np.array([list(row) for row in layout])
        if grid.ndim != 2 or len({len(row) for row in layout}) != 1:
            raise ValueError(
                f"{cls}: layout rows must all have the same length; got "
                f"lengths {[len(row) for row in layout]}."
            )
        unknown = set(grid.ravel()) - set("#.GT")
        if unknown:
            raise ValueError(
                f"{cls}: layout has characters {sorted(unknown)}; allowed: "
                "'#' (wall), '.' (free), 'G' (goal), 'T' (trap)."
            )
        if np.sum(grid == "G") != 1:
            raise ValueError(
                f"{cls}: layout has {np.sum(grid == 'G')} goal cells 'G'; "
                "expected exactly one."
            )
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"{cls}: gamma={gamma}; expected 0 <= gamma < 1.")
        if max_steps < 1:
            raise ValueError(f"{cls}: max_steps={max_steps}; expected >= 1.")
        if policy not in POLICIES:
            raise ValueError(
                f"{cls}: policy={policy!r}; expected one of "
                f"{', '.join(map(repr, POLICIES))}."
            )
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"{cls}: epsilon={epsilon}; expected 0 <= epsilon <= 1.")
        if not (np.isfinite(reward_noise) and reward_noise >= 0):
            raise ValueError(
                f"{cls}: reward_noise={reward_noise}; expected a finite value >= 0."
            )
        if observation not in OBSERVATIONS:
            raise ValueError(
                f"{cls}: observation={observation!r}; expected one of "
                f"{', '.join(map(repr, OBSERVATIONS))}."
            )

        self.layout = tuple(layout)
        self.grid = grid
        self.goal = tuple(int(i) for i in np.argwhere(grid == "G")[0])
        self.traps = np.argwhere(grid == "T")
        self.cells = np.argwhere(grid == ".")
        self.gamma = gamma
        self.max_steps = max_steps
        self.policy = policy
        self.epsilon = epsilon
        self.goal_reward = goal_reward
        self.trap_reward = trap_reward
        self.reward_noise = reward_noise
        self.observation = observation

        move_p, move_r = self.action_model()
        probs = self.policy_probs()
        num_states = len(self.cells)
        # Accumulated move by move, so the random walk's table is exactly the
        # sum of quarters.
        p = np.zeros((num_states, num_states + 1))
        for a in range(len(_MOVES)):
            for i in range(num_states):
                p[i, np.argmax(move_p[a, i])] += probs[i, a]
        rewards = np.zeros_like(p)
        rewards[:, num_states] = goal_reward
        exits = move_p[:, :, num_states] > 0
        for a, i in zip(*np.nonzero(exits)):
            rewards[i, num_states] = move_r[a, i, num_states]
        features, terminal = self._features()
        self.mdp = TabularMDP(
            transitions=p,
            rewards=rewards,
            start=np.full(num_states, 1.0 / num_states),
            features=features,
            terminal_feature=terminal,
            reward_noise=reward_noise,
        )
        self.obs_shape = tuple(self.mdp.features.shape[1:])

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
          `[H, W]` float64, NaN at walls, the goal and the traps (terminal).
        """
        values = np.asarray(values, np.float64)
        if values.shape != (len(self.cells),):
            raise ValueError(
                f"value_grid: values has shape {values.shape}; expected "
                f"({len(self.cells)},), one per free cell."
            )

        out = np.full(self.grid.shape, np.nan)
        out[self.cells[:, 0], self.cells[:, 1]] = values
        return out

    def action_model(self) -> tuple[np.ndarray, np.ndarray]:
        """The dynamics of each move (deterministic), for any policy.

        Returns:
          `(transitions, rewards)`, each `[4, S, S+1]` float64: P_a(s, s') and
          R_a(s, s') for the moves up, down, left, right. Averaging them over
          `policy_probs()` gives `mdp`.
        """
        height, width = self.grid.shape
        num_states = len(self.cells)
        index = {(int(r), int(c)): i for i, (r, c) in enumerate(self.cells)}
        p = np.zeros((len(_MOVES), num_states, num_states + 1))
        r = np.zeros_like(p)
        for i, (row, col) in enumerate(self.cells):
            exit_rewards = set()
            for a, (dr, dc) in enumerate(_MOVES):
                nr, nc = row + dr, col + dc
                inside = 0 <= nr < height and 0 <= nc < width
                cell = self.grid[nr, nc] if inside else "#"
                if cell == "#":
                    p[a, i, i] = 1.0
                elif cell == ".":
                    p[a, i, index[(nr, nc)]] = 1.0
                else:
                    reward = self.goal_reward if cell == "G" else self.trap_reward
                    p[a, i, num_states] = 1.0
                    r[a, i, num_states] = reward
                    exit_rewards.add(cell)
            if len(exit_rewards) > 1:
                raise ValueError(
                    f"{type(self).__name__}: cell {(int(row), int(col))} borders "
                    "both the goal and a trap; the terminal reward of a cell must "
                    "be unique, so move the trap."
                )
        return p, r

    def distances(self) -> np.ndarray:
        """Walking distance of every state to the goal, `[S]` (inf: no path).

        Traps count as walls.
        """
        return self._walk([self.goal])

    def discontinuity_distance(self) -> np.ndarray | None:
        """Walking distance of every state to the nearest cell beside an inner
        wall, `[S]` (inf: no path); None if the layout has no inner wall.

        A cell is beside an inner wall when one wall cell separates it from
        another free cell: the two are neighbours in (x, y) but far apart by
        walking, which is where V can jump and TD's error can leak from.
        """
        height, width = self.grid.shape
        sources = []
        for row, col in self.cells:
            for dr, dc in _MOVES:
                wr, wc, fr, fc = row + dr, col + dc, row + 2 * dr, col + 2 * dc
                if (
                    0 <= fr < height
                    and 0 <= fc < width
                    and self.grid[wr, wc] == "#"
                    and self.grid[fr, fc] != "#"
                ):
                    sources.append((int(row), int(col)))
                    break
        return self._walk(sources) if sources else None

    def _walk(self, sources) -> np.ndarray:
        """Breadth-first walking distance from `sources` over free cells `[S]`."""
        height, width = self.grid.shape
        dist = np.full(self.grid.shape, np.inf)
        for source in sources:
            dist[source] = 0.0
        queue = deque(sources)
        while queue:
            row, col = queue.popleft()
            for dr, dc in _MOVES:
                nr, nc = row + dr, col + dc
                if (
                    0 <= nr < height
                    and 0 <= nc < width
                    and self.grid[nr, nc] == "."
                    and dist[nr, nc] == np.inf
                ):
                    dist[nr, nc] = dist[row, col] + 1
                    queue.append((nr, nc))
        return dist[self.cells[:, 0], self.cells[:, 1]]

    def policy_probs(self) -> np.ndarray:
        """pi(a | s) of the evaluated policy, `[S, 4]` float64."""
        num_states = len(self.cells)
        uniform = np.full((num_states, len(_MOVES)), 1.0 / len(_MOVES))
        if self.policy == "random":
            return uniform

        dist = self.distances()
        dist_next = np.append(dist, 0.0)  # the terminal column: goal or trap
        move_p, _ = self.action_model()
        height, width = self.grid.shape
        probs = uniform.copy()
        for i in range(num_states):
            if not np.isfinite(dist[i]):
                continue
            targets = np.argmax(move_p[:, i], axis=1)
            # A move into the terminal column is "closer" only if the cell it
            # enters is the goal (not a trap, whatever the trap pays).
            row, col = self.cells[i]
            into_goal = np.array(
                [
                    0 <= row + dr < height
                    and 0 <= col + dc < width
                    and self.grid[row + dr, col + dc] == "G"
                    for dr, dc in _MOVES
                ]
            )
            closer = np.where(
                targets == num_states, into_goal, dist_next[targets] == dist[i] - 1
            )
            probs[i] = self.epsilon * uniform[i] + (1.0 - self.epsilon) * (
                closer / closer.sum()
            )
        return probs

    def _features(self) -> tuple[np.ndarray, np.ndarray]:
        """The observations of the states `[S, *obs_shape]` and of the terminal."""
        num_states = len(self.cells)
        if self.observation == "one_hot":
            return np.eye(num_states, dtype=np.float32), np.zeros(
                num_states, np.float32
            )

        if self.observation == "image":
            base = np.zeros((*self.grid.shape, 3), np.float32)
            base[..., 0] = self.grid == "#"
            base[..., 2] = (self.grid == "G").astype(np.float32) - (self.grid == "T")
            images = np.repeat(base[None], num_states, axis=0)
            images[np.arange(num_states), self.cells[:, 0], self.cells[:, 1], 1] = 1.0
            return images, base

        free = np.argwhere(self.grid != "#").astype(np.float64)
        low, high = free.min(0), free.max(0)
        scale = np.where(high > low, high - low, 1.0)

        def xy(rc):
            row, col = (np.asarray(rc, np.float64) - low) / scale
            return np.array([col, row], np.float32)

        return np.stack([xy(rc) for rc in self.cells]), xy(self.goal)


class TwoRoomMaze(GridMaze):
    """A uniform random walk in a grid maze with two rooms and one goal.

    `GridMaze` with its defaults: the layout `TWO_ROOMS` has two 7 x 6 rooms
    joined by a one-cell door; the goal is in the right room, against the
    separating wall and three rows below the door, so cells that face each
    other through the wall are far apart by walking. Every move has
    probability 1/4, +1 for entering the goal, observation `(x, y)`; see
    `GridMaze` for the options (other layouts, traps, a goal-directed policy,
    reward noise, one-hot and image observations).

    With the defaults (gamma = 0.99, max_steps = 200) values run from 0.06
    (far corners of the left room) to 0.83 (beside the goal); the right room
    is worth 0.30 ... 0.83, the left room 0.06 ... 0.16 (0.29 in the door).
    Right below the goal V is 0.83 at (row 7, col 8) and 0.09 across the wall
    at (7, 6). A discount of 0.95 would leave the whole left room below 0.01.
    About 55% of the random-walk episodes reach the 200-step limit
    (truncated); the rest find the goal.
    """

    name = "maze"
    description = "Random walk in a two-room grid maze; V jumps across the wall"
