"""SimpleRNN reference (NumPy, written for clarity): ``h_t = act(x_t @ K + b + h_{t-1} @ R)``.

Shapes: B batch, T time steps, I input features, H units.
Masks, ``go_backwards`` and outputs follow docs/SPEC.md §7–§9; see ``_common`` for the time-order bookkeeping.
"""

from __future__ import annotations

import numpy as np

from ._common import Cache, initial_state, output_gradient, to_input_order, to_processing_order, zeros_if_none
from .activations import get_activation


def simple_rnn_forward(x, kernel, recurrent_kernel, bias=None, h0=None, activation="tanh",
                       mask=None, go_backwards=False, training=True, return_sequences=True):
    """Run a SimpleRNN over a batch of sequences.

    x (B,T,I); kernel K (I,H); recurrent_kernel R (H,H); bias b (H,) or None; h0 (B,H) or None (zeros);
    mask (B,T) bool in input time order or None. All arrays share the weights' dtype.

    Returns ``outputs, h_last, cache``: outputs (B,T,H) in processing order with zero rows at masked
    steps (None unless ``return_sequences``); h_last (B,H), the state after the last valid step;
    cache (None unless ``training``) with x, valid, go_backwards, return_sequences, kernel,
    recurrent_kernel, has_bias, activation, h_prev (B,T,H) the state entering each step, and
    y (B,T,H) the activation output of each step.
    """
    act = get_activation(activation, "activation")
    dtype = kernel.dtype
    batch, steps = x.shape[:2]
    units = recurrent_kernel.shape[0]
    x, valid = to_processing_order(x, mask, go_backwards)
    b = zeros_if_none(bias, (units,), dtype)
    h = initial_state(h0, batch, units, dtype)

    outputs = np.zeros((batch, steps, units), dtype) if return_sequences else None
    if training:
        h_prev = np.empty((batch, steps, units), dtype)
        y_seq = np.empty((batch, steps, units), dtype)
    for t in range(steps):
        m = valid[:, t]                                          # (B,1)
        y = act.forward(x[:, t] @ kernel + b + h @ recurrent_kernel)
        if training:
            h_prev[:, t], y_seq[:, t] = h, y
        if return_sequences:
            outputs[:, t] = np.where(m, y, 0)
        h = np.where(m, y, h)                                    # masked: carry the state

    cache = None
    if training:
        cache = Cache(x=x, valid=valid, go_backwards=go_backwards, return_sequences=return_sequences,
                      kernel=kernel, recurrent_kernel=recurrent_kernel, has_bias=bias is not None,
                      activation=act.name, h_prev=h_prev, y=y_seq)
    return outputs, h, cache


def simple_rnn_backward(d_outputs, d_h_last, cache):
    """Backpropagate through time.

    d_outputs (B,T,H) in processing order or None; d_h_last (B,H) or None (None means zero).
    Returns fresh arrays ``dx (B,T,I), d_kernel (I,H), d_recurrent_kernel (H,H), d_bias (H,) | None,
    d_h0 (B,H)`` in the weights' dtype; d_bias is None when the forward pass had no bias.
    """
    act = get_activation(cache.activation, "activation")
    kernel, recurrent_kernel = cache.kernel, cache.recurrent_kernel
    x, valid = cache.x, cache.valid
    batch, steps = x.shape[:2]
    units = recurrent_kernel.shape[0]
    d_out = output_gradient(d_outputs, cache, units)
    dh = zeros_if_none(d_h_last, (batch, units), kernel.dtype).copy()

    dx = np.zeros(x.shape, kernel.dtype)
    d_kernel = np.zeros_like(kernel)
    d_recurrent_kernel = np.zeros_like(recurrent_kernel)
    d_bias = np.zeros(units, kernel.dtype)
    for t in reversed(range(steps)):
        m = valid[:, t]
        dh = dh + d_out[:, t]
        # Gradient w.r.t. the pre-activation; zero at a masked step, which then adds nothing below.
        dz = np.where(m, dh, 0) * act.derivative(cache.y[:, t])   # (B,H)
        dx[:, t] = dz @ kernel.T
        d_kernel += x[:, t].T @ dz
        d_recurrent_kernel += cache.h_prev[:, t].T @ dz
        d_bias += dz.sum(axis=0)
        dh = np.where(m, dz @ recurrent_kernel.T, dh)              # masked: gradient passes through
    return (to_input_order(dx, cache.go_backwards), d_kernel, d_recurrent_kernel,
            d_bias if cache.has_bias else None, dh)
