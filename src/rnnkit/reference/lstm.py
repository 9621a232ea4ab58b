"""LSTM reference (NumPy, written for clarity). Gate blocks i, f, c, o (Keras order):

    z = x_t @ K + h_{t-1} @ R + b                 split into z_i, z_f, z_c, z_o
    i = ract(z_i)   f = ract(z_f)   g = act(z_c)   o = ract(z_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * act(c_t)

Shapes: B batch, T time steps, I input features, H units, G = 4 gates.
Masks, ``go_backwards`` and outputs follow docs/SPEC.md §7–§9; see ``_common`` for the time-order bookkeeping.
"""

from __future__ import annotations

import numpy as np

from ._common import (Cache, initial_state, output_gradient, split_gates, to_input_order,
                      to_processing_order, zeros_if_none)
from .activations import get_activation

GATES = 4


def lstm_forward(x, kernel, recurrent_kernel, bias=None, h0=None, c0=None, activation="tanh",
                 recurrent_activation="sigmoid", mask=None, go_backwards=False, training=True,
                 return_sequences=True):
    """Run an LSTM over a batch of sequences.

    x (B,T,I); kernel K (I,4H); recurrent_kernel R (H,4H); bias b (4H,) or None; h0, c0 (B,H) or None
    (zeros); mask (B,T) bool in input time order or None. All arrays share the weights' dtype.

    Returns ``outputs, h_last, c_last, cache``: outputs (B,T,H) in processing order with zero rows at
    masked steps (None unless ``return_sequences``); h_last, c_last (B,H), the states after the last
    valid step; cache (None unless ``training``) with x, valid, go_backwards, return_sequences, kernel,
    recurrent_kernel, has_bias, activation, recurrent_activation, h_prev and c_prev (B,T,H) the states
    entering each step, gates (B,T,4H) the activation outputs [i, f, g, o], and act_c (B,T,H) = act(c_t)
    of the step's new cell state.
    """
    act = get_activation(activation, "activation")
    ract = get_activation(recurrent_activation, "recurrent_activation")
    dtype = kernel.dtype
    batch, steps = x.shape[:2]
    units = recurrent_kernel.shape[0]
    x, valid = to_processing_order(x, mask, go_backwards)
    b = zeros_if_none(bias, (GATES * units,), dtype)
    h = initial_state(h0, batch, units, dtype)
    c = initial_state(c0, batch, units, dtype)

    outputs = np.zeros((batch, steps, units), dtype) if return_sequences else None
    if training:
        h_prev = np.empty((batch, steps, units), dtype)
        c_prev = np.empty((batch, steps, units), dtype)
        gates = np.empty((batch, steps, GATES * units), dtype)
        act_c = np.empty((batch, steps, units), dtype)
    for t in range(steps):
        m = valid[:, t]                                          # (B,1)
        # 1. gate pre-activations: input GEMM + recurrent GEMM + bias  (B,4H)
        z_i, z_f, z_c, z_o = split_gates(x[:, t] @ kernel + h @ recurrent_kernel + b, GATES)
        # 2. point-wise: gates, new cell state, new hidden state
        i, f, g, o = ract.forward(z_i), ract.forward(z_f), act.forward(z_c), ract.forward(z_o)
        c_new = f * c + i * g
        a_c = act.forward(c_new)
        h_new = o * a_c
        if training:
            h_prev[:, t], c_prev[:, t] = h, c
            gates[:, t] = np.concatenate([i, f, g, o], axis=-1)
            act_c[:, t] = a_c
        if return_sequences:
            outputs[:, t] = np.where(m, h_new, 0)
        h = np.where(m, h_new, h)                                # masked: carry both states
        c = np.where(m, c_new, c)

    cache = None
    if training:
        cache = Cache(x=x, valid=valid, go_backwards=go_backwards, return_sequences=return_sequences,
                      kernel=kernel, recurrent_kernel=recurrent_kernel, has_bias=bias is not None,
                      activation=act.name, recurrent_activation=ract.name,
                      h_prev=h_prev, c_prev=c_prev, gates=gates, act_c=act_c)
    return outputs, h, c, cache


def lstm_backward(d_outputs, d_h_last, d_c_last, cache):
    """Backpropagate through time.

    d_outputs (B,T,H) in processing order or None; d_h_last, d_c_last (B,H) or None (None means zero).
    Returns fresh arrays ``dx (B,T,I), d_kernel (I,4H), d_recurrent_kernel (H,4H), d_bias (4H,) | None,
    d_h0 (B,H), d_c0 (B,H)`` in the weights' dtype; d_bias is None when the forward pass had no bias.
    """
    act = get_activation(cache.activation, "activation")
    ract = get_activation(cache.recurrent_activation, "recurrent_activation")
    kernel, recurrent_kernel = cache.kernel, cache.recurrent_kernel
    x, valid = cache.x, cache.valid
    dtype = kernel.dtype
    batch, steps = x.shape[:2]
    units = recurrent_kernel.shape[0]
    d_out = output_gradient(d_outputs, cache, units)
    dh = zeros_if_none(d_h_last, (batch, units), dtype).copy()
    dc = zeros_if_none(d_c_last, (batch, units), dtype).copy()

    dx = np.zeros(x.shape, dtype)
    d_kernel = np.zeros_like(kernel)
    d_recurrent_kernel = np.zeros_like(recurrent_kernel)
    d_bias = np.zeros(GATES * units, dtype)
    for t in reversed(range(steps)):
        m = valid[:, t]
        i, f, g, o = split_gates(cache.gates[:, t], GATES)
        a_c = cache.act_c[:, t]
        dh = dh + d_out[:, t]
        # Gradients reaching this step's new states; zero at a masked step, which then adds nothing.
        dh_new = np.where(m, dh, 0)
        dc_new = np.where(m, dc, 0) + dh_new * o * act.derivative(a_c)
        # Gradient w.r.t. the gate pre-activations z  (B,4H)
        dz = np.concatenate([
            dc_new * g * ract.derivative(i),
            dc_new * cache.c_prev[:, t] * ract.derivative(f),
            dc_new * i * act.derivative(g),
            dh_new * a_c * ract.derivative(o),
        ], axis=-1)
        dx[:, t] = dz @ kernel.T
        d_kernel += x[:, t].T @ dz
        d_recurrent_kernel += cache.h_prev[:, t].T @ dz
        d_bias += dz.sum(axis=0)
        dh = np.where(m, dz @ recurrent_kernel.T, dh)            # masked: gradients pass through
        dc = np.where(m, dc_new * f, dc)
    return (to_input_order(dx, cache.go_backwards), d_kernel, d_recurrent_kernel,
            d_bias if cache.has_bias else None, dh, dc)
