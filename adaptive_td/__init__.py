"""adaptive_td: policy evaluation from batches of trajectories."""

import os as _os

from adaptive_td.data import Trajectories

# In a source checkout, envs/ and benchmarks/ sit beside this package and are
# installed as adaptive_td.envs and adaptive_td.benchmarks. When Python is
# started in the repository root this folder shadows the installed package, so
# let submodule lookup also see the checkout root. Installed copies are not
# affected (no envs/ beside them).
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "setup.cfg")) and _os.path.isdir(
    _os.path.join(_root, "envs")
):
    __path__.append(_root)  # noqa: F821

__all__ = ["Trajectories"]
