"""Kernel-level dense op: validate, canonicalise, dispatch to the active backend.

Shape letters: N rows, I input features, U units. ``y = act(x @ kernel + bias)`` with ``act`` one of
linear, relu, tanh, sigmoid (softmax is applied by ``layers.Dense`` after a linear GEMM).

The active backend (``rnnkit.set_backend``) runs the canonical ``dense_forward``/``dense_backward`` of
docs/ARCHITECTURE.md (native: cpp/src/dense.cc, one GEMM and a fused bias + activation epilogue).
"""

from __future__ import annotations



from .. import _backend
from .._validation import (
    as_array,
    canonical,
    canonical_data,
    canonical_weight,
    check_activation,
    check_bool,
    check_cache,
    check_ndim,
    check_numeric,
    check_shape,
    format_shape,
    weight_dtype,
)

__all__ = ["dense_forward", "dense_backward", "DenseCache"]

#: the activations the dense kernels fuse after the GEMM
DENSE_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")


class DenseCache:
    """What :func:`dense_forward` (training=True) returns for :func:`dense_backward`.

    Attributes: ``impl`` (the module whose ``dense_backward`` runs), ``inner`` (that implementation's
    private cache), ``dtype``, ``rows`` (N) and ``units`` (U), which let backward check ``d_y``.
    """

    __slots__ = ("impl", "inner", "dtype", "rows", "units")

    def __init__(self, impl, inner, dtype, rows, units):
        self.impl = impl
        self.inner = inner
        self.dtype = dtype
        self.rows = rows
        self.units = units

    def __repr__(self) -> str:
        return (f"DenseCache(backend={getattr(self.impl, '__name__', self.impl)!r}, "
                f"rows={self.rows}, units={self.units}, dtype={self.dtype})")


def dense_forward(x, kernel, bias=None, activation="linear", training=True):
    """Fully connected layer: ``y = act(x @ kernel + bias)``.

    Args:
        x: (N, I) numeric array; converted to the kernel's dtype.
        kernel: (I, U) float32 or float64 (Keras layout); fixes the dtype of every result.
        bias: (U,) of the same dtype, or None (no bias).
        activation: "linear" | "relu" | "tanh" | "sigmoid" (case-insensitive; None = "linear").
        training: keep a cache for :func:`dense_backward` (else the cache is None).

    Returns:
        ``(y, cache)``: y (N, U) and a :class:`DenseCache` or None.
    """
    activation = check_activation(activation, "activation", DENSE_ACTIVATIONS)
    training = check_bool(training, "training")
    # 1. the kernel fixes dtype, I and U
    kernel = as_array(kernel, "kernel")
    dtype = weight_dtype(kernel, "kernel")
    if kernel.ndim != 2 or kernel.shape[0] < 1 or kernel.shape[1] < 1:
        raise ValueError(f"kernel must have shape (input_dim, units) with input_dim, units >= 1, "
                         f"got {format_shape(kernel.shape)}")
    input_dim, units = kernel.shape
    kernel = canonical(kernel, dtype)
    if bias is not None:
        bias = canonical_weight(bias, "bias", dtype, (units,))
    # 2. the input fixes N
    x = as_array(x, "x")
    check_numeric(x, "x")
    x_spec = ("rows", input_dim)
    check_ndim(x, "x", x_spec)
    check_shape(x, "x", x_spec)
    x = canonical(x, dtype)
    rows = x.shape[0]

    impl = _backend.get_impl()
    y, inner = impl.dense_forward(x, kernel, bias, activation=activation, training=training)
    if inner is None:
        return y, None
    return y, DenseCache(impl, inner, dtype, rows, units)


def dense_backward(d_y, cache):
    """Backward pass of :func:`dense_forward`.

    Args:
        d_y: (N, U) gradient of the loss with respect to y; converted to the forward dtype.
        cache: the cache of ``dense_forward(..., training=True)``.

    Returns:
        ``(dx, d_kernel, d_bias)`` in the forward dtype: dx (N, I), d_kernel (I, U), d_bias (U,) or
        None when the forward pass had no bias.
    """
    cache = check_cache(cache, DenseCache, "dense_forward")
    d_y = canonical_data(d_y, "d_y", cache.dtype, (cache.rows, cache.units))
    return cache.impl.dense_backward(d_y, cache.inner)
