"""The interface every benchmark task implements.

A `Task` is a fixed policy in a fixed environment. It produces on-policy
trajectory batches (`collect`) and a held-out set of states with their true
values (`evaluation_set`), against which value estimates are scored.
"""

from __future__ import annotations

import abc
import dataclasses

import numpy as np

from adaptive_td.data import Trajectories


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """Held-out on-policy states and their true values V^pi.

    Attributes:
      observations: `[M, *obs_shape]` float32, the observations of the states.
      values: `[M]` float64, V^pi of each state.
      stderr: `[M]` float64 standard error where `values` are Monte Carlo
        estimates; None where they are exact.
      labels: optional per-state information for plots, e.g. the chain state
        index `[M]` or the maze cell `(row, col)` `[M, 2]`; None if absent.
    """

    observations: np.ndarray
    values: np.ndarray
    stderr: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __post_init__(self):
        m = np.shape(self.values)
        if len(m) != 1:
            raise ValueError(
                f"EvalSet: values has shape {m}; expected a 1-D array [M]."
            )
        if np.shape(self.observations)[:1] != m:
            raise ValueError(
                f"EvalSet: observations has shape {np.shape(self.observations)}; "
                f"expected [M, *obs_shape] with M = {m[0]} like values."
            )
        for name in ("stderr", "labels"):
            value = getattr(self, name)
            if value is not None and np.shape(value)[:1] != m:
                raise ValueError(
                    f"EvalSet: {name} has shape {np.shape(value)}; expected its "
                    f"first axis to be M = {m[0]} like values."
                )

    def __len__(self) -> int:
        return int(np.shape(self.values)[0])


class Task(abc.ABC):
    """A policy-evaluation problem: a fixed policy in a fixed environment.

    Attributes:
      name: the registry name (`adaptive_td.envs.make(name)`).
      description: one line saying what the task is.
      gamma: the discount the true values are computed with.
      obs_shape: the shape of one observation.
    """

    name: str
    description: str
    gamma: float
    obs_shape: tuple[int, ...]

    @abc.abstractmethod
    def collect(self, num_episodes: int, seed: int) -> Trajectories:
        """Collect on-policy trajectories; the same seed gives the same batch."""

    @abc.abstractmethod
    def evaluation_set(self) -> EvalSet:
        """Held-out on-policy states with their true values."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, gamma={self.gamma})"
