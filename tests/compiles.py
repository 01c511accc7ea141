"""Counting XLA compilations, for tests that a program is not compiled twice."""

import contextlib

import jax

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def count_compiles():
    """Collect the names of the XLA programs compiled inside the block."""
    names = []

    def listener(event, duration_secs, **kwargs):
        if event == _COMPILE_EVENT:
            names.append(kwargs.get("fun_name", "?"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
