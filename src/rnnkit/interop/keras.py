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
import re
import warnings
import zipfile

import numpy as np

__all__ = ["from_keras", "to_keras", "SUPPORTED_LAYERS"]

#: the Keras layer classes :func:`from_keras` converts
SUPPORTED_LAYERS = ("InputLayer", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "Dense", "Embedding",
                    "Dropout", "Flatten", "Masking")
_RECURRENT = ("SimpleRNN", "LSTM", "GRU")

class KerasFileError(ValueError):
    """A Keras file that cannot be read (names the path and what is wrong)."""


def _snake_case(name: str) -> str:
    """Keras's ``naming.to_snake_case`` (the names of the layers' groups in the weights file)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _dtype_name(dtype):
    """A Keras ``dtype`` entry (a string or a serialised DTypePolicy) -> its name, or None."""
    if dtype is None:
        return None
    if isinstance(dtype, dict):
        return (dtype.get("config") or {}).get("name")
    return str(dtype)


# -- configuration -> rnnkit layers -------------------------------------------------------------

def _unsupported(class_name, name, why=None):
    what = why or f"supported layers: {', '.join(SUPPORTED_LAYERS)}"
    return ValueError(f"Keras layer {name!r} ({class_name}) cannot be converted to rnnkit: {what}")


def _layer_dtype(class_name, config):
    name = _dtype_name(config.get("dtype")) or "float32"
    if name not in ("float32", "float64"):
        raise _unsupported(class_name, config.get("name"),
                           f"dtype {name!r}; rnnkit layers are float32 or float64")
    return name


def _activation(config, key, class_name):
    value = config.get(key)
    if value is None:
        return "linear"
    if isinstance(value, dict):  # a serialised function or custom object
        value = value.get("config", value.get("class_name"))
    if not isinstance(value, str):
        raise _unsupported(class_name, config.get("name"), f"{key} {value!r} is not a named activation")
    return value


def _recurrent_from_config(class_name, config):
    from .. import layers as L

    name = config.get("name")
    if config.get("return_state"):
        raise _unsupported(class_name, name, "return_state=True (a Sequential layer has one output)")
    for key in ("dropout", "recurrent_dropout"):
        if config.get(key):
            warnings.warn(f"Keras layer {name!r} ({class_name}): {key}={config[key]} is not carried "
                          f"over (rnnkit's recurrent layers have no dropout; inference is unchanged)",
                          UserWarning, stacklevel=4)
    kwargs = dict(units=int(config["units"]), activation=_activation(config, "activation", class_name),
                  use_bias=bool(config.get("use_bias", True)),
                  return_sequences=bool(config.get("return_sequences", False)),
                  go_backwards=bool(config.get("go_backwards", False)),
                  stateful=bool(config.get("stateful", False)),
                  dtype=_layer_dtype(class_name, config), name=name)
    if class_name in ("LSTM", "GRU"):
        kwargs["recurrent_activation"] = _activation(config, "recurrent_activation", class_name)
    if class_name == "LSTM":
        kwargs["unit_forget_bias"] = bool(config.get("unit_forget_bias", True))
    if class_name == "GRU":
        kwargs["reset_after"] = bool(config.get("reset_after", True))
    try:
        return getattr(L, class_name)(**kwargs)
    except (TypeError, ValueError) as exc:
        raise _unsupported(class_name, name, str(exc)) from None


def layer_from_config(class_name, config):
    """One rnnkit layer for a Keras layer's (``class_name``, ``config``); None for an InputLayer."""
    from .. import layers as L

    name = config.get("name")
    if class_name == "InputLayer":
        return None
    if class_name in _RECURRENT:
        return _recurrent_from_config(class_name, config)
    if class_name == "Bidirectional":
        merge_mode = config.get("merge_mode", "concat")
        if merge_mode is None:
            raise _unsupported(class_name, name, "merge_mode=None returns two outputs (an rnnkit "
                                                 "Sequential layer has one)")
        inner = config["layer"]
        if inner.get("class_name") not in _RECURRENT:
            raise _unsupported(class_name, name, f"it wraps a {inner.get('class_name')}; rnnkit's "
                                                 f"Bidirectional wraps SimpleRNN, LSTM or GRU")
        forward = _recurrent_from_config(inner["class_name"], inner["config"])
        backward = None
        if config.get("backward_layer") is not None:
            spec = config["backward_layer"]
            if spec.get("class_name") != inner["class_name"]:
                raise _unsupported(class_name, name, "its backward layer is a different class")
            backward = _recurrent_from_config(spec["class_name"], spec["config"])
        try:
            return L.Bidirectional(forward, merge_mode=merge_mode, backward_layer=backward, name=name)
        except (TypeError, ValueError) as exc:
            raise _unsupported(class_name, name, str(exc)) from None
    if class_name == "Dense":
        if config.get("lora_rank"):
            raise _unsupported(class_name, name, "LoRA (lora_rank) is not supported")
        if config.get("quantization_config") or _dtype_name(config.get("dtype")) in ("int8", "float8", "int4"):
            raise _unsupported(class_name, name, "quantized layers are not supported")
        activation = _activation(config, "activation", class_name)
        try:
            return L.Dense(int(config["units"]), activation=activation,
                           use_bias=bool(config.get("use_bias", True)),
                           dtype=_layer_dtype(class_name, config), name=name)
        except (TypeError, ValueError) as exc:
            raise _unsupported(class_name, name, str(exc)) from None
    if class_name == "Embedding":
        if config.get("lora_rank") or config.get("quantization_config"):
            raise _unsupported(class_name, name, "LoRA / quantized embeddings are not supported")
        return L.Embedding(int(config["input_dim"]), int(config["output_dim"]),
                           mask_zero=bool(config.get("mask_zero", False)),
                           dtype=_layer_dtype(class_name, config), name=name)
    if class_name == "Dropout":
        if config.get("noise_shape") is not None:
            warnings.warn(f"Keras layer {name!r} (Dropout): noise_shape={config['noise_shape']} is not "
                          f"carried over (inference is unchanged)", UserWarning, stacklevel=3)
        return L.Dropout(float(config["rate"]), seed=config.get("seed"), name=name)
    if class_name == "Flatten":
        return L.Flatten(name=name)
    if class_name == "Masking":
        return L.Masking(float(config.get("mask_value", 0.0)), name=name)
    raise _unsupported(class_name, name)


def _chain(model_config, source_label):
    """The Keras layer specs of a model configuration, input first, as a plain chain.

    Returns (class name of the model, [layer spec, ...] in order, input shape or None)."""
    class_name = model_config.get("class_name")
    config = model_config.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError(f"{source_label}: the model configuration has no layer list")
    specs = config["layers"]
    if class_name == "Sequential":
        ordered = specs
        input_shape = config.get("build_input_shape")
    elif class_name in ("Functional", "Model"):
        ordered = _functional_chain(config, source_label)
        input_shape = None
    else:
        raise ValueError(f"{source_label}: a {class_name} model cannot be converted; rnnkit reads Keras "
                         f"Sequential models and functional models that are a plain chain")
    for spec in ordered:
        if spec.get("class_name") == "InputLayer":
            c = spec.get("config", {})
            shape = c.get("batch_shape") or c.get("batch_input_shape")
            if shape is not None:
                input_shape = shape
    if input_shape is None:
        for spec in ordered:
            build = spec.get("build_config") or {}
            if build.get("input_shape") is not None:
                input_shape = build["input_shape"]
                break
    return class_name, ordered, input_shape


def _functional_chain(config, source_label):
    by_name = {spec["config"]["name"]: spec for spec in config["layers"]}

    def history(tensor):
        if isinstance(tensor, dict) and tensor.get("class_name") == "__keras_tensor__":
            return tensor["config"]["keras_history"][0]
        if isinstance(tensor, list) and tensor and isinstance(tensor[0], str):  # [name, node, tensor]
            return tensor[0]
        return None

    def refs(endpoints):
        if isinstance(endpoints, list) and endpoints and isinstance(endpoints[0], str):
            return [endpoints[0]]
        return [e[0] for e in endpoints or []]

    inputs, outputs = refs(config.get("input_layers")), refs(config.get("output_layers"))
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"{source_label}: the functional model has {len(inputs)} inputs and "
                         f"{len(outputs)} outputs; rnnkit converts plain chains (one of each)")
    # A mask made by Embedding(mask_zero) / Masking appears in a functional configuration as an
    # operation (e.g. NotEqual) whose output reaches the next layers only as their ``mask`` argument:
    # that is rnnkit's own mask propagation, so such operations are left out of the chain.
    mask_only = set()
    for spec in by_name.values():
        for node in spec.get("inbound_nodes") or []:
            mask = node.get("kwargs", {}).get("mask") if isinstance(node, dict) else None
            source = history(mask)
            if source is not None and not by_name.get(source, {}).get("module", "").startswith("keras.layers"):
                mask_only.add(source)
    for name in mask_only:
        by_name.pop(name, None)
    parent = {}
    for name, spec in by_name.items():
        nodes = spec.get("inbound_nodes") or []
        if spec.get("class_name") == "InputLayer":
            continue
        if len(nodes) != 1:
            raise ValueError(f"{source_label}: layer {name!r} is called {len(nodes)} times; rnnkit "
                             f"converts plain chains (each layer called once)")
        node = nodes[0]
        args = node.get("args", []) if isinstance(node, dict) else node
        sources = [history(a) for a in args]
        if len(sources) != 1 or sources[0] is None:
            raise ValueError(f"{source_label}: layer {name!r} takes {len(args)} inputs; rnnkit converts "
                             f"plain chains (one input per layer)")
        parent[name] = sources[0]
    chain = [outputs[0]]
    while chain[-1] in parent:
        chain.append(parent[chain[-1]])
        if len(chain) > len(by_name):
            raise ValueError(f"{source_label}: the functional model's layers form a cycle")
    chain.reverse()
    if chain[0] != inputs[0] or len(chain) != len(by_name):
        raise ValueError(f"{source_label}: the functional model is not a plain chain from its input to "
                         f"its output (layers off the path: "
                         f"{sorted(set(by_name) - set(chain))})")
    return [by_name[n] for n in chain]


def _build_model(ordered, name, source_label):
    from ..models import Sequential

    pairs = []   # (keras spec, rnnkit layer)
    for spec in ordered:
        layer = layer_from_config(spec.get("class_name"), spec.get("config") or {})
        if layer is not None:
            pairs.append((spec, layer))
    if not pairs:
        raise ValueError(f"{source_label}: the model has no layers besides its input")
    model = Sequential([layer for _, layer in pairs], name=name)
    return model, pairs


def _finish(model, pairs, weights_of, input_shape, source_label):
    """Build ``model`` (from ``input_shape`` or the first kernel) and load every layer's weights;
    ``weights_of(spec_index, spec, layer)`` returns the Keras weight list of layer ``spec``."""
    from ..layers import Embedding

    if input_shape is not None and len(input_shape) >= 2:
        model.build(tuple(None if d is None else int(d) for d in input_shape))
    loaded = []
    for i, (spec, layer) in enumerate(pairs):
        loaded.append(weights_of(i, spec, layer))
    if not model.built:
        first, arrays = pairs[0][1], loaded[0]
        if isinstance(first, Embedding):
            model.build((None, None))
        elif arrays:
            model.build((None, None, arrays[0].shape[0]))
        else:
            raise ValueError(f"{source_label}: the input shape is unknown (no InputLayer or build config)")
    for (spec, layer), arrays in zip(pairs, loaded):
        try:
            layer.set_weights(arrays)
        except ValueError as exc:
            raise ValueError(f"{source_label}: weights of layer {layer.name!r} do not fit its "
                             f"configuration: {exc}") from None
    return model


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
        base = _snake_case(class_name)
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
        if class_name in _RECURRENT:
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
        class_name, ordered, input_shape = _chain(config, label)
    except (KeyError, TypeError, AttributeError) as exc:
        raise KerasFileError(f"{label}: config.json is not a Keras model configuration ({exc!r})") from None
    model, pairs = _build_model(ordered, config["config"].get("name"), label)
    h5 = _open_h5(io.BytesIO(weights_bytes), label + " (model.weights.h5)")
    with h5:
        weights = _H5Weights(h5, label)
        if class_name != "Sequential":  # a functional model's layer list includes its InputLayer
            for spec in config["config"]["layers"]:
                if spec.get("class_name") == "InputLayer":
                    weights.path_name("InputLayer")
        return _finish(model, pairs,
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
    class_name, ordered, input_shape = _chain(config, label)
    if input_shape is None and getattr(source, "inputs", None):
        input_shape = list(source.inputs[0].shape)
    model, pairs = _build_model(ordered, getattr(source, "name", None), label)

    def weights_of(i, spec, layer):
        k_layer = source.get_layer(spec["config"]["name"])
        if spec["class_name"] == "Bidirectional":
            return k_layer.forward_layer.get_weights() + k_layer.backward_layer.get_weights()
        return k_layer.get_weights()
    return _finish(model, pairs, weights_of, input_shape, label)


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
