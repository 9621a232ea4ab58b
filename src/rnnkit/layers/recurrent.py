"""The base of the Keras-like recurrent layers (the layers themselves: cells.py).

SimpleRNN, LSTM, GRU and the layer-norm cells share :class:`RNN` (argument checking, lazy build, initial/stateful states, the call into
``rnnkit.ops`` and the backward pass); a subclass only says which cell it runs, how many gate blocks
and states it has, and how its bias is shaped and initialised. The math lives in
``rnnkit.ops.<cell>_forward`` / ``<cell>_backward`` (semantics: docs/SPEC.md §4–§11).

Shapes: x (B, T, I); kernel (I, G·H); recurrent_kernel (H, G·H); bias (G·H,) — GRU with
reset_after=True: (2, 3H); states (B, H) each. Output (B, T, H) with ``return_sequences`` (processing
order, i.e. reversed in time when ``go_backwards``), else the last valid state h (B, H).

Calling convention (every layer of rnnkit keeps it, see base.py)::

    y = layer(x, initial_state=None, mask=None, lengths=None, training=False)
    y, *states = layer(x, ...)              # return_state=True (LSTM states: h, c)
    dx = layer.backward(d_output, d_state=None)   # after a call with training=True
    layer.grads                              # [d_kernel, d_recurrent_kernel, d_bias], like get_weights()
    layer.d_initial_state                    # [d_h0] (LSTM: [d_h0, d_c0])
"""

from __future__ import annotations

import numpy as np

from .. import _backend
from .. import _weights as weight_locks
from .. import initializers, ops
from ..ops.pack import WeightPack
from .._validation import (ACTIVATIONS, as_array, check_activation,
                           check_bool, check_positive_int, format_shape)
from .base import (Layer, build_input_dim, check_d_output, check_seed, checked_weight,
                   initialized_weight, training_cache)
from .symbolic import is_symbolic, symbolic_call

__all__ = ["RNN", "sequence_input"]

#: kernel + recurrent_kernel elements from which inference calls keep the weights packed
_PACK_MIN_WEIGHTS = 4096


def _rate(value, name, upper_open=True):
    """A dropout / zoneout rate: a number in [0, 1) -> float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1), got {type(value).__name__}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def sequence_input(layer, x):
    """The input of a recurrent layer's call as an array; a layer not built yet is built for it,
    which needs x of shape (B, T, I). (The ops check x's shape on every call.)"""
    if type(x) is not np.ndarray:
        x = as_array(x, "x")
    if not layer.built:
        if x.ndim != 3:
            raise ValueError(f"x must have shape (batch, time, features), got {format_shape(x.shape)}")
        layer.build(x.shape[2])
    return x


class RNN(Layer):
    """Common base of SimpleRNN, LSTM and GRU (not used directly).

    Subclasses set the class attributes below and pass their extra constructor arguments through
    ``cell_kwargs`` (they go both to ``ops.<cell>_forward`` and into ``get_config``).

    The configuration is fixed at construction (as in Keras): the arguments of the ops call are bound
    once, so that a call costs little more than the op itself.
    """

    #: prefix of the ops functions: ``ops.<cell>_forward`` / ``ops.<cell>_backward``
    cell = ""
    #: G, the number of gate blocks in kernel / recurrent_kernel
    gates = 1
    #: names of the states, in the order of ``initial_state`` and of the returned states
    state_names = ("h",)
    weight_names = ("kernel", "recurrent_kernel", "bias")
    _training_cache_attrs = ("_cache", "_output_shape")
    _derived_attrs = ("_pack",)
    #: inference calls reuse packed weights (set per layer at build: not for few weights)
    _uses_pack = True
    _input_dim_is_per_step = True
    _gradient_attrs = ("grads", "d_initial_state")

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, dtype="float32", seed=None,
                 name=None, cell_kwargs=None, dropout=0.0, recurrent_dropout=0.0, zoneout_h=0.0,
                 zoneout_c=0.0, proj_units=None):
        super().__init__(dtype=dtype, name=name)
        # docs/SPEC.md §18: Keras dropout / recurrent_dropout, zoneout (h, and c for LSTM), projection
        self.dropout = _rate(dropout, "dropout")
        self.recurrent_dropout = _rate(recurrent_dropout, "recurrent_dropout")
        self.zoneout_h = _rate(zoneout_h, "zoneout_h")
        self.zoneout_c = _rate(zoneout_c, "zoneout_c")
        self.proj_units = None if proj_units is None else check_positive_int(proj_units, "proj_units")
        self.units = check_positive_int(units, "units")
        self.activation = check_activation(activation, "activation", ACTIVATIONS)
        self.use_bias = check_bool(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.recurrent_initializer = initializers.get(recurrent_initializer, "recurrent_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.return_sequences = check_bool(return_sequences, "return_sequences")
        self.return_state = check_bool(return_state, "return_state")
        self.go_backwards = check_bool(go_backwards, "go_backwards")
        self.stateful = check_bool(stateful, "stateful")
        self.seed = check_seed(seed)
        if not self.use_bias:
            self.weight_names = self.weight_names[:2]
        self._cell_kwargs = dict(cell_kwargs or {})

        self.input_dim = None
        #: stateful layers: the states the next call starts from (None = zeros)
        self.states = None
        self.d_initial_state = None
        self._n_states = len(self.state_names)
        self._zero_states = (None,) * self._n_states
        self._forward = getattr(ops, self.cell + "_forward")
        self._backward = getattr(ops, self.cell + "_backward")
        # Everything constant between calls, bound once so a call pays for no config lookups.
        self._forward_kwargs = dict(activation=self.activation, go_backwards=self.go_backwards,
                                    return_sequences=self.return_sequences, **self._cell_kwargs)
        #: options that change inference too (zoneout, projection, layer norm) run on the reference
        self._inference_options = bool(self.zoneout_h or self.zoneout_c or self._extra_weights())
        self._dropout_rng = np.random.default_rng(None if self.seed is None else [self.seed, 16])
        self._weight_args = ()   # (kernel, recurrent_kernel, bias | None): the live weight arrays
        self._cache = None       # ops cache of the last training call
        self._output_shape = None
        self._pack = None        # (epoch, stamps of kernel and recurrent_kernel, ops.WeightPack)
        # one step (``step``): the same call on a (B, 1, I) view, returning only the final states
        self._step_kwargs = dict(self._forward_kwargs, return_sequences=False, training=False)

    # -- weights ---------------------------------------------------------------------------------
    def _bias_shape(self):
        return (self.gates * self.units,)

    def _init_bias(self, rng):
        return self.bias_initializer(self._bias_shape(), self.dtype, rng)

    @property
    def output_units(self):
        """The size of h and of the output: proj_units with an LSTM projection, else units."""
        return self.proj_units or self.units

    def _state_sizes(self):
        return (self.output_units,) + (self.units,) * (self._n_states - 1)

    def _extra_weights(self):
        """[(name, shape, initial value maker(rng))] of the weights after kernel, recurrent_kernel, bias."""
        out = []
        if self.proj_units:
            out.append(("projection_kernel", (self.units, self.proj_units),
                        lambda shape, rng: self.recurrent_initializer(shape, self.dtype, rng)))
        return out

    def _bind_weight_args(self, arrays):
        """The live weight arrays -> positional (kernel, recurrent_kernel, bias | None) and the
        keyword arguments of the extra weights (projection=..., layer_norm=[...])."""
        n = 3 if self.use_bias else 2
        self._weight_args = tuple(arrays[:n]) if self.use_bias else (*arrays[:n], None)
        extra = list(arrays[n:])
        kwargs = {}
        if self.proj_units:
            kwargs["projection"] = extra.pop(0)
        if extra:
            kwargs["layer_norm"] = extra
        self._forward_kwargs.update(kwargs)
        self._step_kwargs.update(kwargs)

    def _export_blocker(self):
        """Why this layer's inference math has no Keras / ONNX counterpart (zoneout, projection,
        layer norm), or None. Dropout and recurrent_dropout act in training only."""
        names = [n for n, on in (("zoneout_h", self.zoneout_h), ("zoneout_c", self.zoneout_c),
                                 ("proj_units", self.proj_units),
                                 ("layer normalisation", "LayerNorm" in type(self).__name__)) if on]
        return ", ".join(names) or None

    def _option_kwargs(self, x, training):
        """The per-call masks of dropout / recurrent_dropout / zoneout (docs/SPEC.md §18)."""
        kwargs = {}
        B, T, G, S = x.shape[0], x.shape[1], self.gates, self.output_units
        rng = self._dropout_rng
        if training:
            if self.dropout:  # Keras 3: one mask per gate block once recurrent_dropout is on
                shape = (B, G, x.shape[2]) if self.recurrent_dropout and G > 1 else (B, x.shape[2])
                kwargs["dropout_mask"] = (rng.random(shape) >= self.dropout) / self.dtype.type(1 - self.dropout)
            if self.recurrent_dropout:
                kwargs["recurrent_dropout_mask"] = ((rng.random((B, G, S)) >= self.recurrent_dropout)
                                                    / self.dtype.type(1 - self.recurrent_dropout))
        if self.zoneout_h or self.zoneout_c:
            rates = (self.zoneout_h, self.zoneout_c)[:self._n_states]
            sizes = self._state_sizes()
            kwargs["zoneout"] = [
                None if not p else (rng.random((B, T, n)) < p).astype(self.dtype) if training else p
                for p, n in zip(rates, sizes)]
        return kwargs

    def build(self, input_shape) -> None:
        """Create the weights for ``input_shape``: the input size I, or a shape whose last entry is I.

        Weights are drawn from ``np.random.default_rng(seed)`` in the order kernel, recurrent_kernel,
        bias, so a layer with a seed is reproducible. Building again with the same I does nothing.
        """
        input_dim = build_input_dim(self, input_shape)
        if input_dim is None:  # already built for this input size
            return
        rng = np.random.default_rng(self.seed)
        H, GH = self.units, self.gates * self.units
        arrays = [
            initialized_weight(self.kernel_initializer, (input_dim, GH), self.dtype, rng,
                               "kernel_initializer"),
            initialized_weight(self.recurrent_initializer, (self.output_units, GH), self.dtype, rng,
                               "recurrent_initializer"),
        ]
        if self.use_bias:
            arrays.append(checked_weight(self._init_bias(rng), self._bias_shape(), self.dtype,
                                         "bias_initializer"))
        for name, shape, make in self._extra_weights():
            arrays.append(checked_weight(make(shape, rng), shape, self.dtype, name))
        self._own_weights(arrays)
        self._bind_weight_args(arrays)
        # packing a few thousand weights costs less than keeping a pack (~1 µs per call)
        self._uses_pack = (self._uses_pack and (input_dim + H) * GH >= _PACK_MIN_WEIGHTS
                           and not self._inference_options)
        self.input_dim = input_dim
        self.built = True

    def __setstate__(self, state):
        super().__setstate__(state)
        if self.built:  # the bound weight arguments must be the (possibly replaced) weight arrays
            self._bind_weight_args(self._weights)

    # -- weights by name (assigning copies into the live array, like set_weights) -----------------
    def _weight(self, name):
        if not self.built:
            raise ValueError(f"layer {self.name!r} is not built yet: call it on data or build() first")
        return self._weights[self.weight_names.index(name)]

    def _assign(self, name, value):
        if name not in self.weight_names:
            raise ValueError(f"layer {self.name!r} has no {name} (use_bias=False)")
        if not self.built:
            raise ValueError(f"layer {self.name!r} is not built yet: call it on data or build() first")
        self._write_weights([self.weight_names.index(name)], [value])

    kernel = property(lambda self: self._weight("kernel"), lambda self, v: self._assign("kernel", v),
                      doc="(I, G·H) input weights: the live array, read-only (assigning copies in)")
    recurrent_kernel = property(lambda self: self._weight("recurrent_kernel"),
                                lambda self, v: self._assign("recurrent_kernel", v),
                                doc="(H, G·H) recurrent weights (read-only; assigning copies in)")
    bias = property(lambda self: self._weight("bias") if self.use_bias else None,
                    lambda self, v: self._assign("bias", v),
                    doc="the bias, or None with use_bias=False (read-only; assigning copies in)")

    def _weight_pack(self):
        """The ops.WeightPack of kernel and recurrent_kernel for inference calls: made once and
        remade after any write by rnnkit into either array (their stamps change; rnnkit._weights)."""
        cached = self._pack
        epoch = weight_locks.epoch
        if cached is not None and cached[0] == epoch:  # no weight written anywhere since last time
            return cached[2]
        kernel, recurrent_kernel = self._weight_args[0], self._weight_args[1]
        stamps = weight_locks.stamps((kernel, recurrent_kernel))
        if None in stamps:  # not locked (cannot happen through the public API): no pack
            return None
        if cached is not None and cached[1] == stamps:
            pack = cached[2]
        else:
            pack = WeightPack._of_locked(self.cell, kernel, recurrent_kernel)
            if _backend.get_backend() == "native":
                try:  # the native pack insists on read-only arrays: another thread may be writing them
                    pack.native()
                except ValueError:
                    return None  # this call runs unpacked; the writer's new stamps bring a new pack
        self._pack = (epoch, stamps, pack)
        return pack

    # -- states ----------------------------------------------------------------------------------
    def _state_count(self):
        """How many arrays ``initial_state`` takes."""
        return self._n_states

    def _as_states(self, states, argument, batch=None):
        """Normalise a list of states (or one array for single-state cells) -> tuple of (B, H) arrays.

        ``batch`` is the required B (x's batch size), or None: that of the first state.
        """
        n = self._n_states
        if isinstance(states, np.ndarray) or not isinstance(states, (list, tuple)):
            states = (states,)
        if len(states) != n:
            raise ValueError(f"{argument}: {type(self).__name__} expects {n} state array(s) "
                             f"({', '.join(self.state_names)}), got {len(states)}")
        out = []
        sizes = self._state_sizes()
        for i, s in enumerate(states):
            s = as_array(s, f"{argument}[{i}]")
            if batch is None and out:
                batch = out[0].shape[0]
            want = ("batch" if batch is None else batch, sizes[i])
            if s.ndim != 2 or s.shape[1] != sizes[i] or (batch is not None and s.shape[0] != batch):
                raise ValueError(f"{argument}[{i}] ({self.state_names[i]}) must have shape "
                                 f"{format_shape(want)}, got {format_shape(s.shape)}")
            out.append(s)
        return tuple(out)

    def reset_states(self, states=None) -> None:
        """Stateful layers: start the next call from ``states`` (zeros when None).

        ``states`` is a list of (B, H) arrays (LSTM: [h, c]; a single array is accepted for SimpleRNN
        and GRU). After ``reset_states()`` without states, the next call may use any batch size.
        """
        if states is None:
            self.states = None
            return
        if not self.stateful:
            raise ValueError(f"reset_states(states=...) needs a stateful layer; {self.name!r} has stateful=False")
        self.states = [np.array(s, dtype=self.dtype, order="C") for s in self._as_states(states, "states")]

    # -- forward ---------------------------------------------------------------------------------
    def __call__(self, x, initial_state=None, mask=None, lengths=None, training=False):
        """Run the layer on x (B, T, I); see the module docstring for what is returned."""
        if (type(x) is not np.ndarray and is_symbolic(x)) or (initial_state is not None
                                                             and is_symbolic(initial_state)):
            return symbolic_call(self, x, initial_state=initial_state, mask=mask, lengths=lengths)
        x = sequence_input(self, x)
        if initial_state is not None:
            states = self._as_states(initial_state, "initial_state", x.shape[0] if x.ndim else None)
        elif self.stateful:
            states = self._stateful_states(x)
        else:
            states = self._zero_states
        pack = None if training or not self._uses_pack else self._weight_pack()
        kwargs = self._forward_kwargs
        if self._inference_options or (training and (self.dropout or self.recurrent_dropout)):
            if x.ndim != 3:
                raise ValueError(f"x must have shape (batch, time, features), got {format_shape(x.shape)}")
            kwargs = dict(kwargs, **self._option_kwargs(x, training))
        res = self._forward(x, *self._weight_args, *states, mask=mask, lengths=lengths,
                            training=training, pack=pack, **kwargs)
        # res = (outputs | None, *final_states, cache | None)
        output = res[0] if self.return_sequences else res[1]
        if training:
            self._cache = res[-1]
            self._output_shape = output.shape
        if self.stateful:
            self.states = [s.copy() for s in res[1:-1]]
        if self.return_state:
            return [output, *res[1:-1]]
        return output

    def _stateful_states(self, x):
        if self.states is None:
            return self._zero_states
        expected, got = self.states[0].shape[0], x.shape[0] if x.ndim else None
        if got != expected:
            raise ValueError(f"stateful layer {self.name!r} expects batch size {expected} (the batch "
                             f"size of its states), got x with batch size {got}; call reset_states() "
                             f"to change it")
        return self.states

    def step(self, x_t, states=None, mask=None):
        """One time step (streaming inference): ``(y_t, states) = layer.step(x_t, states)``.

        ``x_t`` (B, I); ``states`` None (zeros) or a list of (B, H) arrays (LSTM: [h, c]; one array
        is accepted for SimpleRNN and GRU). Returns ``y_t`` (B, H) — the new h, which is also
        ``states[0]`` when there is no mask — and the new states, to pass to the next call. ``mask``
        (B,) bool, optional: rows where it is False keep their states and output zeros. The same math as one step of
        ``__call__`` (in inference mode); the weights stay packed between calls.
        """
        x_t = as_array(x_t, "x_t")
        if x_t.ndim != 2:
            raise ValueError(f"x_t must have shape (batch, features), got {format_shape(x_t.shape)}")
        if not self.built:
            self.build(x_t.shape[1])
        states = self._zero_states if states is None else self._as_states(states, "states", x_t.shape[0])
        if mask is not None:
            mask = as_array(mask, "mask")
            if mask.shape != (x_t.shape[0],):
                raise ValueError(f"mask must have shape ({x_t.shape[0]},) (one flag per batch row), "
                                 f"got {format_shape(mask.shape)}")
            mask = mask[:, None]
        kwargs = self._step_kwargs
        if self._inference_options:
            kwargs = dict(kwargs, **self._option_kwargs(x_t[:, None, :], False))
        res = self._forward(x_t[:, None, :], *self._weight_args, *states, mask=mask,
                            pack=self._weight_pack() if self._uses_pack else None, **kwargs)
        new_states = list(res[1:-1])
        y = new_states[0] if mask is None else np.where(mask, new_states[0], 0).astype(self.dtype)
        return y, new_states

    # -- backward --------------------------------------------------------------------------------
    def backward(self, d_output, d_state=None):
        """Gradient of the loss through the last training call (BPTT).

        ``d_output``: gradient wrt the returned output — (B, T, H) with ``return_sequences``, else
        (B, H) wrt the last state h (added to ``d_state[0]`` when both are given); None means zero.
        ``d_state``: None or a list with one entry per state (LSTM: [d_h, d_c]), each (B, H) or None.
        Overwrites ``self.grads`` (order of ``get_weights()``) and ``self.d_initial_state``;
        returns dx (B, T, I).
        """
        cache = training_cache(self, self._cache)
        if d_output is not None:
            d_output = check_d_output(d_output, self._output_shape)
        if d_state is None:
            d_last = list(self._zero_states)
        else:
            d_last = self._as_d_state(d_state)
        if self.return_sequences:
            d_outputs = d_output
        else:
            d_outputs = None
            if d_output is not None:
                d_last[0] = d_output if d_last[0] is None else d_last[0] + d_output
        dx, d_kernel, d_recurrent, d_bias, *rest = self._backward(d_outputs, *d_last, cache)
        n = self._n_states
        self.grads = [d_kernel, d_recurrent, d_bias] if self.use_bias else [d_kernel, d_recurrent]
        self.grads += rest[n:]  # projection, layer-norm parameters
        self.d_initial_state = rest[:n]
        return dx

    def _as_d_state(self, d_state):
        n = self._n_states
        if isinstance(d_state, np.ndarray) or not isinstance(d_state, (list, tuple)):
            d_state = [d_state]
        if len(d_state) != n:
            raise ValueError(f"d_state: {type(self).__name__} has {n} state(s) ({', '.join(self.state_names)}), "
                             f"got {len(d_state)} gradient(s)")
        out = []
        for i, d in enumerate(d_state):
            if d is not None:
                d = as_array(d, f"d_state[{i}]")
                want = (self._output_shape[0], self._state_sizes()[i])
                if d.shape != want:
                    raise ValueError(f"d_state[{i}] ({self.state_names[i]}) must have shape "
                                     f"{format_shape(want)}, got {format_shape(d.shape)}")
            out.append(d)
        return out

    # -- graph helpers ---------------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        """(B, T, I) -> (B, T, H) or (B, H); with return_state a list [output, *state shapes]."""
        batch, time = input_shape[0], input_shape[1]
        out = (batch, time, self.output_units) if self.return_sequences else (batch, self.output_units)
        if self.return_state:
            return [out] + [(batch, n) for n in self._state_sizes()]
        return out

    def compute_mask(self, mask):
        """The mask follows the time axis, so it passes on only with return_sequences."""
        out = mask if self.return_sequences else None
        if self.return_state:
            return [out] + [None] * self._n_states
        return out

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            units=self.units,
            activation=self.activation,
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer, "kernel_initializer"),
            recurrent_initializer=initializers.serialize(self.recurrent_initializer, "recurrent_initializer"),
            bias_initializer=initializers.serialize(self.bias_initializer, "bias_initializer"),
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            go_backwards=self.go_backwards,
            stateful=self.stateful,
            seed=self.seed,
            **self._cell_kwargs,
        )
        for name in ("dropout", "recurrent_dropout", "zoneout_h"):
            if getattr(self, name):
                config[name] = getattr(self, name)
        return config

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} units={self.units} built={self.built}>"
