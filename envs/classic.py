"""Acrobot-v1, MountainCar-v0 and Pendulum-v1 under fixed noisy heuristic
policies, with Monte Carlo ground truth.

The three tasks share one pattern (the one of `adaptive_td.envs.CartPole`):
`collect` runs Gymnasium's own environments (`gymnasium.make_vec`, synchronous
vectorisation, next-step autoreset) and converts the streams with
`adaptive_td.rollouts.from_vector_rollout`; `evaluation_set` draws held-out
on-policy states from a separate collection and values each one by Monte
Carlo rollouts of the same policy started from its exact float64 simulator
state, run past the time limit until the rewards left out are negligible.

Gymnasium's classic-control environments step one copy at a time in Python,
which is too slow for the ~10^7 steps an oracle takes, so the rollouts use a
NumPy transcription of each environment's `step` that advances a whole batch
of states at once (`acrobot_step`, `mountain_car_step`, `pendulum_step`). The
transcriptions keep Gymnasium's operations in Gymnasium's order and dtypes;
the tests check them against the Gymnasium environments step for step (equal
next states, rewards and terminations).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.vector import AutoresetMode

from adaptive_td.data import Trajectories
from adaptive_td.envs.cartpole import _load, _save
from adaptive_td.envs.task import EvalSet, Task
from adaptive_td.rollouts import from_vector_rollout

# Bump when the oracle's algorithm changes, so cached evaluation sets are redone.
_ORACLE_VERSION = 1

# Independent random streams derived from one seed (numpy SeedSequence keys).
_COLLECT, _HELD_OUT, _SELECT, _ROLLOUTS = 0, 1, 2, 3


# ---------------------------------------------------------------------------
# Batched physics: Gymnasium's `step` for a batch of states.


def acrobot_step(
    state: np.ndarray, action: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`AcrobotEnv.step` (defaults: "book" dynamics, no torque noise) batched.

    Args:
      state: `[n, 4]` float64 `(theta1, theta2, dtheta1, dtheta2)`.
      action: `[n]` int in {0, 1, 2} (torque -1, 0, +1 on the second joint).

    Returns:
      `(next_state [n, 4], reward [n], terminated [n])`.
    """
    env = AcrobotEnv
    torque = np.asarray(env.AVAIL_TORQUE, np.float64)[action]
    y0 = np.concatenate([np.asarray(state, np.float64), torque[:, None]], axis=1)

    # One RK4 step over [0, dt], as acrobot.rk4 computes it.
    dt = env.dt - 0.0
    dt2 = dt / 2.0
    k1 = _acrobot_dsdt(y0)
    k2 = _acrobot_dsdt(y0 + dt2 * k1)
    k3 = _acrobot_dsdt(y0 + dt2 * k2)
    k4 = _acrobot_dsdt(y0 + dt * k3)
    ns = (y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4))[:, :4]

    ns[:, 0] = _wrap(ns[:, 0], -math.pi, math.pi)
    ns[:, 1] = _wrap(ns[:, 1], -math.pi, math.pi)
    ns[:, 2] = np.minimum(np.maximum(ns[:, 2], -env.MAX_VEL_1), env.MAX_VEL_1)
    ns[:, 3] = np.minimum(np.maximum(ns[:, 3], -env.MAX_VEL_2), env.MAX_VEL_2)
    terminated = -np.cos(ns[:, 0]) - np.cos(ns[:, 1] + ns[:, 0]) > 1.0
    reward = np.where(terminated, 0.0, -1.0)
    return ns, reward, terminated


def _acrobot_dsdt(y: np.ndarray) -> np.ndarray:
    env = AcrobotEnv
    m1, m2 = env.LINK_MASS_1, env.LINK_MASS_2
    l1, lc1, lc2 = env.LINK_LENGTH_1, env.LINK_COM_POS_1, env.LINK_COM_POS_2
    I1 = I2 = env.LINK_MOI
    g = 9.8
    pi = math.pi
    theta1, theta2, dtheta1, dtheta2, a = y.T
    cos, sin = np.cos, np.sin
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos(theta2)) + I1 + I2
    d2 = m2 * (lc2**2 + l1 * lc2 * cos(theta2)) + I2
    phi2 = m2 * lc2 * g * cos(theta1 + theta2 - pi / 2.0)
    phi1 = (
        -m2 * l1 * lc2 * dtheta2**2 * sin(theta2)
        - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin(theta2)
        + (m1 * lc1 + m2 * l1) * g * cos(theta1 - pi / 2)
        + phi2
    )
    ddtheta2 = (
        a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * sin(theta2) - phi2
    ) / (m2 * lc2**2 + I2 - d2**2 / d1)
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return np.stack([dtheta1, dtheta2, ddtheta1, ddtheta2, np.zeros_like(a)], 1)


def _wrap(x: np.ndarray, low: float, high: float) -> np.ndarray:
    diff = high - low
    while (x > high).any():
        x = np.where(x > high, x - diff, x)
    while (x < low).any():
        x = np.where(x < low, x + diff, x)
    return x


def acrobot_obs(state: np.ndarray) -> np.ndarray:
    """Acrobot observations `[n, 6]` float32 for simulator states `[n, 4]`."""
    s = np.asarray(state, np.float64)
    return np.stack(
        [np.cos(s[:, 0]), np.sin(s[:, 0]), np.cos(s[:, 1]), np.sin(s[:, 1])]
        + [s[:, 2], s[:, 3]],
        1,
    ).astype(np.float32)


def mountain_car_step(
    state: np.ndarray, action: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`MountainCarEnv.step` (goal_velocity = 0) batched.

    Args:
      state: `[n, 2]` float64 `(position, velocity)`.
      action: `[n]` int in {0, 1, 2} (push left, no push, push right).

    Returns:
      `(next_state [n, 2], reward [n], terminated [n])`.
    """
    force, gravity, max_speed = 0.001, 0.0025, 0.07
    min_position, max_position, goal_position = -1.2, 0.6, 0.5
    position, velocity = np.asarray(state, np.float64).T
    action = np.asarray(action, np.int64)

    velocity = velocity + ((action - 1) * force + np.cos(3 * position) * (-gravity))
    velocity = np.clip(velocity, -max_speed, max_speed)
    position = np.clip(position + velocity, min_position, max_position)
    velocity = np.where((position == min_position) & (velocity < 0), 0.0, velocity)

    terminated = (position >= goal_position) & (velocity >= 0)
    return np.stack([position, velocity], 1), np.full(len(position), -1.0), terminated


def mountain_car_obs(state: np.ndarray) -> np.ndarray:
    """MountainCar observations `[n, 2]` float32 for simulator states `[n, 2]`."""
    return np.asarray(state).astype(np.float32)


def pendulum_step(
    state: np.ndarray, action: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`PendulumEnv.step` (g = 10) batched.

    Args:
      state: `[n, 2]` float64 `(theta, theta_dot)`, theta = 0 upright.
      action: `[n, 1]` float32 torque (clipped to [-2, 2] here).

    Returns:
      `(next_state [n, 2], reward [n], terminated [n])` (never terminated).
    """
    g, m, length, dt, max_speed, max_torque = 10.0, 1.0, 1.0, 0.05, 8, 2.0
    th, thdot = np.asarray(state, np.float64).T
    # Gymnasium keeps the float32 torque as float32 in its arithmetic.
    u = np.clip(np.asarray(action, np.float32), -max_torque, max_torque)[:, 0]

    th_norm = ((th + np.pi) % (2 * np.pi)) - np.pi
    costs = th_norm**2 + 0.1 * thdot**2 + 0.001 * (u**2)
    newthdot = (
        thdot + (3 * g / (2 * length) * np.sin(th) + 3.0 / (m * length**2) * u) * dt
    )
    newthdot = np.clip(newthdot, -max_speed, max_speed)
    newth = th + newthdot * dt
    return np.stack([newth, newthdot], 1), -costs, np.zeros(len(th), bool)


def pendulum_obs(state: np.ndarray) -> np.ndarray:
    """Pendulum observations `[n, 3]` float32 for simulator states `[n, 2]`."""
    th, thdot = np.asarray(state, np.float64).T
    return np.stack([np.cos(th), np.sin(th), thdot], 1).astype(np.float32)


# ---------------------------------------------------------------------------
# Policies. Each draws the same random numbers every call, whatever the
# observations, so the random stream does not depend on the states.


@dataclasses.dataclass(frozen=True)
class AcrobotPolicy:
    """An energy-pumping Acrobot controller with epsilon-random actions.

    With probability `epsilon` the action is uniform over {0, 1, 2}; otherwise
    the torque on the second joint opposes the first joint's angular velocity,
    torque = -sign(dtheta1) (action 0 if dtheta1 > 0, else 2): its reaction on
    the first link pumps energy into the swing until the tip clears the bar.
    """

    epsilon: float = 0.2

    def __post_init__(self):
        _check_probability("AcrobotPolicy", "epsilon", self.epsilon)

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Actions `[n]` int64 for observations `[n, 6]`."""
        dtheta1 = np.asarray(obs, np.float64)[:, 4]
        explore = rng.random(len(dtheta1)) < self.epsilon
        random_action = rng.integers(0, 3, len(dtheta1))
        greedy = np.where(dtheta1 > 0, 0, 2)
        return np.where(explore, random_action, greedy).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class MountainCarPolicy:
    """Push in the direction of the velocity, with epsilon-random actions.

    With probability `epsilon` the action is uniform over {0, 1, 2}; otherwise
    push right (2) if the velocity is >= 0 and left (0) if it is negative. The
    car rocks with growing amplitude and reaches the goal in 100 to 200 steps.
    """

    epsilon: float = 0.3

    def __post_init__(self):
        _check_probability("MountainCarPolicy", "epsilon", self.epsilon)

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Actions `[n]` int64 for observations `[n, 2]`."""
        velocity = np.asarray(obs, np.float64)[:, 1]
        explore = rng.random(len(velocity)) < self.epsilon
        random_action = rng.integers(0, 3, len(velocity))
        greedy = np.where(velocity >= 0, 2, 0)
        return np.where(explore, random_action, greedy).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class PendulumPolicy:
    """A noisy energy-pumping swing-up with a PD balancer near the top.

    With theta = atan2(sin, cos) (0 upright) and E = theta_dot^2 / 2 +
    15 (cos(theta) - 1) (0 at rest upright, -30 at rest hanging; 15 = 3g/2l),
    the torque before noise is

        -k_p theta - k_d theta_dot              if cos(theta) > cos_balance,
        k_e (0 - E) theta_dot                   otherwise,

    then `noise * N(0, 1)` is added and the result clipped to [-2, 2].
    """

    k_e: float = 0.5
    k_p: float = 6.0
    k_d: float = 1.0
    cos_balance: float = 0.85
    noise: float = 1.0

    def __post_init__(self):
        if not self.noise >= 0:
            raise ValueError(f"PendulumPolicy: noise={self.noise}; expected >= 0.")

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Actions `[n, 1]` float32 for observations `[n, 3]`."""
        cos, sin, thdot = np.asarray(obs, np.float64).T
        theta = np.arctan2(sin, cos)
        energy = 0.5 * thdot**2 + 15.0 * (cos - 1.0)
        pump = self.k_e * (0.0 - energy) * thdot
        balance = -self.k_p * theta - self.k_d * thdot
        torque = np.where(cos > self.cos_balance, balance, pump)
        torque = torque + self.noise * rng.standard_normal(len(cos))
        return np.clip(torque, -2.0, 2.0).astype(np.float32)[:, None]


def _check_probability(owner, name, value):
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner}: {name}={value}; expected 0 <= {name} <= 1.")


# ---------------------------------------------------------------------------
# Tasks.


class ClassicControlTask(Task):
    """Shared machinery of the classic-control tasks; see `Acrobot`.

    Subclasses set `name`, `description`, `env_id`, `max_episode_steps`,
    `max_abs_reward`, `state_dim`, `obs_shape`, `default_gamma`, and
    `default_policy`, `physics` (the batched step) and `observe` (states to
    float32 observations).
    """

    env_id: str
    max_episode_steps: int
    max_abs_reward: float
    state_dim: int
    default_gamma: float
    default_policy: Callable[[], Callable]
    physics: Callable
    observe: Callable

    def __init__(
        self,
        gamma: float | None = None,
        policy=None,
        num_envs: int = 16,
        eval_states: int = 200,
        eval_rollouts: int = 256,
        eval_seed: int = 0,
        tol: float = 1e-3,
        cache_dir: str | os.PathLike | None = None,
        cache: bool = True,
    ):
        cls = type(self).__name__
        gamma = self.default_gamma if gamma is None else gamma
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"{cls}: gamma={gamma}; expected 0 <= gamma < 1.")
        for arg, value, low in (
            ("num_envs", num_envs, 1),
            ("eval_states", eval_states, 1),
            ("eval_rollouts", eval_rollouts, 2),
        ):
            if value < low:
                raise ValueError(f"{cls}: {arg}={value}; expected >= {low}.")
        if not tol > 0:
            raise ValueError(f"{cls}: tol={tol}; expected > 0.")

        self.gamma = gamma
        self.policy = type(self).default_policy() if policy is None else policy
        self.num_envs = num_envs
        self.eval_states = eval_states
        self.eval_rollouts = eval_rollouts
        self.eval_seed = eval_seed
        self.tol = tol
        self.cache = cache
        if cache_dir is None:
            cache_dir = os.environ.get("ADAPTIVE_TD_CACHE") or os.path.join(
                os.path.expanduser("~"), ".cache", "adaptive_td"
            )
        self.cache_dir = os.fspath(cache_dir)
        self._eval_set = None

    @property
    def horizon(self) -> int:
        """H, the oracle's rollout length: gamma^H / (1 - gamma) max|r| < tol."""
        if self.gamma == 0.0:
            return 1
        bound = self.tol * (1 - self.gamma) / self.max_abs_reward
        return max(1, math.ceil(math.log(bound) / math.log(self.gamma)))

    def collect(self, num_episodes: int, seed: int) -> Trajectories:
        """Collect about `num_episodes` episodes as streams; see `Acrobot`."""
        return self.collect_with_states(num_episodes, seed)[0]

    def collect_with_states(
        self, num_episodes: int, seed: int, *, num_envs: int | None = None
    ) -> tuple[Trajectories, np.ndarray]:
        """Like `collect`, and also return the float64 simulator states.

        Returns:
          `(trajectories, states)`, with `states` `[B, T+1, state_dim]`
          float64, the simulator state behind each observation.
        """
        if num_episodes < 1:
            raise ValueError(f"collect: num_episodes={num_episodes}; expected >= 1.")
        num_envs = self.num_envs if num_envs is None else num_envs
        return self._collect_streams(
            min(num_envs, num_episodes),
            num_episodes,
            np.random.SeedSequence([seed, _COLLECT]),
        )

    def evaluation_set(self) -> EvalSet:
        """Held-out states with Monte Carlo values; cached (see `Acrobot`)."""
        if self._eval_set is not None:
            return self._eval_set

        key, path = self._cache_key(), self.cache_path()
        eval_set = _load(path, key) if self.cache else None
        if eval_set is None:
            eval_set = self._compute_evaluation_set()
            if self.cache:
                try:
                    _save(path, key, eval_set)
                except OSError as err:
                    warnings.warn(
                        f"{type(self).__name__}: could not cache the evaluation "
                        f"set in {path} ({err}); it will be recomputed next time.",
                        stacklevel=2,
                    )
        self._eval_set = eval_set
        return eval_set

    def cache_path(self) -> str:
        """The file the evaluation set is cached in."""
        digest = hashlib.sha256(self._cache_key().encode()).hexdigest()[:20]
        return os.path.join(self.cache_dir, f"{self.name}-eval-{digest}.npz")

    def rollout_returns(
        self,
        states: np.ndarray,
        num_rollouts: int,
        seed: np.random.SeedSequence | int,
        horizon: int | None = None,
    ) -> np.ndarray:
        """Discounted returns of rollouts of the policy from simulator states.

        Runs `num_rollouts` rollouts from each state with the batched physics
        (no time limit), all `M * num_rollouts` of them in one batch: rollout
        `m * num_rollouts + r` starts from `states[m]`. Each runs `horizon`
        steps (default `self.horizon`) or until it terminates; the policy is
        called on the float32 observations of the whole batch every step, with
        `rng = np.random.default_rng(seed)`, so its random stream is that of a
        loop over `M * num_rollouts` Gymnasium environments stepped together.

        Returns:
          `[M, num_rollouts]` float64 discounted returns.
        """
        states = np.asarray(states, np.float64)
        if states.ndim != 2 or states.shape[1] != self.state_dim:
            raise ValueError(
                f"rollout_returns: states has shape {states.shape}; expected "
                f"[M, {self.state_dim}]."
            )
        horizon = self.horizon if horizon is None else horizon
        rng = np.random.default_rng(seed)

        state = np.repeat(states, num_rollouts, axis=0)
        returns = np.zeros(len(state))
        alive = np.ones(len(state), bool)
        discount = 1.0
        for _ in range(horizon):
            action = self.policy(type(self).observe(state), rng)
            state, reward, terminated = type(self).physics(state, action)
            returns += np.where(alive, discount * reward, 0.0)
            alive &= ~terminated
            discount *= self.gamma
            if not alive.any():
                break
        return returns.reshape(len(states), num_rollouts)

    def _cache_key(self) -> str:
        return json.dumps(
            {
                "task": self.name,
                "oracle_version": _ORACLE_VERSION,
                "gymnasium": gym.__version__,
                "policy": dataclasses.asdict(self.policy),
                "gamma": self.gamma,
                "seed": self.eval_seed,
                "states": self.eval_states,
                "rollouts": self.eval_rollouts,
                "horizon": self.horizon,
                "max_episode_steps": self.max_episode_steps,
            },
            sort_keys=True,
        )

    def _compute_evaluation_set(self) -> EvalSet:
        # Held-out data: enough episodes that states come from many of them.
        num_envs = min(16, self.eval_states)
        traj, states = self._collect_streams(
            num_envs,
            max(num_envs, self.eval_states // 4),
            np.random.SeedSequence([self.eval_seed, _HELD_OUT]),
        )
        valid = np.argwhere(traj.mask)
        if len(valid) < self.eval_states:
            raise RuntimeError(
                f"{type(self).__name__}: only {len(valid)} held-out steps for "
                f"{self.eval_states} states."
            )
        rng = np.random.default_rng(np.random.SeedSequence([self.eval_seed, _SELECT]))
        rows, steps = valid[rng.choice(len(valid), self.eval_states, replace=False)].T
        start = states[rows, steps]

        returns = self.rollout_returns(
            start,
            self.eval_rollouts,
            np.random.SeedSequence([self.eval_seed, _ROLLOUTS]),
        )
        return EvalSet(
            observations=np.asarray(traj.observations[rows, steps], np.float32),
            values=returns.mean(1),
            stderr=returns.std(1, ddof=1) / np.sqrt(self.eval_rollouts),
            labels=start,
        )

    def _collect_streams(
        self, num_envs: int, num_episodes: int, seed: np.random.SeedSequence
    ) -> tuple[Trajectories, np.ndarray]:
        """Step `num_envs` copies until `num_episodes` episodes ended; one row each."""
        env = gym.make_vec(
            self.env_id,
            num_envs=num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.NEXT_STEP},
            max_episode_steps=self.max_episode_steps,
        )
        obs, _ = env.reset(seed=int(seed.generate_state(1)[0]))
        rng = np.random.default_rng(seed)

        def sim_states():
            return np.stack(
                [np.asarray(e.unwrapped.state, np.float64) for e in env.envs]
            )

        observations, states = [obs], [sim_states()]
        rewards, terminated, truncated, actions = [], [], [], []
        ended = 0
        while ended < num_episodes:
            action = self.policy(obs, rng)
            obs, reward, term, trunc, _ = env.step(action)
            observations.append(obs)
            states.append(sim_states())
            rewards.append(reward)
            terminated.append(term)
            truncated.append(trunc & ~term)
            actions.append(action)
            ended += int((term | trunc).sum())
        env.close()

        traj = from_vector_rollout(
            np.stack(observations).astype(np.float32),
            np.stack(rewards).astype(np.float32),
            np.stack(terminated),
            np.stack(truncated),
            autoreset_mode=AutoresetMode.NEXT_STEP,
            actions=np.stack(actions),
        )
        return traj, np.stack(states, 1)


class Acrobot(ClassicControlTask):
    """Gymnasium's Acrobot-v1 under a noisy energy-pumping policy.

    ## Environment

    Acrobot-v1 ("book" dynamics, RK4 with dt = 0.2, no torque noise): reward
    -1 on every step that does not reach the goal and 0 on the step that does
    (tip above the bar: -cos(theta1) - cos(theta1 + theta2) > 1), which
    terminates; a 500-step time limit. Simulator state `(theta1, theta2,
    dtheta1, dtheta2)`, float64 (float32 right after a reset); observation
    `(cos theta1, sin theta1, cos theta2, sin theta2, dtheta1, dtheta2)`
    float32, shape `(6,)`.

    ## Policy

    `AcrobotPolicy`: torque -sign(dtheta1), and with probability epsilon = 0.2
    a uniformly random action. Episodes reach the goal in about 100 steps
    (all 50 of a 50-episode sample; none hits the time limit).

    ## Discount

    gamma = 0.99 (effective horizon 100 steps, the length of an episode), so
    values spread over most of [-1/(1 - gamma), 0] = [-100, 0]; with 0.98
    they would crowd near -50. H = 1146, max|r| = 1.

    ## Data layout (`collect`)

    `gymnasium.make_vec(env_id, vectorization_mode="sync")` with next-step
    autoreset, converted by `adaptive_td.rollouts.from_vector_rollout`: one
    row per environment copy, holding that copy's stream of episodes; the
    reset step after every episode end is masked out, and the last step of a
    row cuts the running episode with neither flag. `collect(num_episodes,
    seed)` runs `min(num_envs, num_episodes)` copies in lockstep until at least
    `num_episodes` episodes have ended across all copies; every row gets the
    same number of steps T. Actions are stored. The same seed gives the same
    batch. The time limit is `truncated`, never `terminated` (when both happen
    on one step it is stored as terminated only); it is not part of the
    evaluated MDP, so a truncated step bootstraps.

    ## Ground truth (`evaluation_set`)

    `eval_states` held-out on-policy states: a separate data set is collected
    like `collect` does, from `eval_seed` (on a random stream disjoint from
    every `collect` seed), and states are drawn uniformly without replacement
    among its valid steps. Their float64 simulator states (`env.unwrapped.
    state`) are kept, so the rollouts start from exactly the visited state.
    Each value is the mean discounted return of `eval_rollouts` rollouts of the
    same policy from that state, all advanced together by the batched NumPy
    physics of this module (no time limit; see the module docstring for why
    and how it is checked). Each rollout runs for

        H = ceil(log(tol (1 - gamma) / max|r|) / log(gamma))

    steps or until it terminates, so the rewards it leaves out sum to at most
    gamma^H max|r| / (1 - gamma) < tol (1e-3 by default, in reward units),
    negligible next to the standard errors. `stderr` is the sample standard
    deviation (ddof=1) over rollouts divided by sqrt(eval_rollouts). The
    policy sees float32 observations here as in `collect`. `labels` are the
    float64 simulator states `[M, state_dim]`.

    The evaluation set is cached as `.npz` in `cache_dir` (default: the
    environment variable `ADAPTIVE_TD_CACHE`, else `~/.cache/adaptive_td`)
    under a hash of the task name, policy, gamma, seed, sizes, horizon and the
    Gymnasium version, written to a temporary name and renamed (CartPole's
    cache format and code); an unreadable file is recomputed.

    With the defaults (200 states, 256 rollouts) the values run from -64.2 to
    0.0, quartiles -51.1, -38.8, -25.6; the median standard error is 0.60
    (max 1.18). Computing them takes about 13 s on two CPU cores.

    Args:
      gamma: the discount, in [0, 1); None for the task's default.
      policy: the evaluated policy; None for the default one.
      num_envs: how many environment copies (rows) `collect` runs.
      eval_states: M, the number of held-out states.
      eval_rollouts: rollouts per held-out state.
      eval_seed: the seed of the held-out data and of the rollouts.
      tol: the bound on the discounted rewards the rollouts leave out.
      cache_dir: where to cache the evaluation set; see above.
      cache: False to neither read nor write the cache.
    """

    name = "acrobot"
    description = "Acrobot-v1 under a noisy energy-pumping policy (Monte Carlo values)"
    env_id = "Acrobot-v1"
    max_episode_steps = 500
    max_abs_reward = 1.0
    state_dim = 4
    obs_shape = (6,)
    default_gamma = 0.99
    default_policy = AcrobotPolicy
    physics = staticmethod(acrobot_step)
    observe = staticmethod(acrobot_obs)


class MountainCar(ClassicControlTask):
    """Gymnasium's MountainCar-v0 under a noisy push-with-velocity policy.

    ## Environment

    MountainCar-v0: reward -1 on every step; termination when position >= 0.5
    (with velocity >= 0); a 200-step time limit. Simulator state and
    observation `(position, velocity)`, float64 and float32, shape `(2,)`.

    ## Policy

    `MountainCarPolicy`: push in the direction of the velocity, and with
    probability epsilon = 0.3 a uniformly random action. In a 50-episode
    sample 45 episodes reach the goal and 5 hit the time limit.

    ## Discount

    gamma = 0.99: the goal is 80 to 200 steps away, about the effective
    horizon 1/(1 - gamma) = 100, so values spread over [-100, 0] instead of
    saturating. H = 1146, max|r| = 1.

    ## Data layout (`collect`)

    `gymnasium.make_vec(env_id, vectorization_mode="sync")` with next-step
    autoreset, converted by `adaptive_td.rollouts.from_vector_rollout`: one
    row per environment copy, holding that copy's stream of episodes; the
    reset step after every episode end is masked out, and the last step of a
    row cuts the running episode with neither flag. `collect(num_episodes,
    seed)` runs `min(num_envs, num_episodes)` copies in lockstep until at least
    `num_episodes` episodes have ended across all copies; every row gets the
    same number of steps T. Actions are stored. The same seed gives the same
    batch. The time limit is `truncated`, never `terminated` (when both happen
    on one step it is stored as terminated only); it is not part of the
    evaluated MDP, so a truncated step bootstraps.

    ## Ground truth (`evaluation_set`)

    `eval_states` held-out on-policy states: a separate data set is collected
    like `collect` does, from `eval_seed` (on a random stream disjoint from
    every `collect` seed), and states are drawn uniformly without replacement
    among its valid steps. Their float64 simulator states (`env.unwrapped.
    state`) are kept, so the rollouts start from exactly the visited state.
    Each value is the mean discounted return of `eval_rollouts` rollouts of the
    same policy from that state, all advanced together by the batched NumPy
    physics of this module (no time limit; see the module docstring for why
    and how it is checked). Each rollout runs for

        H = ceil(log(tol (1 - gamma) / max|r|) / log(gamma))

    steps or until it terminates, so the rewards it leaves out sum to at most
    gamma^H max|r| / (1 - gamma) < tol (1e-3 by default, in reward units),
    negligible next to the standard errors. `stderr` is the sample standard
    deviation (ddof=1) over rollouts divided by sqrt(eval_rollouts). The
    policy sees float32 observations here as in `collect`. `labels` are the
    float64 simulator states `[M, state_dim]`.

    The evaluation set is cached as `.npz` in `cache_dir` (default: the
    environment variable `ADAPTIVE_TD_CACHE`, else `~/.cache/adaptive_td`)
    under a hash of the task name, policy, gamma, seed, sizes, horizon and the
    Gymnasium version, written to a temporary name and renamed (CartPole's
    cache format and code); an unreadable file is recomputed.

    With the defaults (200 states, 256 rollouts) the values run from -84.3 to
    -3.0, quartiles -72.5, -54.6, -32.8; the median standard error is 0.09
    (max 1.2). Computing them takes about 0.5 s.

    Args:
      gamma: the discount, in [0, 1); None for the task's default.
      policy: the evaluated policy; None for the default one.
      num_envs: how many environment copies (rows) `collect` runs.
      eval_states: M, the number of held-out states.
      eval_rollouts: rollouts per held-out state.
      eval_seed: the seed of the held-out data and of the rollouts.
      tol: the bound on the discounted rewards the rollouts leave out.
      cache_dir: where to cache the evaluation set; see above.
      cache: False to neither read nor write the cache.
    """

    name = "mountain_car"
    description = "MountainCar-v0 under a noisy push-with-velocity policy (MC values)"
    env_id = "MountainCar-v0"
    max_episode_steps = 200
    max_abs_reward = 1.0
    state_dim = 2
    obs_shape = (2,)
    default_gamma = 0.99
    default_policy = MountainCarPolicy
    physics = staticmethod(mountain_car_step)
    observe = staticmethod(mountain_car_obs)


class Pendulum(ClassicControlTask):
    """Gymnasium's Pendulum-v1 (continuous torque) under a noisy swing-up controller.

    ## Environment

    Pendulum-v1 (g = 10): reward -(theta^2 + 0.1 theta_dot^2 + 0.001 u^2)
    with theta normalised to [-pi, pi), so max|r| = pi^2 + 6.4 + 0.004; it
    never terminates; a 200-step time limit, so every episode is truncated.
    Simulator state `(theta, theta_dot)` float64, theta = 0 upright;
    observation `(cos theta, sin theta, theta_dot)` float32, shape `(3,)`;
    action `[1]` float32 torque in [-2, 2].

    ## Policy

    `PendulumPolicy`: energy pumping far from the top, a soft PD balancer
    (k_p = 6, k_d = 1) when cos(theta) > 0.85, Gaussian noise of standard
    deviation 1 on the torque, clipped to [-2, 2]. The balancer is too weak
    for the noise to hold the pendulum up for long, so the pendulum keeps
    falling and swinging back up, and values vary widely across states.

    ## Discount

    gamma = 0.98 (effective horizon 50 steps = 2.5 s, about one swing-up).
    H = 674.

    ## Data layout (`collect`)

    `gymnasium.make_vec(env_id, vectorization_mode="sync")` with next-step
    autoreset, converted by `adaptive_td.rollouts.from_vector_rollout`: one
    row per environment copy, holding that copy's stream of episodes; the
    reset step after every episode end is masked out, and the last step of a
    row cuts the running episode with neither flag. `collect(num_episodes,
    seed)` runs `min(num_envs, num_episodes)` copies in lockstep until at least
    `num_episodes` episodes have ended across all copies; every row gets the
    same number of steps T. Actions are stored. The same seed gives the same
    batch. The time limit is `truncated`, never `terminated` (when both happen
    on one step it is stored as terminated only); it is not part of the
    evaluated MDP, so a truncated step bootstraps.

    ## Ground truth (`evaluation_set`)

    `eval_states` held-out on-policy states: a separate data set is collected
    like `collect` does, from `eval_seed` (on a random stream disjoint from
    every `collect` seed), and states are drawn uniformly without replacement
    among its valid steps. Their float64 simulator states (`env.unwrapped.
    state`) are kept, so the rollouts start from exactly the visited state.
    Each value is the mean discounted return of `eval_rollouts` rollouts of the
    same policy from that state, all advanced together by the batched NumPy
    physics of this module (no time limit; see the module docstring for why
    and how it is checked). Each rollout runs for

        H = ceil(log(tol (1 - gamma) / max|r|) / log(gamma))

    steps or until it terminates, so the rewards it leaves out sum to at most
    gamma^H max|r| / (1 - gamma) < tol (1e-3 by default, in reward units),
    negligible next to the standard errors. `stderr` is the sample standard
    deviation (ddof=1) over rollouts divided by sqrt(eval_rollouts). The
    policy sees float32 observations here as in `collect`. `labels` are the
    float64 simulator states `[M, state_dim]`.

    The evaluation set is cached as `.npz` in `cache_dir` (default: the
    environment variable `ADAPTIVE_TD_CACHE`, else `~/.cache/adaptive_td`)
    under a hash of the task name, policy, gamma, seed, sizes, horizon and the
    Gymnasium version, written to a temporary name and renamed (CartPole's
    cache format and code); an unreadable file is recomputed.

    With the defaults (200 states, 256 rollouts) the values run from -177.7
    to -22.1, quartiles -86.4, -38.3, -27.0; the median standard error is
    1.37 (max 2.1). Computing them takes about 3 s.

    Args:
      gamma: the discount, in [0, 1); None for the task's default.
      policy: the evaluated policy; None for the default one.
      num_envs: how many environment copies (rows) `collect` runs.
      eval_states: M, the number of held-out states.
      eval_rollouts: rollouts per held-out state.
      eval_seed: the seed of the held-out data and of the rollouts.
      tol: the bound on the discounted rewards the rollouts leave out.
      cache_dir: where to cache the evaluation set; see above.
      cache: False to neither read nor write the cache.
    """

    name = "pendulum"
    description = "Pendulum-v1 under a noisy swing-up controller (Monte Carlo values)"
    env_id = "Pendulum-v1"
    max_episode_steps = 200
    max_abs_reward = math.pi**2 + 0.1 * 8**2 + 0.001 * 2**2
    state_dim = 2
    obs_shape = (3,)
    default_gamma = 0.98
    default_policy = PendulumPolicy
    physics = staticmethod(pendulum_step)
    observe = staticmethod(pendulum_obs)
