"""rnnkit -> ONNX: :func:`to_onnx` (docs/INTEROP.md §3; the operator mapping is docs/SPEC.md §17).

The graph uses ONNX's own ``RNN``, ``LSTM`` and ``GRU`` operators, so a runtime runs each recurrent
layer with its native kernels. Their default layout 0 is time-major (T, B, ·) — the only layout ONNX
Runtime's CPU kernels accept — so the exporter keeps track of the layout of the running tensor and puts
a ``Transpose`` only where the layout changes (once before the first recurrent layer, once after the
last). Graph inputs: ``x`` (B, T, I) float (int64 ids (B, T) when the first layer is an
``Embedding``) and, with ``lengths=True``, ``lengths`` (B,) int32, which feeds every recurrent
operator's ``sequence_lens``. Output: ``y``, batch-major as rnnkit's.

Only ``onnx`` is imported here (when :func:`to_onnx` runs); ``import rnnkit`` never imports it.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["to_onnx", "onnx_weights", "SUPPORTED_LAYERS", "DEFAULT_OPSET", "MIN_OPSET"]

#: the layer classes :func:`to_onnx` exports
SUPPORTED_LAYERS = ("SimpleRNN", "LSTM", "GRU", "Bidirectional", "Dense", "Embedding", "Dropout",
                    "Flatten")
DEFAULT_OPSET = 17
MIN_OPSET = 14

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
ONNX_OPS = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
# LSTM gate blocks: rnnkit/Keras order i, f, c, o -> ONNX order i, o, f, c (docs/SPEC.md §17)
LSTM_TO_ONNX = (0, 3, 1, 2)
# rnnkit activation -> (ONNX RNN activation name, alpha, beta); alpha/beta None when not used
RNN_ACTIVATIONS = {
    "tanh": ("Tanh", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "relu": ("Relu", None, None),
    "linear": ("Affine", 1.0, 0.0),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),   # Keras 3: clip(x / 6 + 0.5, 0, 1)
}


def onnx_weights(cell: str, kernel, recurrent_kernel, bias=None, reset_after: bool = True):
    """rnnkit (Keras-layout) weights of one direction -> ONNX's ``W``, ``R``, ``B`` (docs/SPEC.md §17).

    kernel (I, G·H), recurrent_kernel (H, G·H), bias (G·H,) or, for a GRU with reset_after, (2, 3H)
    (row 0 input bias, row 1 recurrent bias), or None. Returns C-contiguous W (1, G·H, I),
    R (1, G·H, H) and B (1, 2·G·H) = [Wb, Rb] in the weights' dtype. Gate blocks: LSTM i,f,c,o ->
    ONNX i,o,f,c; GRU z,r,h is ONNX's order already. A single bias (every cell but the reset_after GRU)
    becomes Wb, with Rb = 0; a GRU with reset_after=True runs with ``linear_before_reset=1`` and one
    with reset_after=False with ``linear_before_reset=0``.
    """
    kernel = np.asarray(kernel)
    recurrent_kernel = np.asarray(recurrent_kernel)
    gates = GATES[cell]
    units = recurrent_kernel.shape[0]
    if kernel.ndim != 2 or recurrent_kernel.shape != (units, gates * units) or kernel.shape[1] != gates * units:
        raise ValueError(f"{cell}: expected kernel (I, {gates}*H) and recurrent_kernel (H, {gates}*H), got "
                         f"{kernel.shape} and {recurrent_kernel.shape}")
    dtype = kernel.dtype
    if bias is None:
        w_bias = np.zeros(gates * units, dtype)
        r_bias = np.zeros(gates * units, dtype)
    else:
        bias = np.asarray(bias, dtype)
        if cell == "gru" and reset_after:
            if bias.shape != (2, 3 * units):
                raise ValueError(f"gru with reset_after=True: expected bias (2, {3 * units}), got {bias.shape}")
            w_bias, r_bias = bias[0], bias[1]
        else:
            if bias.shape != (gates * units,):
                raise ValueError(f"{cell}: expected bias ({gates * units},), got {bias.shape}")
            w_bias, r_bias = bias, np.zeros(gates * units, dtype)

    def reorder(columns):  # (..., G·H) with gate blocks in rnnkit's order -> ONNX's order
        if cell != "lstm":
            return columns
        blocks = np.split(columns, 4, axis=-1)
        return np.concatenate([blocks[g] for g in LSTM_TO_ONNX], axis=-1)

    w = np.ascontiguousarray(reorder(kernel).T)[None]
    r = np.ascontiguousarray(reorder(recurrent_kernel).T)[None]
    b = np.concatenate([reorder(w_bias), reorder(r_bias)])[None]
    return w, r, np.ascontiguousarray(b)


def _layer_weights(layer):
    """(W, R, B) of one rnnkit recurrent layer (one direction)."""
    return onnx_weights(layer.cell, layer.kernel, layer.recurrent_kernel, layer.bias,
                        reset_after=getattr(layer, "reset_after", True))


def _cell_activations(layer):
    """The ONNX ``activations`` of one direction of ``layer`` ([f] RNN, [f, g] GRU, [f, g, h] LSTM)."""
    if layer.cell == "simple_rnn":
        names = [layer.activation]
    elif layer.cell == "gru":
        names = [layer.recurrent_activation, layer.activation]
    else:
        names = [layer.recurrent_activation, layer.activation, layer.activation]
    for name in names:
        if name not in RNN_ACTIVATIONS:  # pragma: no cover - rnnkit's layers accept only these
            raise ValueError(f"layer {layer.name!r}: activation {name!r} has no ONNX RNN equivalent; "
                             f"supported: {', '.join(RNN_ACTIVATIONS)}")
    return [RNN_ACTIVATIONS[n] for n in names]


class _Tensor:
    """A value of the graph being built: its name, rank and, for rank 3, layout "bt" or "tb"."""

    def __init__(self, name, rank, layout=None):
        self.name, self.rank, self.layout = name, rank, layout


class _Builder:
    def __init__(self, helper, numpy_helper, elem, opset):
        self.helper, self.numpy_helper, self.elem, self.opset = helper, numpy_helper, elem, opset
        self.nodes, self.initializers = [], []
        self._names: dict[str, int] = {}

    def name(self, base):
        n = self._names.get(base, 0)
        self._names[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def const(self, array, base):
        name = self.name(base)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, outputs=1, base=None, **attrs):
        """Add one node; ``outputs`` is a count (fresh names) or a list of names ("" = absent)."""
        if isinstance(outputs, int):
            outputs = [self.name(base or op.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op, list(inputs), list(outputs),
                                                name=self.name("n_" + (base or op.lower())), **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def to_layout(self, t, layout):
        if t.rank != 3 or t.layout == layout:
            return t
        return _Tensor(self.node("Transpose", [t.name], perm=[1, 0, 2]), 3, layout)


def _check_model(model):
    from ..layers.base import Layer
    from ..models import Sequential

    if isinstance(model, Layer):
        model = [model]
    if isinstance(model, (list, tuple)):
        layers = list(model)
        input_shape = None
    elif isinstance(model, Sequential):
        layers = model.layers
        input_shape = model._build_input_shape
    else:
        raise TypeError(f"model must be an rnnkit.Sequential (or a list of rnnkit layers), "
                        f"got {type(model).__name__}")
    if not layers:
        raise ValueError("model has no layers: nothing to export")
    for layer in layers:
        if not isinstance(layer, Layer):
            raise TypeError(f"model layers must be rnnkit layers, got {type(layer).__name__}")
        from ..layers.recurrent import RNN
        for inner in getattr(layer, "forward_layer", None), layer:
            if isinstance(inner, RNN) and inner._export_blocker():
                raise _unsupported(inner, f"{inner._export_blocker()} has no ONNX operator here")
        if not layer.built:
            raise ValueError(f"layer {layer.name!r} is not built: build the model (model.build((None, T, "
                             f"I)) or a predict call) before exporting it")
    return layers, input_shape


def _unsupported(layer, why):
    return ValueError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be exported to ONNX: {why}")


def to_onnx(model, path=None, opset=None, dynamic_batch=True, dynamic_time=True, *, lengths=False,
            batch_size=1, time_steps=None, input_features=None):
    """Export an rnnkit model to ONNX; returns the ``onnx.ModelProto`` (also written to ``path``).

    Args:
        model: an ``rnnkit.Sequential`` (built) of SimpleRNN, LSTM, GRU, Bidirectional (merge modes
            concat, sum, mul, ave), Dense, Embedding, Dropout (inference: omitted) and Flatten
            layers; or a list of such layers.
        path: file to write (``None``: only return the model).
        opset: ONNX opset (default 17, at least 14).
        dynamic_batch / dynamic_time: the batch / time axis of ``x`` is symbolic ("batch", "time");
            otherwise fixed to ``batch_size`` / ``time_steps`` (default: the time length the model
            was built for).
        lengths: add the graph input ``lengths`` (B,) int32 — rnnkit's ``lengths`` (docs/SPEC.md
            §7.3) — which feeds every recurrent operator's ``sequence_lens``.
        input_features: I, when the model was not built from a known input shape (a list of layers).

    Raises ValueError naming the layer for anything ONNX cannot express here: ``stateful`` layers,
    ``Masking`` and ``Embedding(mask_zero=True)`` (masks inside the graph; use ``lengths=True`` with
    trailing padding instead), a Bidirectional with ``merge_mode=None`` or whose forward layer runs
    backwards, and unknown layer types. The model is checked with ``onnx.checker``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers, input_shape = _check_model(model)
    opset = DEFAULT_OPSET if opset is None else int(opset)
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be at least {MIN_OPSET} (got {opset})")
    if opset > onnx.defs.onnx_opset_version():
        raise ValueError(f"opset {opset} is newer than this onnx package supports "
                         f"({onnx.defs.onnx_opset_version()})")
    dtypes = {layer.dtype for layer in layers if layer.weights}
    if len(dtypes) > 1:
        raise ValueError(f"all layers must have one dtype to export, got {sorted(d.name for d in dtypes)}")
    dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}[dtype]
    g = _Builder(helper, numpy_helper, elem, opset)

    # -- graph inputs ------------------------------------------------------------------------------
    from ..layers import Embedding
    first = layers[0]
    rank = len(input_shape) if input_shape is not None else (2 if isinstance(first, Embedding) else 3)
    if time_steps is None and input_shape is not None and rank >= 2:
        time_steps = input_shape[1] if rank == 3 or isinstance(first, Embedding) else None
    batch_dim = "batch" if dynamic_batch else int(batch_size)
    time_dim = "time" if dynamic_time else time_steps
    if not dynamic_time and time_dim is None:
        raise ValueError("dynamic_time=False needs a time length: pass time_steps= or build the model "
                         "for a fixed T")
    if isinstance(first, Embedding):
        if rank != 2:
            raise ValueError(f"an Embedding front end takes ids (B, T), but the model was built for "
                             f"inputs of rank {rank}")
        x_info = helper.make_tensor_value_info("x", TensorProto.INT64, [batch_dim, time_dim])
        x = _Tensor("x", 2, None)
    else:
        if input_features is None:
            input_features = input_shape[-1] if input_shape is not None else getattr(
                getattr(first, "forward_layer", first), "input_dim", None)
        if input_features is None:
            raise ValueError("the input size is unknown: pass input_features= or build the model")
        shape = [batch_dim, time_dim, int(input_features)] if rank == 3 else [batch_dim, int(input_features)]
        x_info = helper.make_tensor_value_info("x", elem, shape)
        x = _Tensor("x", rank, "bt" if rank == 3 else None)
    graph_inputs = [x_info]
    lens = ""
    if lengths:
        graph_inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, [batch_dim]))
        lens = "lengths"

    # -- layers -------------------------------------------------------------------------------------
    for i, layer in enumerate(layers):
        following = layers[i + 1] if i + 1 < len(layers) else None
        x = _export_layer(g, layer, x, lens, following)

    if x.rank == 3:
        x = g.to_layout(x, "bt")
    g.node("Identity", [x.name], ["y"])
    out_shape = [batch_dim] + [None] * (x.rank - 1)
    if x.rank >= 2:
        out_shape[-1] = _output_features(layers)
    if x.rank == 3:
        out_shape[1] = time_dim
    y_info = helper.make_tensor_value_info("y", elem, out_shape)
    graph = helper.make_graph(g.nodes, "rnnkit", graph_inputs, [y_info], g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    onnx_model = helper.make_model(graph, opset_imports=opsets, producer_name="rnnkit.interop",
                                   producer_version=_version())
    onnx_model.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(onnx_model, full_check=True)
    if path is not None:
        onnx.save(onnx_model, os.fspath(path))
    return onnx_model


def _version():
    from .. import __version__
    return __version__


def _output_features(layers):
    """The last axis of the model's output, or None when not known here."""
    from ..layers import Bidirectional, Dense, Embedding
    from ..layers.recurrent import RNN
    for layer in reversed(layers):
        if isinstance(layer, Dense):
            return layer.units
        if isinstance(layer, RNN):
            return layer.units
        if isinstance(layer, Bidirectional):
            return 2 * layer.units if layer.merge_mode == "concat" else layer.units
        if isinstance(layer, Embedding):
            return layer.output_dim
        if type(layer).__name__ == "Flatten":
            return None
    return None


def _export_layer(g, layer, x, lens, following):
    from ..layers import Bidirectional, Dense, Dropout, Embedding, Flatten, Masking
    from ..layers.recurrent import RNN

    if isinstance(layer, (RNN, Bidirectional)):
        if x.rank != 3:
            raise _unsupported(layer, f"it needs a (batch, time, features) input, got rank {x.rank}")
        if layer.stateful:
            raise _unsupported(layer, "stateful=True (an ONNX graph keeps no state between runs)")
        if isinstance(layer, RNN):
            return _export_rnn(g, layer, x, lens)
        return _export_bidirectional(g, layer, x, lens)
    if isinstance(layer, Dense):
        return _export_dense(g, layer, x)
    if isinstance(layer, Embedding):
        if layer.mask_zero:
            raise _unsupported(layer, "mask_zero=True makes a mask inside the model; ONNX's recurrent "
                                      "operators take lengths only: build the Embedding with "
                                      "mask_zero=False, pad at the end and export with lengths=True")
        if x.name != "x" or x.rank != 2:
            raise _unsupported(layer, "an Embedding must be the first layer (it takes the integer ids)")
        ids = x.name
        layout = "bt"
        if isinstance(following, (RNN, Bidirectional)):  # transpose the ids, not the vectors
            ids = g.node("Transpose", [ids], perm=[1, 0])
            layout = "tb"
        table = g.const(np.asarray(layer.weights[0]), layer.name + "_embeddings")
        return _Tensor(g.node("Gather", [table, ids], base=layer.name, axis=0), 3, layout)
    if isinstance(layer, Dropout):
        return x  # identity at inference
    if isinstance(layer, Flatten):
        if x.rank <= 2:
            return x
        x = g.to_layout(x, "bt")
        return _Tensor(g.node("Flatten", [x.name], base=layer.name, axis=1), 2)
    if isinstance(layer, Masking):
        raise _unsupported(layer, "Masking computes a mask from the data inside the model; ONNX's "
                                  "recurrent operators take lengths only: remove the Masking layer, pad "
                                  "at the end and export with lengths=True")
    raise _unsupported(layer, f"supported layers: {', '.join(SUPPORTED_LAYERS)}")


def _activation_attrs(per_direction):
    """``activations`` (+ ``activation_alpha`` / ``activation_beta`` when one of them takes
    parameters: ONNX Runtime consumes one alpha / beta per activation that uses them, in order)."""
    attrs = {"activations": [name for name, _, _ in per_direction]}
    alphas = [a for _, a, _ in per_direction if a is not None]
    betas = [b for _, _, b in per_direction if b is not None]
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    return attrs


def _rnn_node(g, layers, direction, x, lens, need_y):
    """One ONNX RNN/LSTM/GRU node for ``layers`` (one layer, or forward + backward for
    ``direction="bidirectional"``). Returns (Y name or None, Y_h name)."""
    first = layers[0]
    cell = first.cell
    ws, rs, bs = zip(*(_layer_weights(layer) for layer in layers))
    base = first.name
    w = g.const(np.concatenate(ws), base + "_W")
    r = g.const(np.concatenate(rs), base + "_R")
    b = g.const(np.concatenate(bs), base + "_B")
    attrs = dict(hidden_size=first.units, direction=direction)
    acts = [a for layer in layers for a in _cell_activations(layer)]
    attrs.update(_activation_attrs(acts))
    if cell == "gru":
        attrs["linear_before_reset"] = 1 if first.reset_after else 0
    y = g.name(base + "_Y") if need_y else ""
    y_h = g.name(base + "_Y_h")
    outputs = [y, y_h] + ([""] if cell == "lstm" else [])
    inputs = [x.name, w, r, b] + ([lens] if lens else [])
    g.node(ONNX_OPS[cell], inputs, outputs, base=base, **attrs)
    return (y or None), y_h


def _reverse_time(g, name, base):
    """Reverse axis 0 (time, in time-major layout) of ``name``: Slice with step -1."""
    starts = g.const(np.array([-1], np.int64), "rev_starts")
    ends = g.const(np.array([np.iinfo(np.int64).min], np.int64), "rev_ends")
    axes = g.const(np.array([0], np.int64), "rev_axes")
    steps = g.const(np.array([-1], np.int64), "rev_steps")
    return g.node("Slice", [name, starts, ends, axes, steps], base=base + "_reversed")


def _squeeze(g, name, axis, base):
    axes = g.const(np.array([axis], np.int64), "axes")
    return g.node("Squeeze", [name, axes], base=base)


def _export_rnn(g, layer, x, lens):
    x = g.to_layout(x, "tb")
    direction = "reverse" if layer.go_backwards else "forward"
    y, y_h = _rnn_node(g, [layer], direction, x, lens, layer.return_sequences)
    if not layer.return_sequences:
        return _Tensor(_squeeze(g, y_h, 0, layer.name + "_h"), 2)   # (1, B, H) -> (B, H)
    y = _squeeze(g, y, 1, layer.name + "_y")                        # (T, 1, B, H) -> (T, B, H)
    if layer.go_backwards:
        # ONNX's reverse direction returns Y in input time order; rnnkit (and Keras) return the
        # processing order (docs/SPEC.md §8): flip the time axis. With sequence_lens this also puts a
        # row's zero outputs (its padding, processed first by rnnkit) at the front, as rnnkit does.
        y = _reverse_time(g, y, layer.name)
    return _Tensor(y, 3, "tb")


def _directions_match(fwd, bwd):
    same = ("cell", "units", "activation", "use_bias", "return_sequences")
    if any(getattr(fwd, a) != getattr(bwd, a) for a in same):
        return False
    return all(getattr(fwd, a, None) == getattr(bwd, a, None) for a in ("recurrent_activation", "reset_after"))


def _export_bidirectional(g, layer, x, lens):
    fwd, bwd = layer.forward_layer, layer.backward_layer
    if layer.merge_mode is None:
        raise _unsupported(layer, "merge_mode=None returns two outputs (a Sequential model has one)")
    if fwd.go_backwards or not bwd.go_backwards:
        raise _unsupported(layer, "its forward layer runs backwards (go_backwards=True); ONNX's "
                                  "bidirectional operator runs the first direction forwards")
    x = g.to_layout(x, "tb")
    seq = layer.return_sequences
    if _directions_match(fwd, bwd):
        y, y_h = _rnn_node(g, [fwd, bwd], "bidirectional", x, lens, seq)   # Y (T, 2, B, H), Y_h (2, B, H)
        both = y if seq else y_h
    else:  # the directions differ in configuration: one operator each, outputs stacked alike
        y_f, h_f = _rnn_node(g, [fwd], "forward", x, lens, seq)
        y_b, h_b = _rnn_node(g, [bwd], "reverse", x, lens, seq)
        both = g.node("Concat", [y_f, y_b] if seq else [h_f, h_b], base=layer.name + "_both",
                      axis=1 if seq else 0)
    axis = 1 if seq else 0   # the direction axis
    mode = layer.merge_mode
    if mode == "concat":
        if seq:   # (T, 2, B, H) -> (T, B, 2, H) -> (T, B, 2H)
            t = g.node("Transpose", [both], perm=[0, 2, 1, 3], base=layer.name + "_tb2h")
            shape = g.const(np.array([0, 0, -1], np.int64), "shape")
        else:     # (2, B, H) -> (B, 2, H) -> (B, 2H)
            t = g.node("Transpose", [both], perm=[1, 0, 2], base=layer.name + "_b2h")
            shape = g.const(np.array([0, -1], np.int64), "shape")
        out = g.node("Reshape", [t, shape], base=layer.name + "_concat")
    else:
        # sum: y_f + y_b; mul: y_f * y_b; ave: (y_f + y_b) / 2 (exact, as rnnkit's (y_f + y_b) * 0.5)
        op = {"sum": "ReduceSum", "mul": "ReduceProd", "ave": "ReduceMean"}[mode]
        # ReduceSum takes axes as an input from opset 13, ReduceProd / ReduceMean from opset 18
        if op == "ReduceSum" or g.opset >= 18:
            axes = g.const(np.array([axis], np.int64), "axes")
            out = g.node(op, [both, axes], base=layer.name + "_" + mode, keepdims=0)
        else:
            out = g.node(op, [both], base=layer.name + "_" + mode, axes=[axis], keepdims=0)
    return _Tensor(out, 3, "tb") if seq else _Tensor(out, 2)


def _export_dense(g, layer, x):
    kernel = g.const(np.asarray(layer.weights[0]), layer.name + "_kernel")
    out = g.node("MatMul", [x.name, kernel], base=layer.name + "_matmul")
    if layer.use_bias:
        bias = g.const(np.asarray(layer.weights[1]), layer.name + "_bias")
        out = g.node("Add", [out, bias], base=layer.name + "_add")
    act = layer.activation.name
    if act == "linear":
        pass
    elif act in ("relu", "tanh", "sigmoid"):
        out = g.node({"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}[act], [out], base=layer.name + "_" + act)
    elif act == "softmax":
        out = g.node("Softmax", [out], base=layer.name + "_softmax", axis=-1)
    elif act == "hard_sigmoid":
        out = g.node("HardSigmoid", [out], base=layer.name + "_hard_sigmoid", alpha=1.0 / 6.0, beta=0.5)
    else:
        raise _unsupported(layer, f"activation {act!r} (a Python callable) has no ONNX operator; "
                                  f"use linear, relu, tanh, sigmoid, softmax or hard_sigmoid")
    return _Tensor(out, x.rank, x.layout)
