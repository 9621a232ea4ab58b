"""Saving and loading models: one portable ``.npz`` file (no pickle).

The file holds the weight arrays plus one JSON string (entry ``rnnkit_config``) with the model's
class and configuration (for a Sequential: the layer classes and configs and the input shape), the
weight shapes per layer and the compile configuration (not the optimizer state).
``load_model(path)`` rebuilds the model from it. Writing is atomic (a temporary file in the same
directory, then a rename).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

from . import losses as losses_module
from . import optimizers as optimizers_module

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "FILE_FORMAT", "FILE_FORMAT_VERSION"]

#: marker and version of the file format written by ``save_model``
FILE_FORMAT = "rnnkit.Sequential"
FILE_FORMAT_VERSION = 1
_CONFIG_KEY = "rnnkit_config"


def weight_key(i, j):
    """The archive entry of weight ``j`` of layer ``i``."""
    return f"layer{i:03d}_weight{j:02d}"


def compile_config(model):
    """What ``compile`` was given, as JSON-ready data (None when not compiled)."""
    if not model.compiled:
        return None
    loss = model.loss
    if isinstance(loss, list):
        loss = {"list": [losses_module.serialize(fn) for fn in loss]}
    elif isinstance(loss, dict):
        loss = {"dict": {k: losses_module.serialize(fn) for k, fn in loss.items()}}
    else:
        loss = losses_module.serialize(loss)
    config = {
        "optimizer": optimizers_module.serialize(model.optimizer),
        "loss": loss,
        "metrics": list(model.metrics_names_requested),
    }
    if any(w != 1.0 for w in model._loss_weights):
        config["loss_weights"] = list(model._loss_weights)
    return config


def compile_from_config(model, config):
    if config is None:
        return
    loss = config["loss"]
    if "list" in loss:
        loss = [losses_module.deserialize(c) for c in loss["list"]]
    elif "dict" in loss:
        loss = {k: losses_module.deserialize(c) for k, c in loss["dict"].items()}
    else:
        loss = losses_module.deserialize(loss)
    model.compile(optimizer=optimizers_module.deserialize(config["optimizer"]), loss=loss,
                  metrics=config["metrics"], loss_weights=config.get("loss_weights"))


def _check_path(path, what):
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"path must be a str or os.PathLike, got {path!r}")
    if path.endswith((".keras", ".h5")):
        raise ValueError(f"path {path!r}: {what} writes rnnkit's own .npz format (weights plus a "
                         f"JSON config), not a Keras file; use a name ending in .npz, e.g. "
                         f"{os.path.splitext(path)[0] + '.npz'!r}")
    return path


def _write_npz(path, arrays):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".rnnkit-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_weights(model, path) -> None:
    """Every weight of ``model`` (``get_weights()`` order) into one ``.npz`` file."""
    path = _check_path(path, "save_weights")
    _write_npz(path, {f"weight{i:04d}": w for i, w in enumerate(model.weights)})


def load_weights(model, path) -> None:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such weights file: {path!r}")
    with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:
        keys = sorted(k for k in archive.files if k.startswith("weight"))
        weights = [archive[k] for k in keys]
    model.set_weights(weights)


def save_model(model, path) -> None:
    """Write ``model`` to ``path`` (one ``.npz`` file, written atomically, no pickle)."""
    path = _check_path(path, "model.save")
    layers = model.layers
    config = {
        "format": FILE_FORMAT,
        "format_version": FILE_FORMAT_VERSION,
        "model": model.get_config(),
        "weights": [[list(w.shape) for w in layer.weights] for layer in layers],
        "compile": compile_config(model),
    }
    arrays = {_CONFIG_KEY: np.array(json.dumps(config))}
    for i, layer in enumerate(layers):
        for j, w in enumerate(layer.weights):
            arrays[weight_key(i, j)] = w
    _write_npz(path, arrays)


def load_model(path):
    """Rebuild a model written by ``model.save``: layers, weights and compile settings.

    Raises FileNotFoundError for a missing file and ValueError naming the problem for a file that is
    not a readable rnnkit model (corrupt, another kind of file, or weights that do not fit the
    layer configuration).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path!r}")
    try:
        # the file is opened here, not by np.load, so it is closed even when np.load fails
        with open(path, "rb") as f:
            archive = np.load(f, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single array, not an .npz archive")
            with archive:
                files = set(archive.files)
                if _CONFIG_KEY not in files:
                    raise _NotRnnkit()
                config = json.loads(str(archive[_CONFIG_KEY][()]))
                arrays = {k: archive[k] for k in files if k != _CONFIG_KEY}
    except _NotRnnkit:
        raise ValueError(f"{path!r} is not an rnnkit model file (no {_CONFIG_KEY!r} entry)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path!r} is not a readable rnnkit model file: {exc}") from exc
    except TypeError as exc:  # np.load on a non-archive may raise this for odd headers
        raise ValueError(f"{path!r} is not a readable rnnkit model file: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FILE_FORMAT:
        raise ValueError(f"{path!r} is not an rnnkit model file (format marker missing)")
    if config.get("format_version") != FILE_FORMAT_VERSION:
        raise ValueError(f"{path!r} has file format version {config.get('format_version')!r}; this "
                         f"rnnkit reads version {FILE_FORMAT_VERSION}")
    try:
        return _model_from_file_config(config, arrays)
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"{path!r}: invalid model configuration ({type(exc).__name__}: {exc})") from exc
    except ValueError as exc:
        raise ValueError(f"{path!r}: {exc}") from exc


class _NotRnnkit(Exception):
    pass


def layer_weights(layer, i, layer_shapes, arrays):
    """The weight arrays of layer ``i`` read from the archive (their count from the file)."""
    weights = []
    for j in range(len(layer_shapes)):
        key = weight_key(i, j)
        if key not in arrays:
            raise ValueError(f"weight array {key!r} of layer {layer.name!r} is missing")
        weights.append(arrays[key])
    return weights


def _model_from_file_config(config, arrays):
    from .models.functional import Functional
    from .models.sequential import Sequential
    cls = Functional if config["model"].get("class_name") == "Functional" else Sequential
    model = cls.from_config(config["model"])
    layers = model.layers
    shapes = config["weights"]
    if len(shapes) != len(layers):
        raise ValueError(f"the file lists weights for {len(shapes)} layers but configures {len(layers)}")
    for i, (layer, layer_shapes) in enumerate(zip(layers, shapes)):
        weights = layer_weights(layer, i, layer_shapes, arrays)
        if not layer.built and not weights:
            continue
        if not layer.built:
            raise ValueError(f"layer {layer.name!r} has weights but the file has no input shape")
        layer.set_weights(weights)  # checks count and shapes (ValueError naming the layer)
    compile_from_config(model, config.get("compile"))
    return model
