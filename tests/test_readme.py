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


def test_readme_example_pastes_into_the_interactive_interpreter():
    # The REPL ends a compound statement (a for loop) only at a blank line;
    # a statement right after the loop body is a SyntaxError there, though a
    # script runs it. Feed the lines as the REPL reads them, compiling only.
    import codeop

    text = README.read_text(encoding="utf-8")
    (block,) = re.findall(r"```python\n(.*?)```", text, re.S)
    pending = []
    for number, line in enumerate(block.splitlines(), 1):
        pending.append(line)
        try:
            code = codeop.compile_command("\n".join(pending), symbol="single")
        except SyntaxError as error:
            raise AssertionError(
                f"README example line {number} does not paste into the "
                f"interpreter: {error.msg} ({line!r})"
            ) from None
        if code is not None:  # a complete statement: the REPL runs it
            pending = []
