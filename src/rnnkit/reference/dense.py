"""NumPy reference for the fully connected layer: ``y = act(x @ kernel + bias)``.

Shapes: N rows of the input, I input features, U units.
Written for clarity, not speed; the native kernel (``rnnkit._native.dense_forward``) is checked
against it. Softmax is not offered here: ``layers.Dense`` applies it after a linear GEMM.
"""

from __future__ import annotations

from ._common import Cache
from .activations import get_activation

#: the point-wise activations this kernel fuses after the GEMM (ARCHITECTURE.md)
DENSE_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")


def dense_forward(x, kernel, bias=None, activation="linear", training=True):
    """Forward pass of a dense layer.

    x: (N, I) inputs; kernel: (I, U); bias: (U,) or None; activation: linear|relu|tanh|sigmoid.
    Returns ``(y, cache)``: y (N, U) and, with ``training=True``, the cache for
    :func:`dense_backward` (``None`` otherwise).
    """
    if activation not in DENSE_ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(DENSE_ACTIVATIONS)}, got {activation!r}")
    act = get_activation(activation)
    # 1. GEMM: z = x @ K (+ b)
    z = x @ kernel
    if bias is not None:
        z += bias
    # 2. point-wise activation
    y = act.forward(z).astype(kernel.dtype, copy=False)
    if not training:
        return y, None
    return y, Cache(x=x, kernel=kernel, has_bias=bias is not None, activation=activation, y=y)


def dense_backward(d_y, cache):
    """Backward pass of :func:`dense_forward`.

    d_y: (N, U) gradient of the loss with respect to ``y``. Returns freshly allocated
    ``(dx, d_kernel, d_bias)``: dx (N, I), d_kernel (I, U), d_bias (U,) or ``None`` when the forward
    pass had no bias.
    """
    # 1. point-wise: dz = d_y * act'(z), the derivative written from the cached output y
    if cache.activation == "linear":
        dz = d_y
    else:
        dz = d_y * get_activation(cache.activation).derivative(cache.y)
    # 2. GEMMs: dx = dz @ Kᵀ, dK = xᵀ @ dz; the bias gradient is a column sum
    dx = dz @ cache.kernel.T
    d_kernel = cache.x.T @ dz
    d_bias = dz.sum(axis=0) if cache.has_bias else None
    return dx, d_kernel, d_bias
