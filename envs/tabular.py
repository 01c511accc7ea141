"""Finite Markov chains induced by a fixed policy: exact values and sampling.

A `TabularMDP` holds the state-to-state dynamics of an MDP under the
evaluated policy (the actions are already averaged out). States are
0 ... S-1; index S is one shared absorbing terminal state. Exact values solve
the Bellman equation in float64,

    V = r_pi + gamma P_SS V,   r_pi(s) = sum_s' P(s, s') R(s, s'),

where P_SS is P without its terminal column (the terminal state is worth 0).
Sampling runs in JAX: `lax.scan` over time, `vmap` over episodes (and over
seeds with `sample_seeds`), jitted.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from adaptive_td.data import Trajectories
from adaptive_td.envs.task import EvalSet, Task


@dataclasses.dataclass(frozen=True, eq=False)
class TabularMDP:
    """A finite chain under a fixed policy, with one absorbing terminal state.

    Attributes:
      transitions: `[S, S+1]` float64, P(s, s'); column S is the terminal
        state. Rows sum to 1.
      rewards: `[S, S+1]` float64, R(s, s'), the reward received on s -> s'.
      start: `[S]` float64, the start-state distribution.
      features: `[S, *obs_shape]` float32, the observation of each state
        (`[S, d]` for vectors, `[S, H, W, C]` for images).
      terminal_feature: `[*obs_shape]` float32, the observation given for the
        terminal state (padding after termination uses it too); its value is
        ignored.
      reward_noise: the standard deviation of zero-mean Gaussian noise added
        to every sampled reward (0, the default, samples exact rewards). The
        noise does not change the expected rewards, so `exact_values` ignores
        it.
    """

    transitions: np.ndarray
    rewards: np.ndarray
    start: np.ndarray
    features: np.ndarray
    terminal_feature: np.ndarray
    reward_noise: float = 0.0

    def __post_init__(self):
        p = np.asarray(self.transitions, np.float64)
        if p.ndim != 2 or p.shape[1] != p.shape[0] + 1:
            raise ValueError(
                f"TabularMDP: transitions has shape {p.shape}; expected [S, S+1] "
                "(the last column is the terminal state)."
            )
        num_states = p.shape[0]
        r = np.asarray(self.rewards, np.float64)
        if r.shape != p.shape:
            raise ValueError(
                f"TabularMDP: rewards has shape {r.shape}; expected {p.shape} like "
                "transitions."
            )
        if np.any(p < 0) or not np.allclose(p.sum(1), 1.0, atol=1e-10):
            raise ValueError(
                "TabularMDP: transitions must be non-negative with rows summing to "
                f"1; row sums are {np.round(p.sum(1), 12).tolist()}."
            )
        if not np.all(np.isfinite(r)):
            raise ValueError("TabularMDP: rewards must be finite.")
        start = np.asarray(self.start, np.float64)
        if start.shape != (num_states,):
            raise ValueError(
                f"TabularMDP: start has shape {start.shape}; expected ({num_states},)."
            )
        if np.any(start < 0) or not np.isclose(start.sum(), 1.0, atol=1e-10):
            raise ValueError(
                "TabularMDP: start must be a probability vector; it sums to "
                f"{start.sum()}."
            )
        feats = np.asarray(self.features, np.float32)
        if feats.ndim < 2 or feats.shape[0] != num_states:
            raise ValueError(
                f"TabularMDP: features has shape {feats.shape}; expected "
                f"[S, *obs_shape] = ({num_states}, ...) with at least one "
                "observation axis."
            )
        term = np.asarray(self.terminal_feature, np.float32)
        if term.shape != feats.shape[1:]:
            raise ValueError(
                f"TabularMDP: terminal_feature has shape {term.shape}; expected "
                f"{feats.shape[1:]} like one row of features."
            )
        if not (np.all(np.isfinite(feats)) and np.all(np.isfinite(term))):
            raise ValueError("TabularMDP: features must be finite.")
        if not (np.isfinite(self.reward_noise) and self.reward_noise >= 0):
            raise ValueError(
                f"TabularMDP: reward_noise={self.reward_noise}; expected a finite "
                "standard deviation >= 0."
            )
        for name, value in (
            ("transitions", p),
            ("rewards", r),
            ("start", start),
            ("features", feats),
            ("terminal_feature", term),
        ):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def num_states(self) -> int:
        """S, the number of non-terminal states."""
        return self.transitions.shape[0]

    @property
    def expected_rewards(self) -> np.ndarray:
        """r_pi(s) = sum_s' P(s, s') R(s, s'), `[S]` float64."""
        return np.sum(self.transitions * self.rewards, axis=1)

    def exact_values(self, gamma: float) -> np.ndarray:
        """Solve (I - gamma P_SS) V = r_pi in float64; return V, `[S]`.

        Raises:
          ValueError: if gamma is outside [0, 1], or the system is singular
            (gamma = 1 and some state never reaches the terminal state).
        """
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"exact_values: gamma={gamma}; expected 0 <= gamma <= 1.")

        a = np.eye(self.num_states) - gamma * self.transitions[:, :-1]
        try:
            return np.linalg.solve(a, self.expected_rewards)
        except np.linalg.LinAlgError as err:
            raise ValueError(
                f"exact_values: I - gamma P is singular for gamma={gamma}; with "
                "gamma = 1 every state must reach the terminal state."
            ) from err

    def sample_with_states(
        self, key: jax.Array, num_episodes: int, max_steps: int
    ) -> tuple[Trajectories, np.ndarray]:
        """Like `sample`, and also return the state indices.

        Returns:
          `(trajectories, states)`, where `states` is `[B, T+1]` int32 with the
          index of s_t at position t; S (the terminal index) marks the
          terminal state and the padding after it.
        """
        if num_episodes < 1 or max_steps < 1:
            raise ValueError(
                f"sample: num_episodes={num_episodes}, max_steps={max_steps}; "
                "both must be at least 1."
            )

        sampled = _sample(
            key, *self._tables(), num_episodes=num_episodes, max_steps=max_steps
        )
        return self._batch(key, *sampled)

    def sample_seeds(
        self, keys: jax.Array, num_episodes: int, max_steps: int
    ) -> list[Trajectories]:
        """`sample` for each key of `keys` `[S]`, all seeds in one vmapped call.

        Element i equals `sample(keys[i], num_episodes, max_steps)`.
        """
        if num_episodes < 1 or max_steps < 1:
            raise ValueError(
                f"sample: num_episodes={num_episodes}, max_steps={max_steps}; "
                "both must be at least 1."
            )
        draw = functools.partial(
            _sample, num_episodes=num_episodes, max_steps=max_steps
        )
        tables = self._tables()
        states, rewards, observations = jax.vmap(
            draw, in_axes=(0, *[None] * len(tables))
        )(keys, *tables)
        return [
            self._batch(keys[i], states[i], rewards[i], observations[i])[0]
            for i in range(len(keys))
        ]

    def _tables(self):
        """The sampler's device arrays: log-probabilities, rewards, features."""
        return (
            jnp.asarray(_logits(self.transitions)),
            jnp.asarray(_logits(self.start)),
            jnp.asarray(_terminal_rows(self.rewards, np.float32)),
            jnp.asarray(np.vstack([self.features, self.terminal_feature[None]])),
        )

    def _batch(self, key, states, rewards, observations):
        """Flags, mask and reward noise for sampled states: (batch, states)."""
        if self.reward_noise > 0:
            # A key of its own, so the states match the noiseless chain's.
            noise = jax.random.normal(
                jax.random.fold_in(key, 1), rewards.shape, jnp.float32
            )
            rewards = rewards + jnp.float32(self.reward_noise) * noise
        states = np.asarray(states)
        terminal = states == self.num_states
        mask = ~terminal[:, :-1]
        terminated = mask & terminal[:, 1:]
        truncated = np.zeros_like(mask)
        truncated[:, -1] = mask[:, -1] & ~terminated[:, -1]
        traj = Trajectories(
            observations=np.asarray(observations, np.float32),
            rewards=np.where(mask, np.asarray(rewards, np.float32), np.float32(0)),
            terminated=terminated,
            truncated=truncated,
            mask=mask,
        )
        return traj.validate(), states

    def sample(self, key: jax.Array, num_episodes: int, max_steps: int) -> Trajectories:
        """Sample episodes, one per row, padded to `max_steps` steps.

        An episode that enters the terminal state is `terminated` on that step;
        the rest of its row is padding (mask False, reward 0, observation
        `terminal_feature`). An episode still running after `max_steps` steps is
        `truncated` on its last step. Deterministic given `key`.

        Args:
          key: a JAX PRNG key.
          num_episodes: B, the number of rows.
          max_steps: T, the time limit and the row length.

        Returns:
          A validated `Trajectories` with float32 observations
          `[B, T+1, *obs_shape]` and float32 rewards `[B, T]` (with
          `reward_noise` added on the valid steps). Use `sample_with_states`
          to also get the state indices.
        """
        return self.sample_with_states(key, num_episodes, max_steps)[0]


def _logits(probs: np.ndarray) -> np.ndarray:
    """Log-probabilities in float32 (so sampling does not depend on x64)."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(probs, np.float64)).astype(np.float32)


def _terminal_rows(matrix: np.ndarray, dtype) -> np.ndarray:
    """Append a row of zeros for the terminal state: `[S, S+1] -> [S+1, S+1]`."""
    return np.vstack([matrix, np.zeros((1, matrix.shape[1]))]).astype(dtype)


@functools.partial(jax.jit, static_argnames=("num_episodes", "max_steps"))
def _sample(key, logits_p, logits_start, rewards, features, *, num_episodes, max_steps):
    """Run `num_episodes` chains for `max_steps` steps; the terminal state absorbs."""
    terminal = logits_p.shape[0]

    def episode(key):
        key_start, key_steps = jax.random.split(key)
        s_0 = jax.random.categorical(key_start, logits_start).astype(jnp.int32)

        def step(s_t, key_t):
            s_next = jax.random.categorical(
                key_t, logits_p[jnp.minimum(s_t, terminal - 1)]
            )
            s_next = jnp.where(s_t == terminal, terminal, s_next.astype(jnp.int32))
            return s_next, s_next

        _, s_rest = jax.lax.scan(step, s_0, jax.random.split(key_steps, max_steps))
        return jnp.concatenate([s_0[None], s_rest])

    states = jax.vmap(episode)(jax.random.split(key, num_episodes))
    r_t = rewards[states[:, :-1], states[:, 1:]]
    return states, r_t, features[states]


class TabularTask(Task):
    """A `Task` backed by a `TabularMDP`: exact values on every state.

    Subclasses set `mdp`, `gamma`, `max_steps` and the `Task` attributes, and
    may override `labels` (per-state plot labels for the evaluation set).
    """

    mdp: TabularMDP
    max_steps: int

    def collect(self, num_episodes: int, seed: int) -> Trajectories:
        """Sample `num_episodes` episodes of at most `max_steps` steps, one per row.

        Start states follow `mdp.start`; see `TabularMDP.sample` for the
        layout. The PRNG key is `jax.random.key(seed)`.
        """
        return self.mdp.sample(jax.random.key(seed), num_episodes, self.max_steps)

    def exact_values(self) -> np.ndarray:
        """V^pi of every state, `[S]` float64."""
        return self.mdp.exact_values(self.gamma)

    def labels(self) -> np.ndarray:
        """Per-state labels for plots; the state index by default."""
        return np.arange(self.mdp.num_states)

    def evaluation_set(self) -> EvalSet:
        """Every state once, with its exact value (stderr None)."""
        return EvalSet(
            observations=np.array(self.mdp.features, np.float32),
            values=self.exact_values(),
            stderr=None,
            labels=self.labels(),
        )
