"""The `--out` folder of the command line: created, checked, errors named."""

from __future__ import annotations

import os
import tempfile


def prepare(out):
    """Create `out` and check that a file can be written in it."""
    os.makedirs(out, exist_ok=True)
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        # Name the folder, not the probe file.
        raise OSError(error.errno, error.strerror, out) from error


def error(out, error: OSError) -> str:
    """A one-line message for an OSError met writing into `out`."""
    reason = error.strerror or str(error)
    if error.filename is not None and os.fspath(error.filename) != os.fspath(out):
        reason += f" ({error.filename})"
    return f"cannot write results to --out {os.fspath(out)!r}: {reason}."
