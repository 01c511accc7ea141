"""The README's Python example runs, and its estimates are what it says."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_and_estimates_the_walk():
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "expected exactly one Python example in the README"
    namespace = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)

    # The example's comment claims the true V(s) is s for this walk.
    estimates = np.asarray(namespace["value_fn"](namespace["states"]))
    np.testing.assert_allclose(estimates, namespace["states"][:, 0], atol=0.05)
    low, high = namespace["low"], namespace["high"]
    assert (low <= high).all()
