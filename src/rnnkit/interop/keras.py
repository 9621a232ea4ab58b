"""Keras 3 <-> rnnkit: :func:`from_keras` and :func:`to_keras` (docs/INTEROP.md §1).

rnnkit's weight layouts and gate orders are Keras 3's (docs/SPEC.md §15), so a model moves over as
its configuration plus the same arrays. Three sources:

- a Keras 3 ``Sequential`` or functional ``Model`` object that is a plain chain (needs ``keras``);
- a ``.keras`` file: a zip of ``config.json`` (the model's configuration), ``metadata.json`` and
  ``model.weights.h5``, read here with ``zipfile``, ``json`` and ``h5py`` — Keras is not imported;
- a ``.weights.h5`` file (``model.save_weights``) plus ``model=``, the rnnkit model of the same
  architecture to load the weights into.

The HDF5 layout (Keras 3's ``saving_lib``): the model's layers sit under ``layers/<name>``, where
``<name>`` is the snake-case class name made unique by a counter per name in the order of
``model.layers`` (``lstm``, ``lstm_1``, ...; a functional model counts its ``InputLayer``s too); a
layer's own variables are the datasets ``vars/0, 1, ...`` of its group (Dense: kernel, bias;
Embedding: embeddings), a recurrent layer's are those of its cell, ``cell/vars/`` (kernel,
recurrent_kernel, bias), and a Bidirectional's are in ``forward_layer/cell/vars`` and
``backward_layer/cell/vars``. Each ``vars`` group carries the layer's name as its ``name``
attribute, which is checked (and used to find a group whose path is not the expected one).
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np

from ._keras_config import (
    KerasFileError,
    SUPPORTED_LAYERS,
    RECURRENT,
    build_model,
    chain,
    finish,
    snake_case,
)

__all__ = ["from_keras", "to_keras", "SUPPORTED_LAYERS"]

# -- the files -------------------------------------------------------------------------------------

class _H5Weights:
    """Weights of the layers of one Keras weights file (an open ``h5py.File``)."""

    def __init__(self, h5, label):
        self.h5, self.label = h5, label
        if "layers" not in h5:
            raise KerasFileError(f"{label}: not a Keras 3 weights file (no 'layers' group; the legacy "
                                 f"Keras 2 HDF5 format is not supported)")
        self.layers = h5["layers"]
        self._used: dict[str, int] = {}

    def path_name(self, class_name):
        """The group name of the next layer of ``class_name`` (Keras's counter per snake name)."""
        base = snake_case(class_name)
        if base in self._used:
            self._used[base] += 1
            return f"{base}_{self._used[base]}"
        self._used[base] = 0
        return base

    def group(self, class_name, layer_name):
        name = self.path_name(class_name)
        group = self.layers.get(name)
        if group is not None and self._vars_name(group) in (None, layer_name):
            return group
        # not where expected: find the group whose vars carry this layer's name
        for candidate in self.layers.values():
            if self._vars_name(candidate) == layer_name:
                return candidate
        if group is not None:
            return group
        raise KerasFileError(f"{self.label}: no weights for layer {layer_name!r} ({class_name}): the "
                             f"file has no group 'layers/{name}'")

    @staticmethod
    def _vars_name(group):
        vars_group = group.get("vars") if hasattr(group, "get") else None
        if vars_group is None:
            return None
        value = vars_group.attrs.get("name")
        if isinstance(value, bytes):
            value = value.decode()
        return value

    def _vars(self, group, where):
        import h5py

        if where not in group:
            raise KerasFileError(f"{self.label}: group {group.name}/{where} is missing")
        vars_group = group[where]
        arrays = []
        keys = sorted(vars_group.keys(), key=lambda k: int(k) if k.isdigit() else 1 << 30)
        for key in keys:
            item = vars_group[key]
            if not isinstance(item, h5py.Dataset):
                raise KerasFileError(f"{self.label}: {item.name} is not a dataset")
            arrays.append(np.asarray(item[()]))
        return arrays

    def weights(self, class_name, layer_name):
        """The Keras weight list of one layer (``get_weights()`` order)."""
        group = self.group(class_name, layer_name)
        if class_name in RECURRENT:
            return self._vars(group, "cell/vars")
        if class_name == "Bidirectional":
            return self._vars(group, "forward_layer/cell/vars") + self._vars(group, "backward_layer/cell/vars")
        if class_name in ("Dense", "Embedding"):
            return self._vars(group, "vars")
        return []


def _open_h5(data, label):
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - the interop extra installs it
        raise ImportError("reading Keras files needs h5py: pip install 'rnnkit[interop]'") from exc
    try:
        return h5py.File(data, "r")
    except OSError as exc:
        raise KerasFileError(f"{label}: not a readable HDF5 weights file ({exc})") from None


def _read_keras_archive(path):
    label = repr(os.fspath(path))
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise KerasFileError(f"{label}: not a .keras file (not a zip archive)") from None
    with archive:
        names = set(archive.namelist())
        missing = [n for n in ("config.json", "model.weights.h5") if n not in names]
        if missing:
            raise KerasFileError(f"{label}: not a Keras 3 .keras file (missing {', '.join(missing)}; "
                                 f"it holds {sorted(names)[:5]})")
        try:
            config = json.loads(archive.read("config.json"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise KerasFileError(f"{label}: config.json is not valid JSON ({exc})") from None
        except zipfile.BadZipFile as exc:
            raise KerasFileError(f"{label}: the archive is damaged ({exc})") from None
        if "metadata.json" in names:
            try:
                metadata = json.loads(archive.read("metadata.json"))
            except ValueError:
                metadata = {}
            version = str(metadata.get("keras_version", "3"))
            if not version.startswith("3"):
                raise KerasFileError(f"{label}: written by Keras {version}; rnnkit reads Keras 3 files")
        try:
            weights_bytes = archive.read("model.weights.h5")
        except zipfile.BadZipFile as exc:
            raise KerasFileError(f"{label}: the archive is damaged ({exc})") from None
    if not isinstance(config, dict):
        raise KerasFileError(f"{label}: config.json does not hold a model configuration")
    return config, weights_bytes


def _from_keras_file(path):
    label = repr(os.fspath(path))
    config, weights_bytes = _read_keras_archive(path)
    try:
        class_name, ordered, input_shape = chain(config, label)
    except (KeyError, TypeError, AttributeError) as exc:
        raise KerasFileError(f"{label}: config.json is not a Keras model configuration ({exc!r})") from None
    model, pairs = build_model(ordered, config["config"].get("name"), label)
    h5 = _open_h5(io.BytesIO(weights_bytes), label + " (model.weights.h5)")
    with h5:
        weights = _H5Weights(h5, label)
        if class_name != "Sequential":  # a functional model's layer list includes its InputLayer
            for spec in config["config"]["layers"]:
                if spec.get("class_name") == "InputLayer":
                    weights.path_name("InputLayer")
        return finish(model, pairs,
                       lambda i, spec, layer: weights.weights(spec["class_name"], layer.name),
                       input_shape, label)


def _load_weights_file(path, model):
    from ..models import Sequential

    label = repr(os.fspath(path))
    if model is None:
        raise ValueError(f"{label}: a .weights.h5 file holds no architecture: pass model=, an rnnkit "
                         f"Sequential of the same layers, to load the weights into")
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be an rnnkit.Sequential, got {type(model).__name__}")
    h5 = _open_h5(os.fspath(path), label)
    with h5:
        weights = _H5Weights(h5, label)
        arrays = [weights.weights(type(layer).__name__, layer.name) for layer in model.layers]
    if not model.built:
        first = model.layers[0]
        from ..layers import Embedding
        if isinstance(first, Embedding):
            model.build((None, None))
        elif arrays[0]:
            model.build((None, None, arrays[0][0].shape[0]))
    for layer, layer_arrays in zip(model.layers, arrays):
        try:
            layer.set_weights(layer_arrays)
        except ValueError as exc:
            raise ValueError(f"{label}: weights of layer {layer.name!r} do not fit the model: {exc}") from None
    return model


# -- Keras objects ---------------------------------------------------------------------------------

def _is_keras_model(obj):
    return any(c.__module__.startswith("keras") for c in type(obj).__mro__) and hasattr(obj, "get_config")


def _from_keras_object(source):
    label = f"Keras model {getattr(source, 'name', '?')!r}"
    try:
        config = {"class_name": type(source).__name__, "config": source.get_config()}
    except Exception as exc:
        raise ValueError(f"{label}: get_config() failed ({exc})") from exc
    if config["class_name"] not in ("Sequential",):
        config["class_name"] = "Functional"
    class_name, ordered, input_shape = chain(config, label)
    if input_shape is None and getattr(source, "inputs", None):
        input_shape = list(source.inputs[0].shape)
    model, pairs = build_model(ordered, getattr(source, "name", None), label)

    def weights_of(i, spec, layer):
        k_layer = source.get_layer(spec["config"]["name"])
        if spec["class_name"] == "Bidirectional":
            return k_layer.forward_layer.get_weights() + k_layer.backward_layer.get_weights()
        return k_layer.get_weights()
    return finish(model, pairs, weights_of, input_shape, label)


def from_keras(source, model=None):
    """A Keras 3 model -> an ``rnnkit.Sequential`` with the same layers, flags and weights.

    ``source``: a Keras ``Sequential`` / plain-chain functional ``Model`` object, a path to a ``.keras``
    file, or a path to a ``.weights.h5`` file together with ``model=`` (an rnnkit Sequential of the
    same layer classes in the same order, built or not; the weights are loaded into it and it is
    returned). Files are read without importing Keras.

    Layers: InputLayer, SimpleRNN, LSTM, GRU (both ``reset_after``), Bidirectional (merge modes
    concat, sum, mul, ave), Dense, Embedding, Dropout, Flatten, Masking; activations, ``use_bias``,
    ``return_sequences``, ``go_backwards``, ``stateful``, ``unit_forget_bias``, ``reset_after``,
    ``mask_zero``, ``mask_value`` and names are carried over; initializers, regularizers and
    constraints (training only) are not. Anything else raises ValueError naming the layer and the
    supported ones; a damaged or foreign file raises ValueError naming the path and the problem.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such Keras file: {path!r}")
        if path.endswith(".h5") or path.endswith(".hdf5"):
            return _load_weights_file(path, model)
        if model is not None:
            raise ValueError(f"{path!r}: model= is only for .weights.h5 files (a .keras file holds the "
                             f"architecture)")
        return _from_keras_file(path)
    if model is not None:
        raise ValueError("model= is only for .weights.h5 files")
    if _is_keras_model(source):
        return _from_keras_object(source)
    raise TypeError(f"source must be a Keras 3 model or a path to a .keras / .weights.h5 file, got "
                    f"{type(source).__name__}")


# -- rnnkit -> Keras -------------------------------------------------------------------------------

def _keras_layer(keras, layer):
    from .. import layers as L

    K = keras.layers
    if isinstance(layer, L.Bidirectional):
        return K.Bidirectional(_keras_layer(keras, layer.forward_layer), merge_mode=layer.merge_mode,
                               backward_layer=_keras_layer(keras, layer.backward_layer), name=layer.name)
    if isinstance(layer, L.RNN):
        if layer.stateful:
            raise ValueError(f"layer {layer.name!r} is stateful: Keras needs a fixed batch size for "
                             f"stateful layers; convert a stateless copy")
        if layer._export_blocker():
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) uses {layer._export_blocker()}, "
                             f"which Keras's layers do not have")
        kwargs = dict(units=layer.units, activation=layer.activation, use_bias=layer.use_bias,
                      return_sequences=layer.return_sequences, go_backwards=layer.go_backwards,
                      dtype=layer.dtype.name, name=layer.name)
        if layer.dropout or layer.recurrent_dropout:
            kwargs.update(dropout=layer.dropout, recurrent_dropout=layer.recurrent_dropout)
        if layer.cell in ("lstm", "gru"):
            kwargs["recurrent_activation"] = layer.recurrent_activation
        if layer.cell == "lstm":
            kwargs["unit_forget_bias"] = layer.unit_forget_bias
            return K.LSTM(**kwargs)
        if layer.cell == "gru":
            return K.GRU(reset_after=layer.reset_after, **kwargs)
        return K.SimpleRNN(**kwargs)
    if isinstance(layer, L.Dense):
        act = layer.activation.name
        if act not in ("linear", "relu", "tanh", "sigmoid", "softmax", "hard_sigmoid"):
            raise ValueError(f"layer {layer.name!r} (Dense): activation {act!r} has no Keras name")
        return K.Dense(layer.units, activation=act, use_bias=layer.use_bias, dtype=layer.dtype.name,
                       name=layer.name)
    if isinstance(layer, L.Embedding):
        return K.Embedding(layer.input_dim, layer.output_dim, mask_zero=layer.mask_zero,
                           dtype=layer.dtype.name, name=layer.name)
    if isinstance(layer, L.Dropout):
        return K.Dropout(layer.rate, seed=layer.seed, name=layer.name)
    if isinstance(layer, L.Flatten):
        return K.Flatten(name=layer.name)
    if isinstance(layer, L.Masking):
        return K.Masking(layer.mask_value, name=layer.name)
    raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has no Keras counterpart here; "
                     f"supported: {', '.join(SUPPORTED_LAYERS[1:])}")


def to_keras(model):
    """An rnnkit ``Sequential`` (built) -> a ``keras.Sequential`` with the same layers and weights.

    Needs ``keras`` (any backend). The input shape is the one the model was built for (time may be
    None). Raises ValueError naming the layer for layers Keras cannot take here (stateful layers,
    Dense with a Python-callable activation).
    """
    import keras

    from ..layers import Bidirectional, Embedding
    from ..models import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be an rnnkit.Sequential, got {type(model).__name__}")
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built: build((None, T, I)) or predict first")
    input_shape = tuple(model._build_input_shape[1:])
    first = model.layers[0]
    dtype = "int64" if isinstance(first, Embedding) else first.dtype.name
    k_layers = [_keras_layer(keras, layer) for layer in model.layers]
    k_model = keras.Sequential([keras.Input(shape=input_shape, dtype=dtype), *k_layers], name=model.name)
    for layer, k_layer in zip(model.layers, k_layers):
        if isinstance(layer, Bidirectional):
            k_layer.forward_layer.set_weights(layer.forward_layer.get_weights())
            k_layer.backward_layer.set_weights(layer.backward_layer.get_weights())
        elif layer.weights:
            k_layer.set_weights(layer.get_weights())
    return k_model
