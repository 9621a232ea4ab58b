"""Streaming inference: a Sequential model fed one time step per call (``model.stream()``).

Serving a recurrent model often means one time step at a time (speech frames, sensor readings,
online forecasts): the model's output for step t is needed before step t + 1 arrives. A
:class:`Stream` keeps every recurrent layer's states between calls and pushes one step through the
layers: recurrent layers run ``layer.step`` (their weights stay packed between calls), Dense,
Embedding, Dropout (inactive) and Masking apply to the step's rows. ``stream.step(x[:, t])`` for
t = 0, 1, ... gives ``model.predict(x)[:, t]`` (models returning sequences) or, for a model ending in a
recurrent layer with ``return_sequences=False``, the output ``predict`` would give for the sequence
ending at t.

Only causal models stream: their output at step t depends on steps <= t. Bidirectional layers,
``go_backwards``, Flatten, and a recurrent layer with ``return_sequences=False`` followed by more
layers are refused with a ValueError naming the layer.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_array, check_positive_int, format_shape
from .layers.core import Dense, Dropout, Embedding, Masking
from .layers.recurrent import RNN

__all__ = ["Stream"]


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
            elif not isinstance(layer, (Dense, Embedding, Dropout, Masking)):
                raise ValueError(f"{where} cannot be applied one step at a time (Bidirectional and "
                                 f"Flatten need the whole sequence); streamable layers: SimpleRNN, LSTM, "
                                 f"GRU, Dense, Embedding, Dropout, Masking")
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
            elif isinstance(layer, Masking):
                if x.ndim != 2:
                    raise ValueError(f"x_t must have shape (batch, features) for layer {layer.name!r}, "
                                     f"got {format_shape(x.shape)}")
                keep = np.any(x != layer.mask_value, axis=-1)
                mask = keep if mask is None else mask & keep
                x = np.where(keep[:, None], x, 0).astype(x.dtype if x.dtype.kind == "f" else layer.dtype,
                                                        copy=False)
            elif isinstance(layer, Embedding):
                ids = x
                x = layer(ids)
                if layer.mask_zero:
                    keep = np.asarray(ids) != 0
                    mask = keep if mask is None else mask & keep
            elif isinstance(layer, Dropout):
                continue  # inactive at inference
            else:  # Dense: per row
                x = layer(x)
        return x

    def __repr__(self):
        return f"<Stream of {self.model.name!r} batch_size={self.batch_size}>"
