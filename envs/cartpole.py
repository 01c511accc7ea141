"""CartPole-v1 under a noisy balancing policy, with Monte Carlo ground truth."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import warnings
import zipfile

import gymnasium as gym
import numpy as np

from adaptive_td.data import Trajectories
from adaptive_td.envs.task import EvalSet, Task

# Bump when the oracle's algorithm changes, so cached evaluation sets are redone.
_ORACLE_VERSION = 1

# Independent random streams derived from one seed (numpy SeedSequence keys).
_COLLECT, _HELD_OUT, _SELECT, _ROLLOUTS = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class BalancingPolicy:
    """A noisy linear balancing controller for CartPole.

    With probability `epsilon` the action is uniform over {left, right};
    otherwise the cart is pushed right (action 1) iff

        theta + k_theta_dot * theta_dot + k_x * x + k_x_dot * x_dot > 0,

    where `(x, x_dot, theta, theta_dot)` is the float32 observation. The
    random action is drawn every step whether or not it is used, so the random
    stream does not depend on the states.
    """

    epsilon: float = 0.3
    k_theta_dot: float = 0.5
    k_x: float = 0.0
    k_x_dot: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(
                f"BalancingPolicy: epsilon={self.epsilon}; expected 0 <= epsilon <= 1."
            )

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Actions `[n]` int64 for observations `[n, 4]`."""
        x, x_dot, theta, theta_dot = np.asarray(obs, np.float64).T
        push = (
            theta + self.k_theta_dot * theta_dot + self.k_x * x + self.k_x_dot * x_dot
        )
        explore = rng.random(len(push)) < self.epsilon
        random_action = rng.integers(0, 2, len(push))
        return np.where(explore, random_action, push > 0).astype(np.int64)


class CartPole(Task):
    """Gymnasium's CartPole-v1 under a fixed noisy balancing policy.

    ## Environment

    `gymnasium.make_vec("CartPole-v1", vectorization_mode="vector_entry_point")`,
    the NumPy-vectorised `CartPoleVectorEnv`: reward 1 on every step (the
    terminating one included), termination when |theta| > 12 degrees or
    |x| > 2.4, a 500-step time limit, and next-step autoreset (after a done
    step the next `step` ignores the action and returns the reset observation
    with reward 0 and no flags).

    ## Policy

    `BalancingPolicy`: push right iff theta + 0.5 theta_dot > 0, except that
    with probability epsilon = 0.3 the action is uniform at random. The pole
    rarely falls; most episodes that end early end because the cart drifts
    past |x| = 2.4.

    ## Observation

    `(x, x_dot, theta, theta_dot)` as float32, shape `(4,)`; it is the
    simulator state rounded to float32.

    ## Episode end

    Pole or cart out of bounds: `terminated`. The 500-step time limit:
    `truncated` (never terminated; when both happen on one step it is stored
    as terminated only). The time limit is not part of the evaluated MDP: V^pi
    is the value of the time-unlimited process, so a truncated step bootstraps.

    ## Data layout (`collect`)

    One row per vector-environment copy, holding that copy's stream of
    episodes. The reset step after every episode end is masked out (it is the
    transition from the last observation to the reset observation), and the
    last step of a row cuts the running episode with neither flag.
    `collect(num_episodes, seed)` runs `min(num_envs, num_episodes)` copies in
    lockstep until at least `num_episodes` episodes have ended (terminated or
    truncated) across all copies, then stops; every row gets the same number
    of steps T. The batch therefore holds `num_episodes` (or a few more)
    complete episodes plus one partial episode per row. The same seed gives
    the same batch.

    ## Ground truth (`evaluation_set`)

    `eval_states` held-out on-policy states: a separate data set is collected
    like `collect` does, from `eval_seed` (on a random stream disjoint from
    every `collect` seed), and states are drawn uniformly without replacement
    among its valid steps. Their float64 simulator states are kept, so the
    restarts below start from exactly the visited state (not from its float32
    observation). Each value is the mean discounted return of `eval_rollouts`
    rollouts of the same policy from that state, run in one
    `CartPoleVectorEnv` of `eval_states * eval_rollouts` copies with the time
    limit lifted. Each rollout runs for H = ceil(log(tol (1 - gamma)) /
    log(gamma)) steps or until it terminates: the rewards it leaves out sum to
    at most gamma^H / (1 - gamma) < tol (1e-4 by default), which is negligible
    next to the standard errors. `stderr` is the sample standard deviation
    (ddof=1) over rollouts divided by sqrt(eval_rollouts); it is 0 where all
    rollouts return the same (none falls within H steps, or all fall on the
    same step). The policy sees float32 observations here as in `collect`.
    `labels` are the float64 simulator states `[M, 4]`.

    The evaluation set is cached as `.npz` in `cache_dir` (default: the
    environment variable `ADAPTIVE_TD_CACHE`, else `~/.cache/adaptive_td`),
    under a hash of the task name, policy, gamma, seed, sizes, horizon and the
    Gymnasium version; the file is written to a temporary name and renamed, so
    an interrupted run never leaves a partial file.

    With the defaults (gamma = 0.98, so 1 / (1 - gamma) = 50; H = 650) about
    80% of the episodes end in a fall (85% of those by the cart leaving the
    track) and 20% at the time limit. The held-out values run from 1.0 (about
    to fall) to 49.8, median 48.4, with a quarter of the states below 45; the
    median standard error is 0.44. Computing them takes about half a second.

    Args:
      gamma: the discount, in [0, 1).
      policy: the evaluated policy.
      num_envs: how many environment copies (rows) `collect` runs.
      eval_states: M, the number of held-out states.
      eval_rollouts: rollouts per held-out state.
      eval_seed: the seed of the held-out data and of the rollouts.
      tol: the bound on the discounted rewards the rollouts leave out.
      cache_dir: where to cache the evaluation set; see above.
      cache: False to neither read nor write the cache.
    """

    name = "cartpole"
    description = "CartPole-v1 under a noisy balancing policy (Monte Carlo values)"
    max_episode_steps = 500

    def __init__(
        self,
        gamma: float = 0.98,
        policy: BalancingPolicy | None = None,
        num_envs: int = 16,
        eval_states: int = 200,
        eval_rollouts: int = 64,
        eval_seed: int = 0,
        tol: float = 1e-4,
        cache_dir: str | os.PathLike | None = None,
        cache: bool = True,
    ):
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"CartPole: gamma={gamma}; expected 0 <= gamma < 1.")
        for arg, value, low in (
            ("num_envs", num_envs, 1),
            ("eval_states", eval_states, 1),
            ("eval_rollouts", eval_rollouts, 2),
        ):
            if value < low:
                raise ValueError(f"CartPole: {arg}={value}; expected >= {low}.")
        if not tol > 0:
            raise ValueError(f"CartPole: tol={tol}; expected > 0.")

        self.gamma = gamma
        self.policy = BalancingPolicy() if policy is None else policy
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
        self.obs_shape = (4,)
        self._eval_set = None

    @property
    def horizon(self) -> int:
        """H, the rollout length of the oracle (see the class docstring)."""
        if self.gamma == 0.0:
            return 1
        return max(
            1, math.ceil(math.log(self.tol * (1 - self.gamma)) / math.log(self.gamma))
        )

    def collect(self, num_episodes: int, seed: int) -> Trajectories:
        """Collect about `num_episodes` episodes as streams; see the class docstring."""
        return self.collect_with_states(num_episodes, seed)[0]

    def collect_with_states(
        self, num_episodes: int, seed: int, *, num_envs: int | None = None
    ) -> tuple[Trajectories, np.ndarray]:
        """Like `collect`, and also return the float64 simulator states.

        Returns:
          `(trajectories, states)`, with `states` `[B, T+1, 4]` float64, the
          simulator state behind each observation.
        """
        if num_episodes < 1:
            raise ValueError(f"collect: num_episodes={num_episodes}; expected >= 1.")
        num_envs = self.num_envs if num_envs is None else num_envs
        return _collect_streams(
            self.policy,
            min(num_envs, num_episodes),
            num_episodes,
            np.random.SeedSequence([seed, _COLLECT]),
            self.max_episode_steps,
        )

    def evaluation_set(self) -> EvalSet:
        """Held-out states with Monte Carlo values; cached (see the class docstring)."""
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
                        f"CartPole: could not cache the evaluation set in {path} "
                        f"({err}); it will be recomputed next time.",
                        stacklevel=2,
                    )
        self._eval_set = eval_set
        return eval_set

    def cache_path(self) -> str:
        """The file the evaluation set is cached in."""
        digest = hashlib.sha256(self._cache_key().encode()).hexdigest()[:20]
        return os.path.join(self.cache_dir, f"{self.name}-eval-{digest}.npz")

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
        traj, states = _collect_streams(
            self.policy,
            num_envs,
            max(num_envs, self.eval_states // 2),
            np.random.SeedSequence([self.eval_seed, _HELD_OUT]),
            self.max_episode_steps,
        )
        valid = np.argwhere(traj.mask)
        if len(valid) < self.eval_states:
            raise RuntimeError(
                f"CartPole: only {len(valid)} held-out steps for "
                f"{self.eval_states} states."
            )
        rng = np.random.default_rng(np.random.SeedSequence([self.eval_seed, _SELECT]))
        rows, steps = valid[rng.choice(len(valid), self.eval_states, replace=False)].T
        start = states[rows, steps]

        values, stderr = rollout_values(
            self.policy,
            start,
            self.eval_rollouts,
            self.gamma,
            self.horizon,
            np.random.SeedSequence([self.eval_seed, _ROLLOUTS]),
        )
        return EvalSet(
            observations=np.asarray(traj.observations[rows, steps], np.float32),
            values=values,
            stderr=stderr,
            labels=start,
        )


def rollout_values(
    policy: BalancingPolicy,
    states: np.ndarray,
    num_rollouts: int,
    gamma: float,
    horizon: int,
    seed: np.random.SeedSequence | int,
) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo values of CartPole simulator states under `policy`.

    Runs `num_rollouts` rollouts from each state, all in one
    `CartPoleVectorEnv` with the time limit lifted, for `horizon` steps or
    until termination, and sums the discounted rewards.

    Args:
      policy: the policy to evaluate.
      states: `[M, 4]` float64 simulator states `(x, x_dot, theta, theta_dot)`.
      num_rollouts: R, rollouts per state (at least 2).
      gamma: the discount.
      horizon: H, the number of steps per rollout.
      seed: seeds the environment and the policy.

    Returns:
      `(values, stderr)`, each `[M]` float64: the mean return over rollouts and
      its standard error (ddof=1).
    """
    states = np.asarray(states, np.float64)
    if states.ndim != 2 or states.shape[1] != 4:
        raise ValueError(
            f"rollout_values: states has shape {states.shape}; expected [M, 4]."
        )
    if num_rollouts < 2:
        raise ValueError(f"rollout_values: num_rollouts={num_rollouts}; expected >= 2.")

    seed = np.random.SeedSequence(seed) if isinstance(seed, int) else seed
    num_states, n = states.shape[0], states.shape[0] * num_rollouts
    env = gym.make_vec(
        "CartPole-v1",
        num_envs=n,
        vectorization_mode="vector_entry_point",
        max_episode_steps=np.iinfo(np.int32).max,
    )
    env.reset(seed=int(seed.generate_state(1)[0]))
    sim = env.unwrapped
    # Restore the states: each state repeated num_rollouts times, fresh counters.
    sim.state = np.repeat(states, num_rollouts, axis=0).T.copy()
    sim.steps[:] = 0
    sim.prev_done[:] = False
    obs = sim.state.T.astype(np.float32)
    rng = np.random.default_rng(seed)

    returns = np.zeros(n)
    alive = np.ones(n, bool)
    discount = 1.0
    for _ in range(horizon):
        obs, reward, terminated, truncated, _ = env.step(policy(obs, rng))
        returns += np.where(alive, discount * reward.astype(np.float64), 0.0)
        alive &= ~terminated
        discount *= gamma
        if not alive.any():
            break
    env.close()

    returns = returns.reshape(num_states, num_rollouts)
    return returns.mean(1), returns.std(1, ddof=1) / np.sqrt(num_rollouts)


def _collect_streams(
    policy: BalancingPolicy,
    num_envs: int,
    num_episodes: int,
    seed: np.random.SeedSequence,
    max_episode_steps: int,
) -> tuple[Trajectories, np.ndarray]:
    """Step `num_envs` copies until `num_episodes` episodes ended; one row each."""
    env = gym.make_vec(
        "CartPole-v1",
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        max_episode_steps=max_episode_steps,
    )
    obs, _ = env.reset(seed=int(seed.generate_state(1)[0]))
    sim = env.unwrapped
    rng = np.random.default_rng(seed)

    observations, states = [obs], [sim.state.T.copy()]
    rewards, terminated, truncated, mask = [], [], [], []
    resetting = np.zeros(num_envs, bool)
    ended = 0
    while ended < num_episodes:
        obs, reward, term, trunc, _ = env.step(policy(obs, rng))
        observations.append(obs)
        states.append(sim.state.T.copy())
        rewards.append(reward)
        terminated.append(term)
        truncated.append(trunc & ~term)
        mask.append(~resetting)
        resetting = term | trunc
        ended += int(resetting.sum())
    env.close()

    traj = Trajectories(
        observations=np.stack(observations, 1).astype(np.float32),
        rewards=np.stack(rewards, 1).astype(np.float32),
        terminated=np.stack(terminated, 1),
        truncated=np.stack(truncated, 1),
        mask=np.stack(mask, 1),
    )
    return traj.validate(), np.stack(states, 1)


def _load(path: str, key: str) -> EvalSet | None:
    """Read a cached evaluation set; None if absent, unreadable or for another key."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            return EvalSet(
                observations=data["observations"],
                values=data["values"],
                stderr=data["stderr"],
                labels=data["labels"],
            )
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def _save(path: str, key: str, eval_set: EvalSet) -> None:
    """Write atomically: a temporary file in the same folder, then a rename."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                key=np.asarray(key),
                observations=eval_set.observations,
                values=eval_set.values,
                stderr=eval_set.stderr,
                labels=eval_set.labels,
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
