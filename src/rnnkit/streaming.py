"""Streaming inference: a model fed one time step per call (``model.stream()``).

Serving a recurrent model often means one time step at a time (speech frames, sensor readings,
online forecasts): the model's output for step t is needed before step t + 1 arrives. A
:class:`Stream` keeps every recurrent layer's states between calls and pushes one step through the
layers: recurrent layers run ``layer.step`` (their weights stay packed between calls), Dense,
Embedding, Dropout (inactive) and Masking apply to the step's rows. ``stream.step(x[:, t])`` for
t = 0, 1, ... gives ``model.predict(x)[:, t]`` (models returning sequences) or, for a model ending in a
recurrent layer with ``return_sequences=False``, the output ``predict`` would give for the sequence
ending at t.

Only causal models stream: their output at step t depends on steps <= t. Bidirectional layers,
``go_backwards``, Flatten, RepeatVector, and a recurrent layer with ``return_sequences=False``
followed by more layers are refused with a ValueError naming the layer.

A functional model (:class:`GraphStream`) streams the same way node by node: merge layers and
TimeDistributed apply to the step's rows, every recurrent call keeps its own states (a shared layer
has one set per call), ``step`` takes one array per input and returns one per output. A recurrent call
that starts from another layer's states (``initial_state=``, an encoder-decoder) is refused: its
initial states need the encoder's whole sequence (decode such models with a one-step decoder model).
"""

from __future__ import annotations

import numpy as np

from ._validation import as_array, check_positive_int, format_shape
from .layers.core import Dense, Dropout, Embedding, Masking
from .layers.merge import _Merge
from .layers.recurrent import RNN
from .layers.wrappers import TimeDistributed

__all__ = ["Stream", "GraphStream"]

_PER_STEP = (Dense, Embedding, Dropout, Masking, _Merge)


def _check_per_step_layer(layer):
    if isinstance(layer, TimeDistributed) and isinstance(layer.layer, (Dense, Dropout)):
        return
    if not isinstance(layer, _PER_STEP):
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be applied one step at "
                         f"a time (Bidirectional, Flatten and RepeatVector need the whole sequence); "
                         f"streamable layers: SimpleRNN, LSTM, GRU, Dense, Embedding, Dropout, Masking, "
                         f"Concatenate, Add, Multiply, Average, TimeDistributed(Dense)")


def _and_masks(a, b):
    return b if a is None else a if b is None else a & b


def _apply_per_step(layer, x, mask):
    """One step of a non-recurrent layer on rows ``x`` (B, ...) with row mask ``mask`` (B,) or None:
    returns (output, mask)."""
    if isinstance(layer, Masking):
        if x.ndim != 2:
            raise ValueError(f"x_t must have shape (batch, features) for layer {layer.name!r}, "
                             f"got {format_shape(x.shape)}")
        keep = np.any(x != layer.mask_value, axis=-1)
        y = np.where(keep[:, None], x, 0).astype(x.dtype if x.dtype.kind == "f" else layer.dtype,
                                                 copy=False)
        return y, _and_masks(mask, keep)
    if isinstance(layer, Embedding):
        y = layer(x)
        return y, (_and_masks(mask, np.asarray(x) != 0) if layer.mask_zero else mask)
    if isinstance(layer, Dropout):
        return x, mask   # inactive at inference
    if isinstance(layer, TimeDistributed):
        return layer.layer(x), mask
    if isinstance(layer, _Merge):
        masks = [m for m in mask if m is not None]
        out_mask = None
        for m in masks:
            out_mask = _and_masks(out_mask, m)
        return layer(x), out_mask
    return layer(x), mask   # Dense: per row


class Stream:
    """``stream = model.stream(batch_size=1)``; ``y_t = stream.step(x_t)``; ``stream.reset()``.

    ``x_t`` is one step of the model's input: (batch_size, features), or (batch_size,) integer ids
    for a model starting with Embedding. ``states`` lists, per recurrent layer in model order, its
    current states (None before the first step / after ``reset``).
    """

    def __init__(self, model, batch_size=1):
        self.model = model
        self.batch_size = check_positive_int(batch_size, "batch_size")
        layers = list(model.layers)
        if not layers:
            raise ValueError(f"model {model.name!r} has no layers to stream through")
        for i, layer in enumerate(layers):
            where = f"layer {layer.name!r} ({type(layer).__name__})"
            if isinstance(layer, RNN):
                if layer.go_backwards:
                    raise ValueError(f"{where} has go_backwards=True: its output at a step depends on "
                                     f"later steps, so the model cannot stream")
                if not layer.return_sequences and i < len(layers) - 1:
                    raise ValueError(f"{where} has return_sequences=False and more layers follow it: "
                                     f"they see only the last step, so the model cannot stream")
                if layer.return_state:
                    raise ValueError(f"{where} has return_state=True: streaming returns one output per step")
            else:
                _check_per_step_layer(layer)
        self._layers = layers
        self._recurrent = [i for i, layer in enumerate(layers) if isinstance(layer, RNN)]
        self._states = {i: None for i in self._recurrent}

    @property
    def states(self) -> list:
        """The states of each recurrent layer (model order): a list of (B, H) arrays, or None."""
        return [None if self._states[i] is None else list(self._states[i]) for i in self._recurrent]

    def reset(self) -> None:
        """Start the next step from zero states."""
        self._states = {i: None for i in self._recurrent}

    def step(self, x_t):
        """Push one time step through every layer; returns the model's output for it."""
        x = as_array(x_t, "x_t")
        if x.ndim < 1 or x.shape[0] != self.batch_size:
            raise ValueError(f"x_t must have batch size {self.batch_size} (the stream's batch_size) as "
                             f"its first dimension, got shape {format_shape(x.shape)}")
        if not self.model.built:
            self.model.build((None, 1, *x.shape[1:]))
        mask = None  # (B,) rows that take part in this step
        for i, layer in enumerate(self._layers):
            if isinstance(layer, RNN):
                y, states = layer.step(x, self._states[i], mask=mask)
                self._states[i] = states
                if not layer.return_sequences:  # the last layer: the state after the last valid step
                    x, mask = states[0], None
                else:
                    x = y
            else:
                x, mask = _apply_per_step(layer, x, mask)
        return x

    def __repr__(self):
        return f"<Stream of {self.model.name!r} batch_size={self.batch_size}>"


class GraphStream:
    """``model.stream(batch_size)`` of a functional model: ``outputs = stream.step(x_t)`` with one
    (batch_size, features) array per input (a list, or an array for one input), returning one array
    per output; ``reset()``; ``states`` lists each recurrent call's states (graph order)."""

    def __init__(self, model, batch_size=1):
        self.model = model
        self.batch_size = check_positive_int(batch_size, "batch_size")
        consumed = {id(t) for node in model._nodes for t in node.input_tensors}
        for node in model._nodes:
            layer = node.layer
            where = f"layer {layer.name!r} ({type(layer).__name__})"
            if isinstance(layer, RNN):
                if layer.go_backwards:
                    raise ValueError(f"{where} has go_backwards=True: its output at a step depends on "
                                     f"later steps, so the model cannot stream")
                if node.initial_state is not None:
                    raise ValueError(f"{where} starts from another layer's states (initial_state=): "
                                     f"they need that layer's whole input sequence, so the model cannot "
                                     f"stream; decode with a one-step model instead")
                reducing = node.outputs if not layer.return_sequences else node.outputs[1:]
                if any(id(t) in consumed for t in reducing):
                    raise ValueError(f"{where} has return_sequences=False (or return_state) and another "
                                     f"layer reads that output: it sees only the last step, so the "
                                     f"model cannot stream")
            else:
                _check_per_step_layer(layer)
        self._nodes = list(model._nodes)
        self.reset()

    @property
    def states(self) -> list:
        return [None if s is None else list(s) for s in self._states.values()]

    def reset(self) -> None:
        """Start the next step from zero states."""
        self._states = {k: None for k, node in enumerate(self._nodes) if isinstance(node.layer, RNN)}

    def step(self, x_t):
        model = self.model
        xs = list(x_t) if isinstance(x_t, (list, tuple)) else [x_t]
        if len(xs) != len(model.inputs):
            raise ValueError(f"x_t: model {model.name!r} has {len(model.inputs)} inputs, got {len(xs)} "
                             f"arrays")
        values, masks = {}, {}
        for i, (t, x) in enumerate(zip(model.inputs, xs)):
            x = as_array(x, f"x_t[{i}]")
            if x.ndim < 1 or x.shape[0] != self.batch_size:
                raise ValueError(f"x_t[{i}] must have batch size {self.batch_size} (the stream's "
                                 f"batch_size) as its first dimension, got shape {format_shape(x.shape)}")
            values[id(t)], masks[id(t)] = x, None
        for k, node in enumerate(self._nodes):
            layer = node.layer
            if isinstance(node.inputs, list):
                x = [values[id(t)] for t in node.inputs]
                mask = [masks[id(t)] for t in node.inputs]
            else:
                x, mask = values[id(node.inputs)], masks[id(node.inputs)]
            if isinstance(layer, RNN):
                y, states = layer.step(x, self._states[k], mask=mask)
                self._states[k] = states
                outs = [y if layer.return_sequences else states[0]] + (states if layer.return_state else [])
                out_masks = [mask if layer.return_sequences else None] + [None] * (len(outs) - 1)
            else:
                y, out_mask = _apply_per_step(layer, x, mask)
                outs, out_masks = [y], [out_mask]
            for t, v, m in zip(node.outputs, outs, out_masks):
                values[id(t)], masks[id(t)] = v, m
        outputs = [values[id(t)] for t in model.outputs]
        return outputs if model._multi_output else outputs[0]

    def __repr__(self):
        return f"<GraphStream of {self.model.name!r} batch_size={self.batch_size}>"
