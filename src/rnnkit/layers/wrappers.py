"""Wrappers: Bidirectional (a recurrent layer forwards and a copy backwards, merged per time step)
and TimeDistributed (a per-step layer applied to every time step).

Shapes (H units of the wrapped layer): x (B, T, I). With ``return_sequences`` each direction gives
(B, T, H) — the backward direction flipped back to input time order — else the last state (B, H).
Merged output: ``concat`` (…, 2H), ``sum`` / ``mul`` / ``ave`` (…, H), ``None`` a list of the two.
With ``return_state``: ``[output, *forward_states, *backward_states]`` (merge_mode None:
``[y_forward, y_backward, *forward_states, *backward_states]``), as in Keras.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, check_d_output, get_layer_class, register_layer
from .recurrent import RNN, sequence_input
from .symbolic import is_symbolic, symbolic_call

__all__ = ["Bidirectional", "TimeDistributed"]

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _serialize_layer(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def _deserialize_layer(spec):
    if isinstance(spec, Layer):
        return spec
    return get_layer_class(spec["class_name"]).from_config(dict(spec["config"]))


@register_layer
class Bidirectional(Layer):
    """Bidirectional wrapper for SimpleRNN, LSTM and GRU.

    Args:
        layer: the forward layer (used as is, it becomes ``forward_layer``).
        merge_mode: "concat" (default), "sum", "mul", "ave" or None.
        backward_layer: optional layer for the backward direction; by default a copy of ``layer`` with
            ``go_backwards`` flipped, the same configuration, independent weights and ``seed + 1``
            (when ``layer`` has a seed). It must agree with ``layer`` on units, return_sequences,
            return_state and stateful, and have the opposite ``go_backwards``.
        name: layer name (default "bidirectional", made unique).

    Weights: forward kernel, recurrent_kernel, bias, then backward kernel, recurrent_kernel, bias
    (Keras order); ``grads`` in the same order; ``d_initial_state`` forward states then backward.
    """

    # _trained is None (falsy) after clear_training_cache() or unpickling, like False before any call
    _training_cache_attrs = ("_trained", "_outputs", "_output_shape")
    _gradient_attrs = ("grads", "d_initial_state")
    _input_dim_is_per_step = True

    def __init__(self, layer, merge_mode="concat", backward_layer=None, name=None):
        if not isinstance(layer, RNN):
            raise TypeError(f"layer must be a SimpleRNN, LSTM or GRU layer, got {type(layer).__name__}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {', '.join(map(repr, MERGE_MODES))}, got {merge_mode!r}")
        super().__init__(dtype=layer.dtype, name=name)
        self.merge_mode = merge_mode
        self.forward_layer = layer
        self._custom_backward = backward_layer is not None
        if backward_layer is None:
            config = layer.get_config()
            config["go_backwards"] = not layer.go_backwards
            config["name"] = "backward_" + layer.name
            if config.get("seed") is not None:
                config["seed"] += 1
            backward_layer = type(layer).from_config(config)
        else:
            self._check_backward_layer(layer, backward_layer)
        self.backward_layer = backward_layer
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.stateful = layer.stateful
        self.weight_names = (tuple(f"forward_{n}" for n in layer.weight_names)
                             + tuple(f"backward_{n}" for n in backward_layer.weight_names))
        self.d_initial_state = None
        self._n_states = len(layer.state_names)
        self._trained = False
        self._outputs = None      # (y_forward, y_backward) of the last training call, for "mul"
        self._output_shape = None
        if layer.built:
            self.build(layer.input_dim)

    @staticmethod
    def _check_backward_layer(layer, backward_layer):
        if not isinstance(backward_layer, RNN):
            raise TypeError(f"backward_layer must be a SimpleRNN, LSTM or GRU layer, "
                            f"got {type(backward_layer).__name__}")
        if backward_layer is layer:
            raise ValueError("backward_layer must be a different layer object than layer")
        for attr in ("return_sequences", "return_state", "stateful", "units", "state_names"):
            if getattr(backward_layer, attr) != getattr(layer, attr):
                raise ValueError(f"backward_layer.{attr} ({getattr(backward_layer, attr)!r}) must equal "
                                 f"layer.{attr} ({getattr(layer, attr)!r})")
        if backward_layer.go_backwards == layer.go_backwards:
            raise ValueError("backward_layer.go_backwards must be the opposite of layer.go_backwards")
        if backward_layer.dtype != layer.dtype:
            raise ValueError(f"backward_layer.dtype ({backward_layer.dtype}) must equal layer.dtype ({layer.dtype})")

    # -- weights ---------------------------------------------------------------------------------
    def build(self, input_shape) -> None:
        self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)
        # the live arrays of both layers, so optimizers and set_weights reach them
        self._weights = self.forward_layer.weights + self.backward_layer.weights
        self.built = True

    @property
    def units(self):
        return self.forward_layer.units

    def _sublayers(self):
        return [self.forward_layer, self.backward_layer]

    def _state_count(self):
        return 2 * self._n_states

    def clear_training_cache(self) -> None:
        """Forget the last call's cache and gradients, here and in both directions' layers."""
        super().clear_training_cache()
        self.forward_layer.clear_training_cache()
        self.backward_layer.clear_training_cache()

    # -- forward ---------------------------------------------------------------------------------
    def __call__(self, x, initial_state=None, mask=None, lengths=None, training=False):
        """Run both directions on x (B, T, I) and merge; see the module docstring for the result."""
        if (type(x) is not np.ndarray and is_symbolic(x)) or (initial_state is not None
                                                             and is_symbolic(initial_state)):
            return symbolic_call(self, x, initial_state=initial_state, mask=mask, lengths=lengths)
        x = sequence_input(self, x)
        forward_states = backward_states = None
        if initial_state is not None:
            states = [initial_state] if isinstance(initial_state, np.ndarray) else list(initial_state)
            n = self._n_states
            if len(states) != 2 * n:
                names = ", ".join(self.forward_layer.state_names)
                raise ValueError(f"initial_state: Bidirectional({type(self.forward_layer).__name__}) expects "
                                 f"{2 * n} state arrays (forward {names}, then backward {names}), "
                                 f"got {len(states)}")
            forward_states, backward_states = states[:n], states[n:]
        y_f = self.forward_layer(x, forward_states, mask, lengths, training)
        y_b = self.backward_layer(x, backward_states, mask, lengths, training)
        if self.return_state:
            y_f, *s_f = y_f
            y_b, *s_b = y_b
        if self.return_sequences:
            y_b = y_b[:, ::-1]  # processing order -> input time order
        output = self._merge(y_f, y_b)
        if training:
            self._trained = True
            self._outputs = (y_f, y_b) if self.merge_mode == "mul" else None
            self._output_shape = y_f.shape
        if self.return_state:
            if self.merge_mode is None:
                return [*output, *s_f, *s_b]
            return [output, *s_f, *s_b]
        return output

    def _merge(self, y_f, y_b):
        mode = self.merge_mode
        if mode == "concat":
            return np.concatenate((y_f, y_b), axis=-1)
        if mode == "sum":
            return y_f + y_b
        if mode == "ave":
            return (y_f + y_b) * y_f.dtype.type(0.5)
        if mode == "mul":
            return y_f * y_b
        return [y_f, y_b]

    # -- backward --------------------------------------------------------------------------------
    def backward(self, d_output, d_state=None):
        """Route the gradient through the merge into both directions.

        ``d_output``: gradient wrt the merged output (merge_mode None: a list [d_forward, d_backward],
        entries may be None); ``d_state``: None or a list of gradients for
        ``[*forward_states, *backward_states]``. Overwrites ``grads`` (forward then backward) and
        ``d_initial_state``; returns dx (B, T, I), the sum of both directions' input gradients.
        """
        if not self._trained:
            raise ValueError(f"layer {self.name!r}: call the layer with training=True before backward")
        d_f, d_b = self._unmerge(d_output)
        if d_b is not None and self.return_sequences:
            d_b = d_b[:, ::-1]  # input time order -> the backward layer's processing order
        n = self._n_states
        if d_state is None:
            ds_f = ds_b = None
        else:
            d_state = [d_state] if isinstance(d_state, np.ndarray) else list(d_state)
            if len(d_state) != 2 * n:
                raise ValueError(f"d_state: expected {2 * n} state gradients (forward then backward), "
                                 f"got {len(d_state)}")
            ds_f, ds_b = d_state[:n], d_state[n:]
        dx = self.forward_layer.backward(d_f, ds_f)
        dx = dx + self.backward_layer.backward(d_b, ds_b)
        self.grads = self.forward_layer.grads + self.backward_layer.grads
        self.d_initial_state = self.forward_layer.d_initial_state + self.backward_layer.d_initial_state
        return dx

    def _unmerge(self, d_output):
        """Gradient of the merged output -> gradients of (y_forward, y_backward) in input time order."""
        mode = self.merge_mode
        if mode is None:
            if d_output is None:
                return None, None
            if isinstance(d_output, np.ndarray) or len(d_output) != 2:
                raise ValueError("d_output must be a list [d_forward, d_backward] when merge_mode=None")
            return d_output[0], d_output[1]
        if d_output is None:
            return None, None
        shape = self._output_shape
        if mode == "concat":
            shape = (*shape[:-1], 2 * shape[-1])
        d_output = check_d_output(d_output, shape)
        if mode == "concat":
            h = self._output_shape[-1]
            return d_output[..., :h], d_output[..., h:]
        if mode == "sum":
            return d_output, d_output
        if mode == "ave":
            half = d_output * d_output.dtype.type(0.5)
            return half, half
        y_f, y_b = self._outputs  # mul
        return d_output * y_b, d_output * y_f

    # -- states ----------------------------------------------------------------------------------
    def reset_states(self, states=None) -> None:
        """Reset both directions; ``states`` (optional) is [*forward_states, *backward_states]."""
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
            return
        states = list(states)
        n = self._n_states
        if len(states) != 2 * n:
            raise ValueError(f"states: expected {2 * n} arrays (forward then backward), got {len(states)}")
        self.forward_layer.reset_states(states[:n])
        self.backward_layer.reset_states(states[n:])

    # -- graph helpers ---------------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        state_shapes = []
        if self.return_state:
            shape, *state_shapes = shape
            state_shapes = state_shapes * 2
        if self.merge_mode == "concat":
            out = (*shape[:-1], 2 * shape[-1])
        elif self.merge_mode is None:
            out = [shape, shape]
        else:
            out = shape
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + state_shapes
        return out

    def compute_mask(self, mask):
        """As in Keras: the mask passes on with return_sequences (twice for merge_mode None)."""
        if isinstance(mask, list):
            mask = mask[0]
        out = mask if self.return_sequences else None
        if self.merge_mode is None:
            out = [out, out]
        if self.return_state:
            state_masks = [None] * (2 * self._n_states)
            return (out if isinstance(out, list) else [out]) + state_masks
        return out

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("dtype")  # the wrapped layer carries it
        config.update(layer=_serialize_layer(self.forward_layer), merge_mode=self.merge_mode,
                      backward_layer=_serialize_layer(self.backward_layer) if self._custom_backward else None)
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        config.pop("dtype", None)
        config["layer"] = _deserialize_layer(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = _deserialize_layer(config["backward_layer"])
        return cls(**config)

    def __repr__(self):
        return (f"<Bidirectional name={self.name!r} layer={type(self.forward_layer).__name__}"
                f"({self.units}) merge_mode={self.merge_mode!r} built={self.built}>")


@register_layer
class TimeDistributed(Layer):
    """Apply ``layer`` to every time step: x (B, T, ...) runs as (B·T, ...) rows through the
    wrapped layer and comes back as (B, T, ...). Typically ``TimeDistributed(Dense(V))`` (the same
    as ``Dense(V)`` on 3-D input, which rnnkit's Dense already applies per step). Weights and
    gradients are the wrapped layer's; the mask passes through.
    """

    _training_cache_attrs = ("_input_shape",)

    def __init__(self, layer, name=None):
        if not isinstance(layer, Layer):
            raise TypeError(f"layer must be an rnnkit Layer instance, got {type(layer).__name__}")
        if isinstance(layer, (RNN, Bidirectional)):
            raise TypeError(f"TimeDistributed applies a per-step layer (Dense, Dropout, ...); "
                            f"{type(layer).__name__} already runs over time")
        super().__init__(dtype=layer.dtype, name=name or f"time_distributed_{layer.name}")
        self.layer = layer
        self.weight_names = layer.weight_names
        self._input_shape = None
        self.built = layer.built

    # the weights are the wrapped layer's own live arrays
    @property
    def _weights(self):
        layer = self.__dict__.get("layer")
        return [] if layer is None else layer._weights

    @_weights.setter
    def _weights(self, value):
        pass

    def _sublayers(self):
        return [self.layer]

    def build(self, input_shape) -> None:
        shape = tuple(input_shape)
        if len(shape) < 3:
            raise ValueError(f"layer {self.name!r} (TimeDistributed) needs inputs (batch, time, ...), "
                             f"got input_shape {shape!r}")
        self.layer.build((None, *shape[2:]))
        self.built = True

    def __call__(self, x, training=False, mask=None):
        if type(x) is not np.ndarray and is_symbolic(x):
            return symbolic_call(self, x, mask=mask)
        x = np.asarray(x)
        if x.ndim < 3:
            raise ValueError(f"x must have shape (batch, time, ...) for layer {self.name!r} "
                             f"(TimeDistributed), got {x.shape}")
        if not self.built:
            self.build(x.shape)
        y = self.layer(x.reshape(-1, *x.shape[2:]), training=training)
        if training:
            self._input_shape = x.shape
        return y.reshape(*x.shape[:2], *y.shape[1:])

    def backward(self, d_output):
        if self._input_shape is None:
            raise ValueError(f"layer {self.name!r}: call the layer with training=True before backward")
        d_output = np.asarray(d_output)
        shape = self._input_shape
        dx = self.layer.backward(d_output.reshape(-1, *d_output.shape[2:]))
        self.grads = self.layer.grads
        return None if dx is None else dx.reshape(*shape[:2], *dx.shape[1:])

    def set_weights(self, weights) -> None:
        self.layer.set_weights(weights)

    def clear_training_cache(self) -> None:
        super().clear_training_cache()
        self.layer.clear_training_cache()

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        inner = self.layer.compute_output_shape((shape[0], *shape[2:]))
        return (shape[0], shape[1], *tuple(inner)[1:])

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("dtype")
        config["layer"] = _serialize_layer(self.layer)
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        config.pop("dtype", None)
        config["layer"] = _deserialize_layer(config["layer"])
        return cls(**config)

    def __repr__(self):
        return f"<TimeDistributed name={self.name!r} layer={self.layer!r}>"
