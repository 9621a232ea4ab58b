"""Symbolic tensors: ``rnnkit.Input`` and the graph recorded by calling layers on them.

``x = rnnkit.Input((T, I))`` is a :class:`SymbolicTensor`: a shape ``(batch, T, I)`` (batch None unless
``batch_size`` is given), a dtype and no values. Calling a layer on symbolic tensors builds the layer
for that shape and returns new symbolic tensors of its output shape (a list for layers with several
outputs, e.g. ``return_state=True``), recording a :class:`Node`: which layer ran on which tensors
(``initial_state=`` tensors included). ``rnnkit.Model(inputs, outputs)`` walks these nodes back from
its outputs (models/functional.py). A layer called twice (shared) has one node per call.

As the first element of a ``Sequential``, an Input only gives the input shape.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_positive_int

__all__ = ["SymbolicTensor", "KerasTensor", "Input", "Node", "is_symbolic", "symbolic_call"]

_counter = {"input": 0}


class SymbolicTensor:
    """A placeholder in a layer graph: ``shape`` (batch first, None = any), ``dtype``, ``name``.

    ``node`` is the :class:`Node` that produced it (None for an Input) and ``index`` its position
    among that node's outputs."""

    __slots__ = ("shape", "dtype", "name", "node", "index")

    def __init__(self, shape, dtype="float32", name=None, node=None, index=0):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.name = name
        self.node = node
        self.index = index

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        shape = "(" + ", ".join("None" if d is None else str(d) for d in self.shape) + ")"
        return f"<SymbolicTensor shape={shape} dtype={self.dtype.name} name={self.name!r}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(f"{self!r} is symbolic (a placeholder of a layer graph) and has no values: "
                        f"build a model with rnnkit.Model(inputs, outputs) and call predict/fit on data")


#: Keras's name for the same thing
KerasTensor = SymbolicTensor


def Input(shape=None, dtype=None, batch_size=None, name=None, batch_shape=None):
    """A symbolic input of samples shaped ``shape`` (without the batch axis), e.g. ``Input((T, I))``
    for sequences of T steps (T may be None) of I features, ``Input((T,), dtype="int32")`` for the
    token ids of an Embedding. ``batch_size``: a fixed batch size, or None (any). Keras's
    ``batch_shape=(B, ...)`` may replace both."""
    if batch_shape is not None:
        if shape is not None or batch_size is not None:
            raise ValueError("pass shape (and batch_size) or batch_shape, not both")
        if not isinstance(batch_shape, (tuple, list)) or not batch_shape:
            raise TypeError(f"batch_shape must be a tuple (batch, ...), got {batch_shape!r}")
        batch_size, shape = batch_shape[0], tuple(batch_shape[1:])
    if shape is None:
        raise TypeError("Input needs shape, e.g. Input((time, features))")
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"shape must be a tuple of dimensions (without the batch axis) such as "
                        f"(time, features), got {shape!r}")
    dims = []
    for i, d in enumerate(shape):
        dims.append(None if d is None else check_positive_int(d, f"shape[{i}]"))
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    dt = np.dtype("float32" if dtype is None else dtype)
    if dt.kind not in "biuf":
        raise TypeError(f"dtype must be a numeric dtype, got {dtype!r}")
    if name is None:
        n = _counter["input"]
        _counter["input"] = n + 1
        name = "input_layer" if n == 0 else f"input_layer_{n}"
    elif not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}")
    return SymbolicTensor((batch_size, *dims), dt, name=name)


def is_symbolic(x):
    """True when ``x`` is a SymbolicTensor or a list/tuple holding one."""
    if isinstance(x, SymbolicTensor):
        return True
    return isinstance(x, (list, tuple)) and any(isinstance(t, SymbolicTensor) for t in x)


class Node:
    """One call of ``layer`` in a graph: ``inputs`` (a tensor, or a list for merge layers),
    ``initial_state`` (list of tensors or None) and the ``outputs`` it produced."""

    __slots__ = ("layer", "inputs", "initial_state", "outputs")

    def __init__(self, layer, inputs, initial_state):
        self.layer = layer
        self.inputs = inputs
        self.initial_state = initial_state
        self.outputs = []

    @property
    def input_tensors(self):
        """Every tensor this node reads: its inputs, then its initial states."""
        tensors = list(self.inputs) if isinstance(self.inputs, list) else [self.inputs]
        return tensors + list(self.initial_state or ())


def _as_tensor_list(value, argument):
    items = [value] if isinstance(value, SymbolicTensor) else list(value)
    for i, t in enumerate(items):
        if not isinstance(t, SymbolicTensor):
            raise TypeError(f"{argument}[{i}] must be a symbolic tensor (an rnnkit.Input or a layer's "
                            f"output on one) like the other inputs, got {type(t).__name__}")
    return items


def symbolic_call(layer, x, initial_state=None, **kwargs):
    """``layer(x, initial_state=...)`` on symbolic tensors: build the layer, record a Node and return
    symbolic outputs of the layer's output shape. Other arguments (mask, lengths, training) are for
    calls on data and are refused here."""
    extra = [k for k, v in kwargs.items() if v is not None and not (k == "training" and v is False)]
    if extra:
        raise ValueError(f"layer {layer.name!r} called on symbolic tensors: {', '.join(extra)} can only "
                         f"be given with data (masks come from Masking / Embedding(mask_zero=True) "
                         f"or fit(..., lengths=) in a model)")
    inputs = _as_tensor_list(x, "x") if isinstance(x, (list, tuple)) else x
    if isinstance(inputs, SymbolicTensor):
        shape = inputs.shape
    else:
        shape = [t.shape for t in inputs]
    states = None
    if initial_state is not None:
        states = _as_tensor_list(initial_state, "initial_state")
        count = layer._state_count() if hasattr(layer, "_state_count") else None
        if count is None:
            raise TypeError(f"layer {layer.name!r} ({type(layer).__name__}) takes no initial_state")
        if len(states) != count:
            raise ValueError(f"initial_state: layer {layer.name!r} ({type(layer).__name__}) expects "
                             f"{count} state tensor(s), got {len(states)}")
        for i, t in enumerate(states):
            if len(t.shape) != 2 or t.shape[1] != layer.units:
                raise ValueError(f"initial_state[{i}] of layer {layer.name!r} must have shape "
                                 f"(batch, {layer.units}), got {t.shape}")
    if not layer.built:
        layer.build(shape)
    out_shape = layer.compute_output_shape(shape)
    node = Node(layer, inputs, states)
    dtype = layer.dtype
    if isinstance(out_shape, list):
        outputs = [SymbolicTensor(s, dtype, f"{layer.name}/{i}", node, i) for i, s in enumerate(out_shape)]
        node.outputs = outputs
        return outputs
    out = SymbolicTensor(out_shape, dtype, layer.name, node, 0)
    node.outputs = [out]
    return out
