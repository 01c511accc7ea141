"""Save a fitted value function to a folder and load it back.

A checkpoint is a folder with two files:

    config.json   what the parameters mean: the method, the network spec,
                  gamma, the observation shape and dtype, the estimator's
                  options, the ensemble's interval rule (Adaptive TD), the
                  library version and the format version
    params.npz    the parameters as a flattened pytree, one array per leaf,
                  named by its key path (`jax.tree_util.keystr`), e.g.
                  "['params']['mlp/~/linear_0']['w']"; Adaptive TD adds the
                  ensemble's leaves under "['ensemble_params']...", each with
                  a leading member axis

The network is not pickled: `load` rebuilds it from its spec with
`adaptive_td.networks`, so only the networks named there can be saved:

    {"kind": "mlp", "hidden_sizes": [64, 64]}   networks.mlp (ReLU)
    {"kind": "linear"}                          networks.linear
    {"kind": "tabular", "num_states": 40}       networks.tabular

    est = atd.TD(atd.networks.mlp((64, 64)), optax.adam(1e-3), gamma=0.99)
    value_fn = est.fit(trajectories, key=0)
    checkpoint.save("ckpt", {"method": "td", "gamma": 0.99,
                             "network": {"kind": "mlp", "hidden_sizes": [64, 64]},
                             "options": {"steps": 2000}}, value_fn)
    checkpoint.load("ckpt")(observations)    # the same values, exactly

The training history is not stored; a loaded value function has an empty
`history`. A checkpoint is read only by the format version that wrote it and
by library versions of the same major.minor release (parameter names follow
the network definitions, which may change between releases).
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import jax
import numpy as np

from adaptive_td import networks as networks_lib
from adaptive_td.adaptive import AdaptiveValueFunction
from adaptive_td.estimators import ValueFunction, _transform

FORMAT = "adaptive_td checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
PARAMS_FILE = "params.npz"

_OBS_DTYPES = (
    *("bool", "float16", "float32", "float64"),
    *("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"),
)

# The estimators by their command-line names.
METHODS = ("td", "mc", "td-lambda", "n-step", "adaptive-td")
NETWORKS = ("mlp", "linear", "tabular")

_ESTIMATOR_KEYS = ("method", "network", "gamma", "options")
_CONFIG_KEYS = (
    "format",
    "format_version",
    "library_version",
    *_ESTIMATOR_KEYS,
    "obs_shape",
    "obs_dtype",
)


def network(spec: dict[str, Any]):
    """The value network of a spec (see the module docstring).

    Raises:
      ValueError: for an unknown kind or missing or invalid settings.
    """
    if not isinstance(spec, dict) or spec.get("kind") not in NETWORKS:
        raise ValueError(
            f"network spec {spec!r}; expected a dict with 'kind' one of "
            f"{', '.join(NETWORKS)}."
        )
    kind = spec["kind"]
    allowed = {"mlp": {"hidden_sizes"}, "linear": set(), "tabular": {"num_states"}}
    settings = set(spec) - {"kind"}
    if settings != allowed[kind]:
        raise ValueError(
            f"network spec {spec!r}; a {kind} network takes "
            f"{sorted(allowed[kind]) or 'no settings'} besides 'kind'."
        )
    if kind == "mlp":
        return networks_lib.mlp(tuple(spec["hidden_sizes"]))
    if kind == "linear":
        return networks_lib.linear()
    return networks_lib.tabular(spec["num_states"])


def save(path: str | os.PathLike, estimator_config: dict[str, Any], value_fn) -> None:
    """Write `value_fn` and its configuration into the folder `path`.

    Args:
      path: the checkpoint folder; created if missing, its config.json and
        params.npz replaced if present.
      estimator_config: {"method": one of METHODS, "network": a network spec,
        "gamma": the discount, "options": a JSON-serialisable dict of the
        estimator's other settings (steps, learning rate, ...)}.
      value_fn: the `ValueFunction` the estimator fitted with one key (an
        `AdaptiveValueFunction` for "adaptive-td").

    Raises:
      ValueError: for a config that does not describe `value_fn`, or a
        multi-seed value function (save `value_fn.seed(i)`).
    """
    missing = [k for k in _ESTIMATOR_KEYS if k not in estimator_config]
    unknown = sorted(set(estimator_config) - set(_ESTIMATOR_KEYS))
    if missing or unknown:
        raise ValueError(
            f"checkpoint.save: estimator_config has keys "
            f"{sorted(estimator_config)}; expected exactly {list(_ESTIMATOR_KEYS)}."
        )
    method = estimator_config["method"]
    if method not in METHODS:
        raise ValueError(
            f"checkpoint.save: method={method!r}; expected one of {', '.join(METHODS)}."
        )
    network(estimator_config["network"])
    if not isinstance(value_fn, ValueFunction):
        raise ValueError(
            f"checkpoint.save: value_fn is a {type(value_fn).__name__}; expected "
            "the ValueFunction returned by an estimator's fit."
        )
    if value_fn.num_seeds is not None:
        raise ValueError(
            f"checkpoint.save: value_fn holds {value_fn.num_seeds} seeds; save one "
            "at a time (value_fn.seed(i))."
        )
    adaptive = isinstance(value_fn, AdaptiveValueFunction)
    if adaptive != (method == "adaptive-td"):
        raise ValueError(
            f"checkpoint.save: method={method!r} but value_fn is a "
            f"{type(value_fn).__name__}; AdaptiveValueFunction goes with "
            "'adaptive-td' and only with it."
        )

    from adaptive_td import __version__

    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        **estimator_config,
        "obs_shape": list(value_fn.obs_shape),
        "obs_dtype": np.dtype(value_fn.obs_dtype).name,
    }
    tree = {"params": value_fn.params}
    if adaptive:
        tree["ensemble_params"] = value_fn.ensemble_params
        leaf = jax.tree_util.tree_leaves(value_fn.ensemble_params)[0]
        config["ensemble"] = {
            "size": int(np.shape(leaf)[0]),
            "interval_width": value_fn.interval_width,
            "interval_kind": value_fn.interval_kind,
            "quantile": value_fn.quantile,
        }
    arrays = {
        jax.tree_util.keystr(key): np.asarray(leaf)
        for key, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }
    expected, _ = _template(config)
    _check_arrays("checkpoint.save: value_fn.params", config, arrays, expected)
    try:
        text = json.dumps(config, indent=2) + "\n"
    except TypeError as error:
        raise ValueError(
            f"checkpoint.save: estimator_config cannot be written as JSON ({error}); "
            "use plain numbers, strings, lists and dicts."
        ) from None

    # The parameters first and the config last, each moved into place: a
    # fresh folder with a config.json holds a whole checkpoint.
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    tmp = os.path.join(path, PARAMS_FILE + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, os.path.join(path, PARAMS_FILE))
    tmp = os.path.join(path, CONFIG_FILE + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(path, CONFIG_FILE))


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The checked config.json of the checkpoint folder `path`.

    Raises:
      ValueError: naming the folder or file and what is wrong: not a folder,
        no config.json, not JSON, not a checkpoint config, missing keys, or
        a format or library version this version does not read.
    """
    path = os.fspath(path)
    where = "checkpoint.load"
    if not os.path.exists(path):
        raise ValueError(f"{where}: {path} does not exist.")
    if not os.path.isdir(path):
        raise ValueError(
            f"{where}: {path} is not a folder; a checkpoint is a folder holding "
            f"{CONFIG_FILE} and {PARAMS_FILE}."
        )
    file = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(file):
        inner = os.path.join(path, "checkpoint")
        hint = ""
        if os.path.isfile(os.path.join(inner, CONFIG_FILE)):
            hint = f" It holds the checkpoint folder {inner}: load that."
        raise ValueError(
            f"{where}: {path} is not a checkpoint: it has no {CONFIG_FILE}.{hint}"
        )
    try:
        with open(file) as f:
            config = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{where}: cannot read {file} as JSON ({error}).") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(
            f"{where}: {file} is not an adaptive_td checkpoint config (no "
            f"'format': {FORMAT!r})."
        )
    missing = [k for k in _CONFIG_KEYS if k not in config]
    if missing:
        raise ValueError(f"{where}: {file} lacks the keys {missing}.")
    if config["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{where}: {file} has format_version {config['format_version']!r}; "
            f"this version of adaptive_td reads format_version {FORMAT_VERSION}."
        )

    from adaptive_td import __version__

    written = str(config["library_version"])
    if written.split(".")[:2] != __version__.split(".")[:2]:
        raise ValueError(
            f"{where}: {file} was written by adaptive_td {written}; this is "
            f"adaptive_td {__version__}, which reads checkpoints of "
            f"{'.'.join(__version__.split('.')[:2])}.x. Load it with adaptive_td "
            f"{written}, or fit again."
        )
    if config["method"] not in METHODS:
        raise ValueError(
            f"{where}: {file} has method {config['method']!r}; expected one of "
            f"{', '.join(METHODS)}."
        )
    ensemble_keys = {"size", "interval_width", "interval_kind", "quantile"}
    if config["method"] == "adaptive-td" and not (
        isinstance(config.get("ensemble"), dict)
        and set(config["ensemble"]) == ensemble_keys
        and isinstance(config["ensemble"]["size"], int)
        and config["ensemble"]["size"] >= 2
    ):
        raise ValueError(
            f"{where}: {file} is an adaptive-td config without an 'ensemble' "
            f"entry with the keys {sorted(ensemble_keys)} (size an int >= 2)."
        )
    shape, dtype = config["obs_shape"], config["obs_dtype"]
    if not (
        isinstance(shape, list)
        and all(isinstance(d, int) and d >= 1 for d in shape)
        and dtype in _OBS_DTYPES
    ):
        raise ValueError(
            f"{where}: {file} has obs_shape {shape!r} and obs_dtype {dtype!r}; "
            "expected a list of sizes >= 1 and a NumPy dtype name such as "
            "'float32'."
        )
    try:
        network(config["network"])
    except ValueError as error:
        raise ValueError(f"{where}: {file}: {error}") from None
    return config


def load(path: str | os.PathLike) -> ValueFunction:
    """Load the value function saved by `save` in the folder `path`.

    Rebuilds the network from the spec in config.json and fills its
    parameters from params.npz, checking every leaf's name, shape and dtype
    against the network's own, so a loaded function gives exactly the values
    of the saved one.

    Returns:
      A `ValueFunction` (an `AdaptiveValueFunction` with its ensemble for
      "adaptive-td"), with an empty `history`.

    Raises:
      ValueError: naming the folder or file and what is wrong (see
        `read_config`; and a missing, unreadable or mismatched params.npz).
    """
    config = read_config(path)
    expected, treedef = _template(config)
    file = os.path.join(os.fspath(path), PARAMS_FILE)
    if not os.path.isfile(file):
        raise ValueError(
            f"checkpoint.load: {file} is missing; the checkpoint is incomplete."
        )
    try:
        with np.load(file, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                # A plain .npy array, or bytes NumPy takes for a pickle.
                raise ValueError("not an .npz archive")
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        reason = str(error)
        if "pickle" in reason:
            # NumPy's advice to unpickle does not apply to a damaged file.
            reason = "not an .npz archive"
        raise ValueError(
            f"checkpoint.load: cannot read {file} ({reason}); the file is damaged "
            "or was not written by adaptive_td.checkpoint.save."
        ) from None
    _check_arrays(f"checkpoint.load: {file}", config, arrays, expected)
    tree = jax.tree_util.tree_unflatten(
        treedef, [jax.numpy.asarray(arrays[name]) for name in expected]
    )

    net = _transform(network(config["network"]))
    ensemble = config.get("ensemble")
    fields = dict(
        apply=net.apply,
        params=tree["params"],
        history={},
        obs_shape=tuple(config["obs_shape"]),
        obs_dtype=np.dtype(config["obs_dtype"]),
    )
    if config["method"] != "adaptive-td":
        return ValueFunction(**fields)
    return AdaptiveValueFunction(
        **fields,
        ensemble_params=tree["ensemble_params"],
        interval_width=ensemble["interval_width"],
        interval_kind=ensemble["interval_kind"],
        quantile=ensemble["quantile"],
    )


def _template(config) -> tuple[dict[str, Any], Any]:
    """The leaves the config's network has, by key path, as shapes and dtypes
    (`jax.ShapeDtypeStruct`), and the tree structure they unflatten into."""
    net = _transform(network(config["network"]))
    obs = np.zeros((1, *config["obs_shape"]), config["obs_dtype"])
    template = {"params": jax.eval_shape(net.init, jax.random.key(0), obs)}
    if config["method"] == "adaptive-td":
        keys = jax.random.split(jax.random.key(0), config["ensemble"]["size"])
        template["ensemble_params"] = jax.eval_shape(
            jax.vmap(lambda k: net.init(k, obs)), keys
        )
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    return {jax.tree_util.keystr(key): leaf for key, leaf in leaves}, treedef


def _check_arrays(where, config, arrays, expected) -> None:
    """Raise unless `arrays` has exactly the leaves `expected`, each of the
    expected shape and dtype."""
    missing = sorted(set(expected) - set(arrays))
    unknown = sorted(set(arrays) - set(expected))
    kind = config["network"]["kind"]
    if missing or unknown:
        raise ValueError(
            f"{where} does not match the {kind} network of the config: missing "
            f"{missing}, unexpected {unknown}."
        )
    for name, leaf in expected.items():
        if arrays[name].shape != leaf.shape or arrays[name].dtype != leaf.dtype:
            raise ValueError(
                f"{where}: {name} has shape {arrays[name].shape} and dtype "
                f"{arrays[name].dtype}; the {kind} network of the config expects "
                f"{leaf.shape} and {leaf.dtype}."
            )
