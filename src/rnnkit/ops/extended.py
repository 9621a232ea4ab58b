"""The issue-16 options of the recurrent ops: Keras dropout / recurrent_dropout masks, zoneout, LSTM
projection and layer normalisation (docs/SPEC.md §18). ``ops.<cell>_forward`` hands a call here
when any of them is given; everything is validated, then

- an input-dropout mask alone, shared by all gates ((B, I)), runs on the active backend (native
  included): x ⊙ m is the cell's input and backward scales dx by m;
- zoneout (with or without that input mask) runs natively when the backend has it for the cell
  (``ZONEOUT_CELLS``): the keep weights go to the native cell, which blends the states in its step;
- everything else runs on the NumPy reference (rnnkit.reference.extended), whatever the backend:
  there is no native kernel for it yet (it is slow: a Python loop over time).

The backward returns the cell's usual tuple, then the gradients of the extra weights (projection,
then the layer-norm parameters in the order they were given).
"""

from __future__ import annotations

import numpy as np

from .. import _backend
from ._checks import RecurrentCache, make_cache
from .._validation import (as_array, canonical, canonical_data, canonical_weight,
                           check_ndim, check_numeric, check_shape, format_shape, sequence_mask,
                           weight_dtype)

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
STATE_NAMES = {"simple_rnn": ("h0",), "lstm": ("h0", "c0"), "gru": ("h0",)}


def _multipliers(value, name, batch, gates, size, dtype):
    """A dropout mask: (B, size) shared by the gates, or (B, G, size) one per gate block; finite,
    >= 0. Returns (array, shared?)."""
    arr = as_array(value, name)
    check_numeric(arr, name)
    if arr.shape == (batch, size):
        shared = True
    elif arr.shape == (batch, gates, size):
        shared = gates == 1
    else:
        raise ValueError(f"{name} must have shape ({batch}, {size}) (one mask for every gate) or "
                         f"({batch}, {gates}, {size}) (one per gate block), got {format_shape(arr.shape)}")
    arr = canonical(arr, dtype)
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name} must hold finite non-negative multipliers (0 or 1 / (1 - rate))")
    return arr, shared


def _keep_weights(value, name, batch, time, size, dtype):
    """Zoneout keep weights: a number p in [0, 1] (inference: the expectation) or (B, T, size) in [0, 1]."""
    if value is None:
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
        return np.full((batch, time, size), value, dtype)
    arr = as_array(value, name)
    check_numeric(arr, name)
    if arr.shape != (batch, time, size):
        raise ValueError(f"{name} must be a number in [0, 1] or have shape ({batch}, {time}, {size}), "
                         f"got {format_shape(arr.shape)}")
    arr = canonical(arr, dtype)
    if not ((arr >= 0) & (arr <= 1)).all():
        raise ValueError(f"{name} must hold keep weights in [0, 1]")
    return arr


def extended_forward(cell, x, kernel, recurrent_kernel, bias, states, *, activation, recurrent_activation,
                     reset_after, mask, lengths, go_backwards, training, return_sequences,
                     dropout_mask, recurrent_dropout_mask, zoneout, projection, layer_norm):
    """Validate, then run (see the module docstring). ``states``: tuple of initial states.
    Returns ``(outputs, *final_states, cache)``."""

    G = GATES[cell]
    kernel = as_array(kernel, "kernel")
    dtype = weight_dtype(kernel, "kernel")
    if kernel.ndim != 2 or kernel.shape[0] < 1 or kernel.shape[1] < G or kernel.shape[1] % G:
        raise ValueError(f"kernel must have shape (input_dim, {G} * units), got {format_shape(kernel.shape)}")
    kernel = canonical(kernel, dtype)
    I, GH = kernel.shape
    H = GH // G
    S = H
    if projection is not None:
        if cell != "lstm":
            raise ValueError(f"projection is an LSTM option; {cell} has none")
        projection = as_array(projection, "projection")
        if projection.ndim != 2 or projection.shape[0] != H or projection.shape[1] < 1:
            raise ValueError(f"projection must have shape ({H}, proj_units) with proj_units >= 1, "
                             f"got {format_shape(projection.shape)}")
        projection = canonical_weight(projection, "projection", dtype, projection.shape)
        S = projection.shape[1]
    recurrent_kernel = canonical_weight(recurrent_kernel, "recurrent_kernel", dtype, (S, GH),
                                        hint="(rows: the projection size)" if projection is not None else "")
    if bias is not None:
        shape = (2, GH) if cell == "gru" and reset_after else (GH,)
        bias = canonical_weight(bias, "bias", dtype, shape)
    if layer_norm is not None:
        if cell == "simple_rnn":
            raise ValueError("layer_norm is an LSTM / GRU option; simple_rnn has none")
        if cell == "gru" and not reset_after:
            raise ValueError("layer_norm needs reset_after=True (haste's LayerNormGRU); got reset_after=False")
        names = ["gamma_x", "beta_x", "gamma_h", "beta_h"] + (["gamma_c", "beta_c"] if cell == "lstm" else [])
        if not isinstance(layer_norm, (list, tuple)) or len(layer_norm) != len(names):
            raise ValueError(f"layer_norm must be a list of {len(names)} arrays ({', '.join(names)})")
        layer_norm = [canonical_weight(v, f"layer_norm[{k}] ({n})", dtype, (GH,) if k < 4 else (H,))
                      for k, (v, n) in enumerate(zip(layer_norm, names))]
    x = as_array(x, "x")
    check_numeric(x, "x")
    spec = ("batch", "time", I)
    check_ndim(x, "x", spec)
    check_shape(x, "x", spec)
    x = canonical(x, dtype)
    B, T = x.shape[:2]
    sizes = (S, H)
    states = [None if v is None else canonical_data(v, n, dtype, (B, sizes[k]), f"= (batch, {sizes[k]})")
              for k, (n, v) in enumerate(zip(STATE_NAMES[cell], states))]
    mask = sequence_mask(mask, lengths, B, T)
    shared_input = True
    if dropout_mask is not None:
        dropout_mask, shared_input = _multipliers(dropout_mask, "dropout_mask", B, G, I, dtype)
    if recurrent_dropout_mask is not None:
        recurrent_dropout_mask, _ = _multipliers(recurrent_dropout_mask, "recurrent_dropout_mask", B, G, S, dtype)
        if recurrent_dropout_mask.ndim == 2:
            recurrent_dropout_mask = np.repeat(recurrent_dropout_mask[:, None], G, axis=1)
    keeps = None
    if zoneout is not None:
        n_states = 2 if cell == "lstm" else 1
        if not isinstance(zoneout, (list, tuple)):
            zoneout = [zoneout]
        if len(zoneout) > n_states:
            raise ValueError(f"zoneout: {cell} has {n_states} state(s), got {len(zoneout)} entries")
        keeps = [_keep_weights(v, f"zoneout[{k}]", B, T, sizes[k], dtype) for k, v in enumerate(zoneout)]
    kwargs = dict(activation=activation, recurrent_activation=recurrent_activation,
                  reset_after=reset_after, go_backwards=go_backwards, training=training,
                  return_sequences=return_sequences)

    if (dropout_mask is not None and dropout_mask.ndim == 2 and recurrent_dropout_mask is None
            and keeps is None and projection is None and layer_norm is None):
        # the input-side mask alone: the plain cell (active backend) on x ⊙ m
        from . import recurrent as plain
        scale = dropout_mask[:, None, :]
        extra = {} if cell == "simple_rnn" else {"recurrent_activation": recurrent_activation}
        if cell == "gru":
            extra["reset_after"] = reset_after
        res = getattr(plain, cell + "_forward")(np.ascontiguousarray(x * scale), kernel, recurrent_kernel, bias,
                                                *states, activation=activation, mask=mask,
                                                go_backwards=go_backwards, training=training,
                                                return_sequences=return_sequences, **extra)
        if res[-1] is not None:
            res[-1].input_scale = scale
        return res

    impl = _backend.get_impl()
    if (keeps is not None and cell in getattr(impl, "ZONEOUT_CELLS", ()) and recurrent_dropout_mask is None
            and projection is None and layer_norm is None and (dropout_mask is None or dropout_mask.ndim == 2)
            and x.size):
        # zoneout (with or without the shared input mask): the native cells blend the states in their
        # step (cpp/src/*_forward.cc) and split the gradients the same way
        scale = None if dropout_mask is None else dropout_mask[:, None, :]
        xs = x if scale is None else x * scale
        if mask is not None and not np.isfinite(xs[~mask]).all():
            xs = xs.copy()
            xs[~mask] = 0
        zone = dict(zoneout_h=keeps[0])
        if cell != "gru":  # (only the GRU has reset_after; SimpleRNN has no recurrent activation)
            kwargs.pop("reset_after")
        if cell == "simple_rnn":
            kwargs.pop("recurrent_activation")
        if cell == "lstm":
            zone["zoneout_c"] = keeps[1] if len(keeps) > 1 else None
        res = getattr(impl, cell + "_forward")(np.ascontiguousarray(xs), kernel, recurrent_kernel, bias, *states,
                                                mask=mask, **zone, **kwargs)
        cache = make_cache(cell, impl, res[-1], x, H, return_sequences)
        if cache is not None:
            cache.input_scale = scale
        return (*res[:-1], cache)

    from ..reference import extended as ref
    if dropout_mask is not None and dropout_mask.ndim == 2:
        dropout_mask = np.repeat(dropout_mask[:, None], G, axis=1)
    if mask is not None and not np.isfinite(x[~mask]).all():
        x = x.copy()
        x[~mask] = 0
    outputs, finals, inner = ref.extended_forward(
        cell, x, kernel, recurrent_kernel, bias, states, mask=mask, dropout_mask=dropout_mask,
        recurrent_dropout_mask=recurrent_dropout_mask, zoneout=keeps, projection=projection,
        layer_norm=layer_norm, **kwargs)
    cache = None
    if inner is not None:
        inner.has_bias = bias is not None
        inner.n_states = len(finals)
        cache = RecurrentCache(cell, EXTENDED, inner, dtype, B, T, S, return_sequences)
        cache.state_sizes = sizes[:len(finals)]
    return (outputs, *finals, cache)


class _Extended:
    """Backward of the reference-only options, with the ops' backward signatures."""

    __name__ = "rnnkit.reference.extended"

    @staticmethod
    def _backward(d_outputs, d_states, inner):
        from ..reference import extended as ref
        dx, dk, drk, db, d_init, extra = ref.extended_backward(d_outputs, list(d_states), inner)
        return (dx, dk, drk, db if inner.has_bias else None, *d_init, *extra)

    def simple_rnn_backward(self, d_outputs, d_h_last, cache):
        return self._backward(d_outputs, (d_h_last,), cache)

    def gru_backward(self, d_outputs, d_h_last, cache):
        return self._backward(d_outputs, (d_h_last,), cache)

    def lstm_backward(self, d_outputs, d_h_last, d_c_last, cache):
        return self._backward(d_outputs, (d_h_last, d_c_last), cache)


EXTENDED = _Extended()


def any_option(*options):
    for o in options:
        if o is not None:
            return True
    return False
