"""Value networks: functions from a batch of observations to a batch of values.

Each factory returns a plain function `observations [N, *obs_shape] -> [N]`
meant to be transformed with Haiku; the estimators do the transform, so pass
the function itself (or an `hk.Transformed` of your own):

    est = atd.TD(network=atd.networks.mlp((64, 64)), ...)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

ValueNet = Callable[[jax.Array], jax.Array]


def tabular(num_states: int) -> ValueNet:
    """One value per state; observations are integer state indices `[N]`.

    Equivalent to a linear layer on one-hot features, stored as a table
    initialised at zero. An index outside [0, num_states) gets the value NaN,
    so it cannot pass unnoticed.
    """
    if isinstance(num_states, bool) or not isinstance(num_states, (int, np.integer)):
        raise ValueError(f"tabular: num_states={num_states!r}; expected an integer.")
    if num_states < 1:
        raise ValueError(f"tabular: num_states={num_states}; expected >= 1.")

    def net(observations):
        table = hk.get_parameter("values", (num_states,), init=jnp.zeros)
        index = jnp.asarray(observations, jnp.int32).reshape(-1)
        return jnp.take(table, index, mode="fill", fill_value=jnp.nan)

    return net


def linear() -> ValueNet:
    """V(s) = w . phi(s) + b on the flattened observation phi(s)."""

    def net(observations):
        x = jnp.asarray(observations, jnp.float32)
        x = x.reshape(x.shape[0], -1)
        return hk.Linear(1, w_init=jnp.zeros)(x)[:, 0]

    return net


def mlp(
    hidden_sizes: Sequence[int] = (64, 64),
    activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
) -> ValueNet:
    """A fully connected network on the flattened observation."""
    if not isinstance(hidden_sizes, Sequence) or not all(
        isinstance(h, (int, np.integer)) and not isinstance(h, bool)
        for h in hidden_sizes
    ):
        raise ValueError(
            f"mlp: hidden_sizes={hidden_sizes!r}; expected a sequence of layer "
            "sizes such as (64, 64)."
        )
    hidden_sizes = tuple(int(h) for h in hidden_sizes)
    if any(h < 1 for h in hidden_sizes):
        raise ValueError(f"mlp: hidden_sizes={hidden_sizes}; expected sizes >= 1.")

    def net(observations):
        x = jnp.asarray(observations, jnp.float32)
        x = x.reshape(x.shape[0], -1)
        return hk.nets.MLP((*hidden_sizes, 1), activation=activation)(x)[:, 0]

    return net
