"""Helpers shared by the reference cells: the cache object and time-order/masking bookkeeping.

Every cell runs in *processing order*: ``x`` and ``mask`` are reversed in time first when
``go_backwards`` is set, the loop then always runs t = 0 .. T-1, and ``dx`` is flipped back to input
order at the end of backward. ``valid`` is the mask in processing order as a (B,T,1) bool array
(all True without a mask), so ``valid[:, t]`` broadcasts against a (B,H) state.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np


class Cache(SimpleNamespace):
    """What a reference backward needs from its forward pass (attributes are set per cell).

    ``impl`` is the ``rnnkit.reference`` package, so ``ops.*_backward`` can hand the cache back to
    the implementation that made it even if the backend was switched in between.
    """

    def __init__(self, **fields):
        super().__init__(impl=importlib.import_module(__package__), **fields)


def to_processing_order(x, mask, go_backwards):
    """x (B,T,I), mask (B,T) bool or None, both in input order -> x (B,T,I), valid (B,T,1) bool,
    both in processing order (views where possible)."""
    batch, steps = x.shape[:2]
    valid = np.ones((batch, steps), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if go_backwards:
        x, valid = x[:, ::-1], valid[:, ::-1]
    return x, valid[:, :, None]


def to_input_order(dx, go_backwards):
    """dx (B,T,I) in processing order -> input order."""
    return np.ascontiguousarray(dx[:, ::-1]) if go_backwards else dx


def initial_state(state, batch, units, dtype):
    """A fresh (B,H) state: a copy of ``state``, or zeros when it is None."""
    if state is None:
        return np.zeros((batch, units), dtype=dtype)
    return np.array(state, dtype=dtype, copy=True)


def zeros_if_none(array, shape, dtype):
    """``array`` (as ``dtype``), or zeros of ``shape`` when it is None (absent bias / gradient)."""
    if array is None:
        return np.zeros(shape, dtype=dtype)
    return np.asarray(array, dtype=dtype)


def output_gradient(d_outputs, cache, units):
    """The gradient w.r.t. outputs (B,T,H) in processing order, zero at masked steps.

    Masked output rows are the constant zero, so whatever arrives for them contributes nothing."""
    batch, steps = cache.x.shape[:2]
    if d_outputs is None:
        return np.zeros((batch, steps, units), dtype=cache.kernel.dtype)
    if not cache.return_sequences:
        raise ValueError("d_outputs must be None when the forward pass ran with return_sequences=False")
    return np.where(cache.valid, np.asarray(d_outputs, dtype=cache.kernel.dtype), 0)


def split_gates(a, gates):
    """(..., G*H) -> list of G (..., H) views, one per gate block."""
    return np.split(a, gates, axis=-1)
