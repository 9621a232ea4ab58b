"""Keras 3 configurations -> rnnkit layers and models (the half of :func:`rnnkit.interop.from_keras`
that files and Keras objects share): the supported layer classes, each layer's config mapped to its
rnnkit twin, the chain of layers of a Sequential or functional config, and the model built from it
with its weights checked and set (docs/INTEROP.md §1)."""

from __future__ import annotations

import re
import warnings


#: the Keras layer classes :func:`from_keras` converts
SUPPORTED_LAYERS = ("InputLayer", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "Dense", "Embedding",
                    "Dropout", "Flatten", "Masking")
RECURRENT = ("SimpleRNN", "LSTM", "GRU")

class KerasFileError(ValueError):
    """A Keras file that cannot be read (names the path and what is wrong)."""


def snake_case(name: str) -> str:
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
    if class_name in RECURRENT:
        return _recurrent_from_config(class_name, config)
    if class_name == "Bidirectional":
        merge_mode = config.get("merge_mode", "concat")
        if merge_mode is None:
            raise _unsupported(class_name, name, "merge_mode=None returns two outputs (an rnnkit "
                                                 "Sequential layer has one)")
        inner = config["layer"]
        if inner.get("class_name") not in RECURRENT:
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


def chain(model_config, source_label):
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


def build_model(ordered, name, source_label):
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


def finish(model, pairs, weights_of, input_shape, source_label):
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
