"""Strict JAX for the whole suite: rank promotion raises, and float64 is
available so kernels can be checked against float64 references."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_enable_x64", True)
