"""Core (non-recurrent) layers: Dense, Embedding, Flatten, Dropout, Masking, RepeatVector.

Shape letters: B batch, T time steps, I input features, U Dense units, V vocabulary size
(``Embedding.input_dim``), D embedding size (``output_dim``).

Every layer keeps the contract of base.py: ``layer(x, training=False, mask=None)`` returns the
output, ``layer.backward(d_output)`` returns the gradient with respect to the input of the last
training call and overwrites ``layer.grads``; ``compute_mask(mask)`` gives the mask the next layer
receives. Embedding(mask_zero=True) and Masking *produce* a mask from their input: ``compute_mask``
returns the mask of their last call, and-ed with the incoming one (``Sequential`` asks right after
calling the layer).
"""

from __future__ import annotations

import math

import numpy as np

from .. import activations, initializers, ops
from .._validation import as_array, check_bool, check_positive_int, format_shape
from .base import (Layer, build_input_dim, check_d_output, check_seed, initialized_weight,
                   register_layer, training_cache)
from .symbolic import is_symbolic, symbolic_call

__all__ = ["Dense", "Embedding", "Flatten", "Dropout", "Masking", "RepeatVector"]

#: activations fused into the dense kernel (ops.dense_forward); others run after a linear GEMM
_FUSED = ("linear", "relu", "tanh", "sigmoid")


def _combine_masks(own, incoming):
    """The mask a mask-producing layer passes on: its own, and-ed with an incoming (B, T) mask."""
    if own is None:
        return incoming
    if incoming is None or np.shape(incoming) != own.shape:
        return own
    return own & np.asarray(incoming, dtype=bool)


@register_layer
class Dense(Layer):
    """Fully connected layer: ``y = activation(x @ kernel + bias)``.

    Weights (Keras layout): kernel (I, U), bias (U,); I·U + U parameters.
    Input (..., I): a 3-D input (B, T, I) is applied per time step as one GEMM over (B·T, I) rows,
    giving (B, T, U). linear/relu/tanh/sigmoid are fused into ``ops.dense_forward``; softmax (over
    the last axis), hard_sigmoid and Python callables run after a linear GEMM via
    ``rnnkit.activations``. The mask passes through unchanged (a per-step layer keeps the time axis).

    ``backward(d_output, from_logits=True)`` takes the gradient with respect to the pre-activation
    instead (``Sequential`` uses it to fuse softmax with cross-entropy: d_logits = p − onehot).
    """

    weight_names = ("kernel", "bias")
    _training_cache_attrs = ("_cache", "_act_output", "logits", "_input_shape", "_output_shape")

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", dtype="float32", seed=None, name=None):
        super().__init__(dtype=dtype, name=name)
        self.units = check_positive_int(units, "units")
        self.activation = activations.get(activation, "activation")
        self.use_bias = check_bool(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.seed = check_seed(seed)
        if not self.use_bias:
            self.weight_names = ("kernel",)
        # fused activation name for the kernel, or "linear" + a separate activation pass
        self._fused = self.activation.name if self.activation.name in _FUSED else "linear"
        self._separate = None if self.activation.name in _FUSED else self.activation
        self.input_dim = None
        self._cache = None        # ops cache of the last training call
        self._act_output = None   # output of the separate activation (for its backward)
        #: pre-activation (..., U) of the last call when the activation runs after the GEMM
        #: (softmax, hard_sigmoid, callables), else None: the input of a from-logits loss
        self.logits = None
        self._input_shape = None
        self._output_shape = None

    def build(self, input_shape) -> None:
        """Create kernel (I, U) and bias (U,) from ``np.random.default_rng(seed)`` (kernel first)."""
        input_dim = build_input_dim(self, input_shape)
        if input_dim is None:  # already built for this input size
            return
        rng = np.random.default_rng(self.seed)
        shape = (input_dim, self.units)
        self._weights = [initialized_weight(self.kernel_initializer, shape, self.dtype, rng,
                                            "kernel_initializer")]
        if self.use_bias:
            self._weights.append(initialized_weight(self.bias_initializer, (self.units,), self.dtype, rng,
                                                    "bias_initializer"))
        self._own_weights(self._weights)
        self.input_dim = input_dim
        self.built = True

    def __call__(self, x, training=False, mask=None):
        """x (..., I) -> (..., U); ``mask`` is accepted and ignored (it passes through)."""
        if type(x) is not np.ndarray and is_symbolic(x):
            return symbolic_call(self, x, mask=mask)
        x = as_array(x, "x")
        if x.ndim < 2:
            raise ValueError(f"x must have shape (batch, ..., features), got {format_shape(x.shape)}")
        if not self.built:
            self.build(x.shape[-1])
        elif x.shape[-1] != self.input_dim:
            raise ValueError(f"x must have shape (..., {self.input_dim}) for layer {self.name!r}, "
                             f"got {format_shape(x.shape)}")
        rows = x.reshape(-1, self.input_dim)  # (B·T, I): one GEMM for every step
        bias = self._weights[1] if self.use_bias else None
        y, cache = ops.dense_forward(rows, self._weights[0], bias, activation=self._fused,
                                     training=training)
        logits = y.reshape(*x.shape[:-1], self.units)
        y = logits
        if self._separate is not None:
            y = self._separate.forward(logits).astype(self.dtype, copy=False)
        self.logits = logits if self._separate is not None else None
        if training:
            self._cache = cache
            self._act_output = y if self._separate is not None else None
            self._input_shape = x.shape
            self._output_shape = y.shape
        return y

    def backward(self, d_output, from_logits=False):
        """Gradient through the last training call; overwrites ``grads`` = [d_kernel, d_bias].

        ``from_logits=True``: ``d_output`` is the gradient with respect to the pre-activation
        (the GEMM output), i.e. the activation's own backward is skipped.
        """
        cache = training_cache(self, self._cache)
        d_output = check_d_output(d_output, self._output_shape)
        if self._separate is not None and not from_logits:
            d_output = self._separate.backward(d_output, None, self._act_output)
        elif from_logits and self._fused != "linear":
            raise ValueError(f"from_logits=True needs an activation applied after the GEMM "
                             f"(softmax, hard_sigmoid, ...); layer {self.name!r} fuses "
                             f"{self._fused!r} into the kernel")
        dx, d_kernel, d_bias = ops.dense_backward(d_output.reshape(-1, self.units), cache)
        self.grads = [d_kernel, d_bias] if self.use_bias else [d_kernel]
        return dx.reshape(self._input_shape)

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.units)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            units=self.units,
            activation=activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer, "kernel_initializer"),
            bias_initializer=initializers.serialize(self.bias_initializer, "bias_initializer"),
            seed=self.seed,
        )
        return config

    def __repr__(self):
        return f"<Dense name={self.name!r} units={self.units} built={self.built}>"


@register_layer
class Embedding(Layer):
    """Turns integer indices into dense vectors: ``y[..., :] = embeddings[x[...]]``.

    Weights: embeddings (V, D); V·D parameters. Input: integers in [0, V) of any shape (typically
    (B, T)); output: that shape + (D,). The backward pass accumulates each output gradient into the
    row it was read from (``np.add.at``: repeated indices add up); integer inputs have no gradient,
    so ``backward`` returns None. With ``mask_zero=True`` index 0 is padding: ``compute_mask`` gives
    ``x != 0`` for the following layers (so V must leave room for it, as in Keras).
    """

    weight_names = ("embeddings",)
    _training_cache_attrs = ("_indices", "_mask")

    def __init__(self, input_dim, output_dim, embeddings_initializer="random_uniform", mask_zero=False,
                 dtype="float32", seed=None, name=None):
        super().__init__(dtype=dtype, name=name)
        self.input_dim = check_positive_int(input_dim, "input_dim")
        self.output_dim = check_positive_int(output_dim, "output_dim")
        self.embeddings_initializer = initializers.get(embeddings_initializer, "embeddings_initializer")
        self.mask_zero = check_bool(mask_zero, "mask_zero")
        self.seed = check_seed(seed)
        self._indices = None
        self._mask = None

    def build(self, input_shape=None) -> None:
        """Create the (V, D) table; the input shape does not matter (any integer array)."""
        if self.built:
            return
        rng = np.random.default_rng(self.seed)
        self._weights = [initialized_weight(self.embeddings_initializer, (self.input_dim, self.output_dim),
                                            self.dtype, rng, "embeddings_initializer")]
        self._own_weights(self._weights)
        self.built = True

    def _indices_of(self, x):
        x = as_array(x, "x")
        if x.dtype.kind == "f":
            if not np.all(np.isfinite(x)) or not np.array_equal(x, np.round(x)):
                raise ValueError("x must hold integer indices (Embedding input), got non-integral floats")
            x = x.astype(np.int64)
        elif x.dtype.kind not in "iu":
            raise TypeError(f"x must be an integer array of indices, got dtype {x.dtype}")
        if x.size and (x.min() < 0 or x.max() >= self.input_dim):
            bad = x[(x < 0) | (x >= self.input_dim)].flat[0]
            raise ValueError(f"x must hold indices in [0, input_dim) = [0, {self.input_dim}), got {bad}")
        return x

    def __call__(self, x, training=False, mask=None):
        """x integer (...) -> (..., D). ``mask`` is not used here; see :meth:`compute_mask`."""
        if type(x) is not np.ndarray and is_symbolic(x):
            return symbolic_call(self, x, mask=mask)
        if not self.built:
            self.build()
        x = self._indices_of(x)
        y = self._weights[0][x]
        self._mask = (x != 0) if self.mask_zero else None
        if training:
            self._indices = x
        return y

    def backward(self, d_output):
        """Accumulate ``d_output`` (..., D) into the rows read; ``grads = [d_embeddings]``; returns None."""
        x = training_cache(self, self._indices)
        d_output = check_d_output(d_output, (*x.shape, self.output_dim))
        d_table = np.zeros_like(self._weights[0])
        np.add.at(d_table, x.reshape(-1), d_output.reshape(-1, self.output_dim))
        self.grads = [d_table]
        return None

    def compute_mask(self, mask):
        """With ``mask_zero``: ``x != 0`` of the last call (and-ed with an incoming mask of the same
        shape); otherwise the incoming mask passes through (e.g. ``lengths`` given to ``fit``)."""
        return _combine_masks(self._mask, mask)

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape), self.output_dim)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            input_dim=self.input_dim,
            output_dim=self.output_dim,
            embeddings_initializer=initializers.serialize(self.embeddings_initializer,
                                                          "embeddings_initializer"),
            mask_zero=self.mask_zero,
            seed=self.seed,
        )
        return config


@register_layer
class Flatten(Layer):
    """(B, d1, d2, ...) -> (B, d1·d2·...). No weights; the time axis is gone, so is the mask."""

    _training_cache_attrs = ("_input_shape",)

    def __init__(self, dtype="float32", name=None):
        super().__init__(dtype=dtype, name=name)
        self.built = True
        self._input_shape = None

    def build(self, input_shape=None) -> None:
        self.built = True

    def __call__(self, x, training=False, mask=None):
        if type(x) is not np.ndarray and is_symbolic(x):
            return symbolic_call(self, x, mask=mask)
        x = as_array(x, "x")
        if x.ndim < 1:
            raise ValueError("x must have a batch axis, got a 0-D array")
        if training:
            self._input_shape = x.shape
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # explicit size: B = 0 works too

    def backward(self, d_output):
        shape = training_cache(self, self._input_shape)
        d_output = as_array(d_output, "d_output")
        want = (shape[0], math.prod(shape[1:]))
        if d_output.shape != want:
            raise ValueError(f"d_output must have shape {format_shape(want)}, got "
                             f"{format_shape(d_output.shape)}")
        self.grads = []
        return d_output.reshape(shape)

    def compute_mask(self, mask):
        return None

    def compute_output_shape(self, input_shape):
        batch, *rest = tuple(input_shape)
        if any(d is None for d in rest):
            return (batch, None)
        return (batch, math.prod(rest))


@register_layer
class Dropout(Layer):
    """Inverted dropout: with ``training=True`` each element is zeroed with probability ``rate`` and
    the survivors are scaled by 1 / (1 − rate); at inference the layer is the identity.

    The random stream is ``np.random.default_rng(seed)``, advanced on every training call, so a seeded
    model trains reproducibly. The mask passes through unchanged.
    """

    _training_cache_attrs = ("_scale", "_shape")

    def __init__(self, rate, seed=None, dtype="float32", name=None):
        super().__init__(dtype=dtype, name=name)
        if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.integer, np.floating)):
            raise TypeError(f"rate must be a number in [0, 1), got {type(rate).__name__}")
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed = check_seed(seed)
        self._rng = np.random.default_rng(self.seed)
        self.built = True
        self._scale = None   # keep-mask / (1 - rate) of the last training call
        self._shape = None

    def build(self, input_shape=None) -> None:
        self.built = True

    def __call__(self, x, training=False, mask=None):
        if type(x) is not np.ndarray and is_symbolic(x):
            return symbolic_call(self, x, mask=mask)
        x = as_array(x, "x")
        if not training:
            return x
        if self.rate == 0.0:
            self._scale = np.ones((), dtype=x.dtype if x.dtype.kind == "f" else self.dtype)
            self._shape = x.shape
            return x
        keep = self._rng.random(x.shape) >= self.rate
        dtype = x.dtype if x.dtype.kind == "f" else self.dtype
        self._scale = keep.astype(dtype) / dtype.type(1.0 - self.rate)
        self._shape = x.shape
        return x * self._scale

    def backward(self, d_output):
        scale = training_cache(self, self._scale)
        d_output = check_d_output(d_output, self._shape)
        self.grads = []
        return d_output * scale

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config


@register_layer
class Masking(Layer):
    """Marks time steps to skip: a step of x (B, T, I) whose features all equal ``mask_value`` is
    masked. The output is x with masked steps set to zero (Keras), and ``compute_mask`` gives the
    (B, T) mask ``any(x != mask_value, axis=-1)`` of the last call for the following layers.
    """

    _training_cache_attrs = ("_mask", "_keep", "_shape")

    def __init__(self, mask_value=0.0, dtype="float32", name=None):
        super().__init__(dtype=dtype, name=name)
        self.mask_value = float(mask_value)
        self.built = True
        self._mask = None
        self._keep = None
        self._shape = None

    def build(self, input_shape=None) -> None:
        self.built = True

    def __call__(self, x, training=False, mask=None):
        if type(x) is not np.ndarray and is_symbolic(x):
            return symbolic_call(self, x, mask=mask)
        x = as_array(x, "x")
        if x.ndim != 3:
            raise ValueError(f"x must have shape (batch, time, features), got {format_shape(x.shape)}")
        self._mask = np.any(x != self.mask_value, axis=-1)            # (B, T)
        keep = self._mask[..., None]
        if training:
            self._keep = keep
            self._shape = x.shape
        return np.where(keep, x, 0).astype(x.dtype if x.dtype.kind == "f" else self.dtype, copy=False)

    def backward(self, d_output):
        keep = training_cache(self, self._keep)
        d_output = check_d_output(d_output, self._shape)
        self.grads = []
        return np.where(keep, d_output, 0).astype(d_output.dtype, copy=False)

    def compute_mask(self, mask):
        """The (B, T) mask of the last call, and-ed with an incoming mask of the same shape."""
        return _combine_masks(self._mask, mask)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config["mask_value"] = self.mask_value
        return config


@register_layer
class RepeatVector(Layer):
    """(B, F) -> (B, n, F): the input repeated ``n`` times along a new time axis (e.g. an encoder's
    summary vector fed to a decoder at every step). Backward sums the n step gradients."""

    _training_cache_attrs = ("_shape",)

    def __init__(self, n, dtype="float32", name=None):
        super().__init__(dtype=dtype, name=name)
        self.n = check_positive_int(n, "n")
        self.built = True
        self._shape = None

    def build(self, input_shape=None) -> None:
        self.built = True

    def __call__(self, x, training=False, mask=None):
        if type(x) is not np.ndarray and is_symbolic(x):
            return symbolic_call(self, x, mask=mask)
        x = as_array(x, "x")
        if x.ndim != 2:
            raise ValueError(f"x must have shape (batch, features) for layer {self.name!r} "
                             f"(RepeatVector), got {format_shape(x.shape)}")
        if training:
            self._shape = x.shape
        return np.repeat(x[:, None, :], self.n, axis=1)

    def backward(self, d_output):
        shape = training_cache(self, self._shape)
        d_output = check_d_output(d_output, (shape[0], self.n, shape[1]))
        self.grads = []
        return d_output.sum(axis=1)

    def compute_mask(self, mask):
        return None

    def compute_output_shape(self, input_shape):
        batch, features = tuple(input_shape)
        return (batch, self.n, features)

    def get_config(self) -> dict:
        config = super().get_config()
        config["n"] = self.n
        return config
