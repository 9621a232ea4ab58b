"""What the recurrent ops (ops/recurrent.py) share: argument checking and canonicalisation, the
:class:`RecurrentCache` a training forward hands back, the checks of the backward's inputs, and the
results of empty inputs (T = 0 or B = 0), which never reach an implementation."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validation import (
    as_array,
    canonical,
    canonical_data,
    sequence_mask,
    canonical_weight,
    check_bool,
    check_cache,
    check_ndim,
    check_numeric,
    check_shape,
    format_shape,
    weight_dtype,
)


class RecurrentCache:
    """What a recurrent ``*_forward(..., training=True)`` returns for the matching ``*_backward``.

    Attributes: ``cell`` ("simple_rnn" | "lstm" | "gru"), ``impl`` (the module whose backward runs),
    ``inner`` (that implementation's private cache), ``dtype``, ``batch``, ``time``, ``units``,
    ``return_sequences`` — the last five let backward check the incoming gradients' shapes.
    """

    __slots__ = ("cell", "impl", "inner", "dtype", "batch", "time", "units", "return_sequences",
                 "input_scale", "state_sizes")

    def __init__(self, cell, impl, inner, dtype, batch, time, units, return_sequences):
        self.cell = cell
        self.impl = impl
        self.inner = inner
        self.dtype = dtype
        self.batch = batch
        self.time = time
        self.units = units
        self.return_sequences = return_sequences
        #: (B, 1, I) input-dropout multipliers applied before the cell (dx is scaled by them), or None
        self.input_scale = None
        #: the states' sizes when they differ from ``units`` (LSTM projection: (P, H)), or None
        self.state_sizes = None

    def __repr__(self) -> str:
        return (
            f"RecurrentCache(cell={self.cell!r}, backend={getattr(self.impl, '__name__', self.impl)!r}, "
            f"batch={self.batch}, time={self.time}, units={self.units}, dtype={self.dtype})"
        )


# ---------------------------------------------------------------------------------------------
# Shared validation (one path for all cells, parameterised by the gate count G)
# ---------------------------------------------------------------------------------------------


def prepare(gates, x, kernel, recurrent_kernel, bias, states, mask, lengths, reset_after=None):
    """Validate and canonicalise the arguments shared by every cell.

    ``states`` is a tuple of (name, value) pairs (``("h0", h0)``, ...). ``reset_after`` is None for
    cells without a GRU bias layout. Already-canonical arrays pass through without copies.

    Returns the tuple ``(dtype, x (B,T,I), kernel (I,G*H), recurrent_kernel (H,G*H), bias | None,
    states [(B,H) | None, ...], mask (B,T) bool | None, units H)`` — a plain tuple because this runs
    on every call and a few hundred nanoseconds matter at small sizes.
    """
    fast = _prepare_canonical(gates, x, kernel, recurrent_kernel, bias, states, mask, lengths, reset_after)
    if fast is not None:
        return fast
    # 1. the kernel fixes dtype, I and H
    kernel = as_array(kernel, "kernel")
    dtype = weight_dtype(kernel, "kernel")
    kshape = kernel.shape
    if len(kshape) != 2 or kshape[0] < 1 or kshape[1] < gates or kshape[1] % gates:
        gate_spec = "units" if gates == 1 else f"{gates} * units"
        raise ValueError(
            f"kernel must have shape (input_dim, {gate_spec}) with input_dim, units >= 1, "
            f"got {format_shape(kshape)}"
        )
    input_dim, gh = kshape
    units = gh // gates
    kernel = canonical(kernel, dtype)

    # 2. the other weights must agree with it
    recurrent_kernel = canonical_weight(recurrent_kernel, "recurrent_kernel", dtype, (units, gh))
    if bias is not None:
        if reset_after is None:
            bias = canonical_weight(bias, "bias", dtype, (gh,))
        elif reset_after:
            bias = canonical_weight(bias, "bias", dtype, (2, gh), hint="when reset_after=True")
        else:
            bias = canonical_weight(bias, "bias", dtype, (gh,), hint="when reset_after=False")

    # 3. the input fixes B and T
    x = as_array(x, "x")
    if x.dtype is not dtype:
        check_numeric(x, "x")
    if x.ndim != 3 or x.shape[2] != input_dim:
        x_spec = ("batch", "time", input_dim)
        check_ndim(x, "x", x_spec)
        check_shape(x, "x", x_spec)
    x = canonical(x, dtype)
    batch, time, _ = x.shape

    # 4. initial states and the mask
    states = [
        None if value is None else canonical_data(value, name, dtype, (batch, units), "= (batch, units)")
        for name, value in states
    ]
    mask = sequence_mask(mask, lengths, batch, time)
    if mask is not None:
        x = _zero_masked_non_finite(x, mask)
    return dtype, x, kernel, recurrent_kernel, bias, states, mask, units


def _zero_masked_non_finite(x, mask):
    """x with zeros at the masked steps if any of them holds NaN or ±Inf; else x itself.

    A masked step contributes nothing to any result or gradient (docs/SPEC.md §7.2, §11.1), but IEEE
    arithmetic would still carry a NaN/Inf input of a masked step into the gradients (0 · NaN = NaN
    in ``x_tᵀ · dG_t``, and into the gates cached for backward). The values at masked steps are never
    used otherwise, so replacing them changes nothing else; finite inputs pass without a copy, and
    the caller's array is never modified.
    """
    masked = ~mask
    if not masked.any() or np.isfinite(x[masked]).all():
        return x
    x = x.copy()
    x[masked] = 0
    return x


_FLOAT_DTYPES = frozenset((np.dtype(np.float32), np.dtype(np.float64)))


def _prepare_canonical(gates, x, kernel, recurrent_kernel, bias, states, mask, lengths, reset_after):
    """The common case, recognised cheaply: C-contiguous native-order float arrays of one dtype with
    consistent shapes, no mask, initial states absent or canonical. Returns what :func:`prepare` would, or None to
    take the general path (which validates and converts everything else). At seed-tiny size this
    saves about a microsecond per call."""
    if not (mask is None and lengths is None and type(kernel) is np.ndarray and type(x) is np.ndarray
            and type(recurrent_kernel) is np.ndarray):
        return None
    dtype = kernel.dtype
    kshape, xshape = kernel.shape, x.shape
    if (dtype not in _FLOAT_DTYPES or len(kshape) != 2 or len(xshape) != 3 or xshape[2] != kshape[0]
            or kshape[0] < 1 or kshape[1] < gates or kshape[1] % gates or x.dtype is not dtype
            or recurrent_kernel.dtype is not dtype):
        return None
    gh = kshape[1]
    units = gh // gates
    if recurrent_kernel.shape != (units, gh):
        return None
    if bias is not None:
        expected = (2, gh) if reset_after else (gh,)
        if not (type(bias) is np.ndarray and bias.dtype is dtype and bias.shape == expected
                and bias.flags.c_contiguous):
            return None
    batch = xshape[0]
    values = []
    for _, value in states:  # initial states: None, or (B, H) C-contiguous arrays of the dtype
        if value is not None and not (type(value) is np.ndarray and value.dtype is dtype
                                      and value.shape == (batch, units) and value.flags.c_contiguous):
            return None
        values.append(value)
    if not (kernel.flags.c_contiguous and x.flags.c_contiguous and recurrent_kernel.flags.c_contiguous):
        return None
    return dtype, x, kernel, recurrent_kernel, bias, values, None, units


_BOOLS = (True, False)


def pack_kwargs(impl, pack, cell, kernel, recurrent_kernel):
    """``pack=`` for implementations that use packs (the native one); the reference ignores them."""
    if pack is None or not getattr(impl, "USES_WEIGHT_PACKS", False):
        return {}
    return {"pack": pack}


def forward_flags(go_backwards, training, return_sequences):
    if go_backwards in _BOOLS and training in _BOOLS and return_sequences in _BOOLS:
        # fast path; `in` compares with ==, so also make sure they really are bools (1 == True)
        if type(go_backwards) is bool and type(training) is bool and type(return_sequences) is bool:
            return go_backwards, training, return_sequences
    return (
        check_bool(go_backwards, "go_backwards"),
        check_bool(training, "training"),
        check_bool(return_sequences, "return_sequences"),
    )


def extended_flags(go_backwards, training, return_sequences, pack):
    """The flags of an extended-options call (docs/SPEC.md §18); they take no weight pack."""
    go_backwards, training, return_sequences = forward_flags(go_backwards, training, return_sequences)
    if pack is not None:
        raise ValueError("pack= is not supported with dropout masks, zoneout, projection or layer_norm "
                         "(those calls do not use packed weights)")
    return dict(go_backwards=go_backwards, training=training, return_sequences=return_sequences)


def make_cache(cell, impl, inner, x, units, return_sequences):
    """Wrap an implementation's cache (None when training=False) with what backward checks need."""
    if inner is None:
        return None
    # the cache names the module that made it (it may differ from impl, e.g. an adapter delegating a cell)
    impl = getattr(inner, "impl", impl)
    return RecurrentCache(cell, impl, inner, x.dtype, x.shape[0], x.shape[1], units, return_sequences)


# ---------------------------------------------------------------------------------------------
# Empty inputs (B = 0 or T = 0): results defined here, no implementation involved
# ---------------------------------------------------------------------------------------------


class _EmptyShapes(NamedTuple):
    """The private cache of :data:`_EMPTY`: the shapes backward must reproduce."""

    x_shape: tuple
    kernel_shape: tuple
    recurrent_kernel_shape: tuple
    bias_shape: tuple | None
    state_shape: tuple
    dtype: np.dtype


def empty_forward(cell, prepared, training, return_sequences):
    """outputs (B, T, H) zeros or None, final states = initial states (copies; zeros when absent), cache."""
    dtype, x, kernel, recurrent_kernel, bias, states, _, units = prepared
    batch, time = x.shape[:2]
    state_shape = (batch, units)
    outputs = np.zeros((batch, time, units), dtype) if return_sequences else None
    finals = [np.zeros(state_shape, dtype) if s is None else s.copy() for s in states]
    cache = None
    if training:
        shapes = _EmptyShapes(
            x.shape, kernel.shape, recurrent_kernel.shape, None if bias is None else bias.shape, state_shape, dtype
        )
        cache = RecurrentCache(cell, _EMPTY, shapes, dtype, batch, time, units, return_sequences)
    return outputs, finals, cache


class _EmptyImpl:
    """Backward of empty inputs, with the canonical backward signatures (so dispatch stays uniform)."""

    __name__ = "rnnkit.ops.recurrent(empty)"

    @staticmethod
    def _backward(shapes: _EmptyShapes, d_states):
        dt = shapes.dtype
        grads = [
            np.zeros(shapes.x_shape, dt),
            np.zeros(shapes.kernel_shape, dt),
            np.zeros(shapes.recurrent_kernel_shape, dt),
            None if shapes.bias_shape is None else np.zeros(shapes.bias_shape, dt),
        ]
        # no step ran: the final state is the initial state, so its gradient passes straight through
        grads += [np.zeros(shapes.state_shape, dt) if d is None else d.copy() for d in d_states]
        return tuple(grads)

    def simple_rnn_backward(self, d_outputs, d_h_last, cache):
        return self._backward(cache, (d_h_last,))

    def gru_backward(self, d_outputs, d_h_last, cache):
        return self._backward(cache, (d_h_last,))

    def lstm_backward(self, d_outputs, d_h_last, d_c_last, cache):
        return self._backward(cache, (d_h_last, d_c_last))


_EMPTY = _EmptyImpl()


# ---------------------------------------------------------------------------------------------
# Backward argument checks
# ---------------------------------------------------------------------------------------------


def check_recurrent_cache(cache, cell, forward_name) -> RecurrentCache:
    cache = check_cache(cache, RecurrentCache, forward_name)
    if cache.cell != cell:
        raise ValueError(f"cache was made by {cache.cell}_forward, not {forward_name}")
    return cache


def check_d_outputs(d_outputs, cache: RecurrentCache):
    if d_outputs is None:
        return None
    if not cache.return_sequences:
        raise ValueError(
            "d_outputs must be None when forward ran with return_sequences=False "
            "(there were no outputs; pass the gradient of the final state as d_h_last)"
        )
    return canonical_data(
        d_outputs, "d_outputs", cache.dtype, (cache.batch, cache.time, cache.units), "= (batch, time, units)"
    )


def check_d_state(d_state, name, cache: RecurrentCache, index=0):
    if d_state is None:
        return None
    if cache.state_sizes is None:
        return canonical_data(d_state, name, cache.dtype, (cache.batch, cache.units), "= (batch, units)")
    size = cache.state_sizes[index]
    return canonical_data(d_state, name, cache.dtype, (cache.batch, size), f"= (batch, {size})")


def with_input_scale(res, cache: RecurrentCache):
    """The backward's results, dx scaled by the input-dropout multipliers applied in forward."""
    if cache.input_scale is None:
        return res
    return (res[0] * cache.input_scale, *res[1:])
