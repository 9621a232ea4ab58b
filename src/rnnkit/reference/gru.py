"""GRU reference (NumPy, written for clarity). Gate blocks z, r, h (Keras order).

reset_after=True (default; PyTorch's and cuDNN's variant), bias (2,3H) = [input bias; recurrent bias]:

    xz, xr, xh = split(x_t @ K + b[0])        mz, mr, mh = split(h_{t-1} @ R + b[1])
    z = ract(xz + mz)   r = ract(xr + mr)   hh = act(xh + r * mh)
    h_t = z * h_{t-1} + (1 - z) * hh

reset_after=False, bias (3H,): z and r as above without a recurrent bias, and the reset gate is
applied before the recurrent product of the candidate:

    hh = act(xh + (r * h_{t-1}) @ R_h)        (xh includes b_h)

Shapes: B batch, T time steps, I input features, H units, G = 3 gates.
Masks, ``go_backwards`` and outputs follow docs/SPEC.md §7–§9; see ``_common`` for the time-order bookkeeping.
"""

from __future__ import annotations

import numpy as np

from ._common import (Cache, initial_state, output_gradient, split_gates, to_input_order,
                      to_processing_order, zeros_if_none)
from .activations import get_activation

GATES = 3


def gru_forward(x, kernel, recurrent_kernel, bias=None, h0=None, activation="tanh",
                recurrent_activation="sigmoid", reset_after=True, mask=None, go_backwards=False,
                training=True, return_sequences=True):
    """Run a GRU over a batch of sequences.

    x (B,T,I); kernel K (I,3H); recurrent_kernel R (H,3H); bias b (2,3H) if reset_after else (3H,),
    or None; h0 (B,H) or None (zeros); mask (B,T) bool in input time order or None.
    All arrays share the weights' dtype.

    Returns ``outputs, h_last, cache``: outputs (B,T,H) in processing order with zero rows at masked
    steps (None unless ``return_sequences``); h_last (B,H), the state after the last valid step;
    cache (None unless ``training``) with x, valid, go_backwards, return_sequences, kernel,
    recurrent_kernel, has_bias, activation, recurrent_activation, reset_after, h_prev (B,T,H) the
    state entering each step, gates (B,T,3H) the activation outputs [z, r, hh], and, for
    reset_after only, mh (B,T,H) = h_{t-1} @ R_h + b[1]_h (None otherwise).
    """
    act = get_activation(activation, "activation")
    ract = get_activation(recurrent_activation, "recurrent_activation")
    dtype = kernel.dtype
    batch, steps = x.shape[:2]
    units = recurrent_kernel.shape[0]
    x, valid = to_processing_order(x, mask, go_backwards)
    b = zeros_if_none(bias, (2, GATES * units) if reset_after else (GATES * units,), dtype)
    input_bias, recurrent_bias = (b[0], b[1]) if reset_after else (b, np.zeros_like(b))
    r_zr, r_h = recurrent_kernel[:, :2 * units], recurrent_kernel[:, 2 * units:]
    h = initial_state(h0, batch, units, dtype)

    outputs = np.zeros((batch, steps, units), dtype) if return_sequences else None
    if training:
        h_prev = np.empty((batch, steps, units), dtype)
        gates = np.empty((batch, steps, GATES * units), dtype)
        mh_seq = np.empty((batch, steps, units), dtype) if reset_after else None
    for t in range(steps):
        m = valid[:, t]                                          # (B,1)
        # 1. input projection (B,3H) and the recurrent projection of the update and reset gates
        xz, xr, xh = split_gates(x[:, t] @ kernel + input_bias, GATES)
        mz, mr = split_gates(h @ r_zr + recurrent_bias[:2 * units], 2)
        z, r = ract.forward(xz + mz), ract.forward(xr + mr)
        # 2. candidate: the reset gate scales the recurrent product (reset_after) or the state
        if reset_after:
            mh = h @ r_h + recurrent_bias[2 * units:]
            hh = act.forward(xh + r * mh)
        else:
            hh = act.forward(xh + (r * h) @ r_h)
        h_new = z * h + (1 - z) * hh
        if training:
            h_prev[:, t] = h
            gates[:, t] = np.concatenate([z, r, hh], axis=-1)
            if reset_after:
                mh_seq[:, t] = mh
        if return_sequences:
            outputs[:, t] = np.where(m, h_new, 0)
        h = np.where(m, h_new, h)                                # masked: carry the state

    cache = None
    if training:
        cache = Cache(x=x, valid=valid, go_backwards=go_backwards, return_sequences=return_sequences,
                      kernel=kernel, recurrent_kernel=recurrent_kernel, has_bias=bias is not None,
                      activation=act.name, recurrent_activation=ract.name, reset_after=reset_after,
                      h_prev=h_prev, gates=gates, mh=mh_seq)
    return outputs, h, cache


def gru_backward(d_outputs, d_h_last, cache):
    """Backpropagate through time.

    d_outputs (B,T,H) in processing order or None; d_h_last (B,H) or None (None means zero).
    Returns fresh arrays ``dx (B,T,I), d_kernel (I,3H), d_recurrent_kernel (H,3H),
    d_bias ((2,3H) if reset_after else (3H,)) | None, d_h0 (B,H)`` in the weights' dtype;
    d_bias is None when the forward pass had no bias.
    """
    act = get_activation(cache.activation, "activation")
    ract = get_activation(cache.recurrent_activation, "recurrent_activation")
    kernel, recurrent_kernel = cache.kernel, cache.recurrent_kernel
    x, valid, reset_after = cache.x, cache.valid, cache.reset_after
    dtype = kernel.dtype
    batch, steps = x.shape[:2]
    units = recurrent_kernel.shape[0]
    r_zr, r_h = recurrent_kernel[:, :2 * units], recurrent_kernel[:, 2 * units:]
    d_out = output_gradient(d_outputs, cache, units)
    dh = zeros_if_none(d_h_last, (batch, units), dtype).copy()

    dx = np.zeros(x.shape, dtype)
    d_kernel = np.zeros_like(kernel)
    d_recurrent_kernel = np.zeros_like(recurrent_kernel)
    d_input_bias = np.zeros(GATES * units, dtype)
    d_recurrent_bias = np.zeros(GATES * units, dtype)            # used by reset_after only
    for t in reversed(range(steps)):
        m = valid[:, t]
        z, r, hh = split_gates(cache.gates[:, t], GATES)
        h_prev = cache.h_prev[:, t]
        dh = dh + d_out[:, t]
        # Gradient reaching this step's new state; zero at a masked step, which then adds nothing.
        dh_new = np.where(m, dh, 0)
        d_hh_pre = dh_new * (1 - z) * act.derivative(hh)          # w.r.t. the candidate's pre-activation
        dz_pre = dh_new * (h_prev - hh) * ract.derivative(z)
        if reset_after:
            mh = cache.mh[:, t]
            dr_pre = d_hh_pre * mh * ract.derivative(r)
            # Gradient w.r.t. the recurrent projection h_{t-1} @ R + b[1]  (B,3H)
            d_recurrent = np.concatenate([dz_pre, dr_pre, d_hh_pre * r], axis=-1)
            d_recurrent_kernel += h_prev.T @ d_recurrent
            d_recurrent_bias += d_recurrent.sum(axis=0)
            dh_prev = dh_new * z + d_recurrent @ recurrent_kernel.T
        else:
            d_reset_h = d_hh_pre @ r_h.T                          # w.r.t. r * h_{t-1}  (B,H)
            dr_pre = d_reset_h * h_prev * ract.derivative(r)
            d_zr = np.concatenate([dz_pre, dr_pre], axis=-1)     # (B,2H)
            d_recurrent_kernel[:, :2 * units] += h_prev.T @ d_zr
            d_recurrent_kernel[:, 2 * units:] += (r * h_prev).T @ d_hh_pre
            dh_prev = dh_new * z + d_zr @ r_zr.T + d_reset_h * r
        # Gradient w.r.t. the input projection x_t @ K + b[0]  (B,3H)
        d_input = np.concatenate([dz_pre, dr_pre, d_hh_pre], axis=-1)
        dx[:, t] = d_input @ kernel.T
        d_kernel += x[:, t].T @ d_input
        d_input_bias += d_input.sum(axis=0)
        dh = np.where(m, dh_prev, dh)                            # masked: gradient passes through

    d_bias = None
    if cache.has_bias:
        d_bias = np.stack([d_input_bias, d_recurrent_bias]) if reset_after else d_input_bias
    return to_input_order(dx, cache.go_backwards), d_kernel, d_recurrent_kernel, d_bias, dh
