"""adaptive_td: policy evaluation from batches of trajectories.

import adaptive_td as atd
value_fn = atd.AdaptiveTD(gamma=0.99).fit(trajectories, key=0)
"""

import os as _os

from adaptive_td import (
    checkpoint,
    datasets,
    linear,
    metrics,
    networks,
    returns,
    rollouts,
    streaming,
)
from adaptive_td.adaptive import AdaptiveTD, AdaptiveValueFunction
from adaptive_td.data import Trajectories
from adaptive_td.estimators import TD, MonteCarlo, NStepTD, TDLambda, ValueFunction
from adaptive_td.linear import lstd, mc_projection
from adaptive_td.rollouts import from_vector_rollout

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

__version__ = "0.1.0"

__all__ = [
    "TD",
    "AdaptiveTD",
    "AdaptiveValueFunction",
    "MonteCarlo",
    "NStepTD",
    "TDLambda",
    "Trajectories",
    "ValueFunction",
    "checkpoint",
    "datasets",
    "from_vector_rollout",
    "linear",
    "lstd",
    "mc_projection",
    "metrics",
    "networks",
    "returns",
    "rollouts",
    "streaming",
]
