"""Kernel-level recurrent ops: validate, canonicalise, dispatch to the active backend.

Shape letters: B batch, T time steps, I input features, H units, G gates (SimpleRNN 1, GRU 3, LSTM 4).
The math is in docs/SPEC.md (normative); the canonical implementation signatures in
docs/ARCHITECTURE.md.

Every public function here checks *all* of its arguments before any implementation code runs, then
calls the implementation of the active backend (``rnnkit.set_backend``) with canonical arrays:
x and initial states converted to the weights' dtype, everything C-contiguous and in native byte
order, ``lengths`` turned into a bool mask (B, T), activation names lower-cased.

Empty inputs never reach an implementation. Their results are defined here:

- T = 0: ``outputs`` is (B, 0, H) (None without return_sequences), the final states equal the initial
  states (zeros when absent); backward returns zero input and weight gradients and passes the
  incoming state gradients straight through (``d_h0 = d_h_last``, ``d_c0 = d_c_last``, zeros if None).
- B = 0: every batch-shaped result has a zero batch dimension; weight gradients are zeros.

The forward functions return ``cache=None`` when ``training=False``; with ``training=True`` the cache
is a :class:`RecurrentCache`, valid for the matching ``*_backward`` of whichever backend is active
later (backward always runs the implementation that made the cache).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import _backend
from .pack import check_pack
from .extended import any_option, extended_forward
from .._validation import (
    ACTIVATIONS,
    RECURRENT_ACTIVATIONS,
    as_array,
    canonical,
    canonical_data,
    sequence_mask,
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

__all__ = [
    "simple_rnn_forward",
    "simple_rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    "RecurrentCache",
]


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


def _prepare(gates, x, kernel, recurrent_kernel, bias, states, mask, lengths, reset_after=None):
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
    consistent shapes, no mask, initial states absent or canonical. Returns what :func:`_prepare` would, or None to
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


def _pack_kwargs(impl, pack, cell, kernel, recurrent_kernel):
    """``pack=`` for implementations that use packs (the native one); the reference ignores them."""
    if pack is None or not getattr(impl, "USES_WEIGHT_PACKS", False):
        return {}
    return {"pack": pack}


def _flags(go_backwards, training, return_sequences):
    if go_backwards in _BOOLS and training in _BOOLS and return_sequences in _BOOLS:
        # fast path; `in` compares with ==, so also make sure they really are bools (1 == True)
        if type(go_backwards) is bool and type(training) is bool and type(return_sequences) is bool:
            return go_backwards, training, return_sequences
    return (
        check_bool(go_backwards, "go_backwards"),
        check_bool(training, "training"),
        check_bool(return_sequences, "return_sequences"),
    )


def _ext_flags(go_backwards, training, return_sequences, pack):
    """The flags of an extended-options call (docs/SPEC.md §18); they take no weight pack."""
    go_backwards, training, return_sequences = _flags(go_backwards, training, return_sequences)
    if pack is not None:
        raise ValueError("pack= is not supported with dropout masks, zoneout, projection or layer_norm "
                         "(those calls do not use packed weights)")
    return dict(go_backwards=go_backwards, training=training, return_sequences=return_sequences)


def _make_cache(cell, impl, inner, x, units, return_sequences):
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


def _empty_forward(cell, prepared, training, return_sequences):
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


def _check_cache(cache, cell, forward_name) -> RecurrentCache:
    cache = check_cache(cache, RecurrentCache, forward_name)
    if cache.cell != cell:
        raise ValueError(f"cache was made by {cache.cell}_forward, not {forward_name}")
    return cache


def _check_d_outputs(d_outputs, cache: RecurrentCache):
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


def _check_d_state(d_state, name, cache: RecurrentCache, index=0):
    if d_state is None:
        return None
    if cache.state_sizes is None:
        return canonical_data(d_state, name, cache.dtype, (cache.batch, cache.units), "= (batch, units)")
    size = cache.state_sizes[index]
    return canonical_data(d_state, name, cache.dtype, (cache.batch, size), f"= (batch, {size})")


def _scaled(res, cache: RecurrentCache):
    """The backward's results, dx scaled by the input-dropout multipliers applied in forward."""
    if cache.input_scale is None:
        return res
    return (res[0] * cache.input_scale, *res[1:])


# ---------------------------------------------------------------------------------------------
# SimpleRNN
# ---------------------------------------------------------------------------------------------


def simple_rnn_forward(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    h0=None,
    activation="tanh",
    mask=None,
    go_backwards=False,
    training=True,
    lengths=None,
    return_sequences=True,
    pack=None,
    dropout_mask=None,
    recurrent_dropout_mask=None,
    zoneout=None,
):
    """SimpleRNN over a sequence: ``h_t = act(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)``.

    Args:
        x: (B, T, I) numeric array; converted to the weights' dtype.
        kernel: (I, H) float32 or float64; fixes the dtype of every result.
        recurrent_kernel: (H, H), same dtype.
        bias: (H,) or None (no bias).
        h0: (B, H) initial state or None (zeros).
        activation: "tanh" | "relu" | "sigmoid" | "linear" (case-insensitive; None = "linear").
        mask: (B, T) bool (True = step used), input time order; masked steps keep the state and
            output zeros. Mutually exclusive with ``lengths``.
        go_backwards: process the time axis in reverse (outputs come back in processing order).
        training: keep a cache for :func:`simple_rnn_backward` (else cache is None).
        lengths: (B,) integers in [0, T], shorthand for ``mask = arange(T) < lengths[:, None]``.
        return_sequences: return all outputs (B, T, H); if False, outputs is None.
        pack: None, or a :class:`rnnkit.ops.WeightPack` made from ``kernel`` and ``recurrent_kernel``
            (pass ``pack.kernel`` and ``pack.recurrent_kernel``): the native backend reuses its packed
            layouts instead of packing the weights on every call (inference at small batches).
        dropout_mask, recurrent_dropout_mask, zoneout: the options of docs/SPEC.md §18 (Keras
            dropout multipliers (B, I) / (B, G, I) and (B, H) / (B, G, H); zoneout keep weights per
            state, a number or (B, T, H)); see rnnkit.ops.extended for which run natively.

    Returns:
        ``(outputs, h_last, cache)``: outputs (B, T, H) or None, h_last (B, H) the state after the last
        unmasked step. T = 0: outputs (B, 0, H), h_last = h0 (zeros if None). B = 0: zero batch dim.
    """
    if dropout_mask is not None or recurrent_dropout_mask is not None or zoneout is not None:
        return extended_forward(
            "simple_rnn", x, kernel, recurrent_kernel, bias, (h0,), activation=check_activation(
                activation, "activation", ACTIVATIONS), recurrent_activation="sigmoid", reset_after=None,
            mask=mask, lengths=lengths, **_ext_flags(go_backwards, training, return_sequences, pack),
            dropout_mask=dropout_mask, recurrent_dropout_mask=recurrent_dropout_mask, zoneout=zoneout,
            projection=None, layer_norm=None)
    activation = check_activation(activation, "activation", ACTIVATIONS)
    go_backwards, training, return_sequences = _flags(go_backwards, training, return_sequences)
    prepared = _prepare(1, x, kernel, recurrent_kernel, bias, (("h0", h0),), mask, lengths)
    _, x, kernel, recurrent_kernel, bias, (h0,), mask, units = prepared
    if pack is not None:
        check_pack(pack, "simple_rnn", kernel, recurrent_kernel)
    if x.size == 0:
        outputs, (h_last,), cache = _empty_forward("simple_rnn", prepared, training, return_sequences)
        return outputs, h_last, cache
    impl = _backend.get_impl()
    outputs, h_last, inner = impl.simple_rnn_forward(
        x, kernel, recurrent_kernel, bias, h0, activation=activation, mask=mask,
        go_backwards=go_backwards, training=training, return_sequences=return_sequences,
        **_pack_kwargs(impl, pack, "simple_rnn", kernel, recurrent_kernel),
    )  # fmt: skip
    cache = _make_cache("simple_rnn", impl, inner, x, units, return_sequences)
    return outputs, h_last, cache


def simple_rnn_backward(d_outputs, d_h_last, cache):
    """Backpropagation through time for :func:`simple_rnn_forward`.

    Args:
        d_outputs: (B, T, H) gradient of the outputs (processing order), or None (= zero); must be
            None if forward ran with return_sequences=False.
        d_h_last: (B, H) gradient of h_last, or None (= zero).
        cache: the cache of ``simple_rnn_forward(..., training=True)``.

    Returns:
        ``(dx, d_kernel, d_recurrent_kernel, d_bias, d_h0)`` in the weights' dtype; d_bias is None when
        forward had no bias; d_h0 is always an array. For T = 0 every gradient is zero except
        ``d_h0 = d_h_last`` (zeros if None).
    """
    cache = _check_cache(cache, "simple_rnn", "simple_rnn_forward")
    d_outputs = _check_d_outputs(d_outputs, cache)
    d_h_last = _check_d_state(d_h_last, "d_h_last", cache)
    return _scaled(cache.impl.simple_rnn_backward(d_outputs, d_h_last, cache.inner), cache)


# ---------------------------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------------------------


def lstm_forward(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    h0=None,
    c0=None,
    activation="tanh",
    recurrent_activation="sigmoid",
    mask=None,
    go_backwards=False,
    training=True,
    lengths=None,
    return_sequences=True,
    pack=None,
    dropout_mask=None,
    recurrent_dropout_mask=None,
    zoneout=None,
    projection=None,
    layer_norm=None,
):
    """LSTM over a sequence (Keras layout, gate blocks i, f, c, o; see docs/SPEC.md §5).

    Args:
        x: (B, T, I) numeric array; converted to the weights' dtype.
        kernel: (I, 4H) float32 or float64; recurrent_kernel: (H, 4H); bias: (4H,) or None.
        h0, c0: (B, H) initial hidden and cell states or None (zeros).
        activation: "tanh" | "relu" | "sigmoid" | "linear" (cell input and output).
        recurrent_activation: "sigmoid" | "hard_sigmoid" | "tanh" | "relu" | "linear" (gates).
        mask, go_backwards, training, lengths, return_sequences, pack: as in :func:`simple_rnn_forward`.
        dropout_mask, recurrent_dropout_mask, zoneout: as in :func:`simple_rnn_forward` (zoneout: a
            list [for h, for c]).
        projection: (H, P) or None: h_t = (o ⊙ act(c_t)) @ projection; recurrent_kernel is then
            (P, 4H), h0 / h_last / outputs have P columns (docs/SPEC.md §18.3).
        layer_norm: None or [gamma_x, beta_x, gamma_h, beta_h] (4H,) + [gamma_c, beta_c] (H,)
            (docs/SPEC.md §18.4). Backward appends d_projection, then these gradients.

    Returns:
        ``(outputs, h_last, c_last, cache)``: outputs (B, T, H) or None; h_last, c_last (B, H).
        T = 0: outputs (B, 0, H), h_last = h0 and c_last = c0 (zeros if None). B = 0: zero batch dim.
    """
    if any_option(dropout_mask, recurrent_dropout_mask, zoneout, projection, layer_norm):
        return extended_forward(
            "lstm", x, kernel, recurrent_kernel, bias, (h0, c0),
            activation=check_activation(activation, "activation", ACTIVATIONS),
            recurrent_activation=check_activation(recurrent_activation, "recurrent_activation",
                                                  RECURRENT_ACTIVATIONS), reset_after=None,
            mask=mask, lengths=lengths, **_ext_flags(go_backwards, training, return_sequences, pack),
            dropout_mask=dropout_mask, recurrent_dropout_mask=recurrent_dropout_mask, zoneout=zoneout,
            projection=projection, layer_norm=layer_norm)
    activation = check_activation(activation, "activation", ACTIVATIONS)
    recurrent_activation = check_activation(recurrent_activation, "recurrent_activation", RECURRENT_ACTIVATIONS)
    go_backwards, training, return_sequences = _flags(go_backwards, training, return_sequences)
    prepared = _prepare(4, x, kernel, recurrent_kernel, bias, (("h0", h0), ("c0", c0)), mask, lengths)
    _, x, kernel, recurrent_kernel, bias, (h0, c0), mask, units = prepared
    if pack is not None:
        check_pack(pack, "lstm", kernel, recurrent_kernel)
    if x.size == 0:
        outputs, (h_last, c_last), cache = _empty_forward("lstm", prepared, training, return_sequences)
        return outputs, h_last, c_last, cache
    impl = _backend.get_impl()
    outputs, h_last, c_last, inner = impl.lstm_forward(
        x, kernel, recurrent_kernel, bias, h0, c0, activation=activation,
        recurrent_activation=recurrent_activation, mask=mask, go_backwards=go_backwards,
        training=training, return_sequences=return_sequences,
        **_pack_kwargs(impl, pack, "lstm", kernel, recurrent_kernel),
    )  # fmt: skip
    cache = _make_cache("lstm", impl, inner, x, units, return_sequences)
    return outputs, h_last, c_last, cache


def lstm_backward(d_outputs, d_h_last, d_c_last, cache):
    """Backpropagation through time for :func:`lstm_forward`.

    Args:
        d_outputs: (B, T, H) or None; d_h_last, d_c_last: (B, H) or None (= zero).
        cache: the cache of ``lstm_forward(..., training=True)``.

    Returns:
        ``(dx, d_kernel, d_recurrent_kernel, d_bias, d_h0, d_c0)``; d_bias None without bias. For T = 0
        all zero except ``d_h0 = d_h_last`` and ``d_c0 = d_c_last`` (zeros if None).
    """
    cache = _check_cache(cache, "lstm", "lstm_forward")
    d_outputs = _check_d_outputs(d_outputs, cache)
    d_h_last = _check_d_state(d_h_last, "d_h_last", cache)
    d_c_last = _check_d_state(d_c_last, "d_c_last", cache, 1)
    return _scaled(cache.impl.lstm_backward(d_outputs, d_h_last, d_c_last, cache.inner), cache)


# ---------------------------------------------------------------------------------------------
# GRU
# ---------------------------------------------------------------------------------------------


def gru_forward(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    h0=None,
    activation="tanh",
    recurrent_activation="sigmoid",
    reset_after=True,
    mask=None,
    go_backwards=False,
    training=True,
    lengths=None,
    return_sequences=True,
    pack=None,
    dropout_mask=None,
    recurrent_dropout_mask=None,
    zoneout=None,
    layer_norm=None,
):
    """GRU over a sequence (Keras layout, gate blocks z, r, h; see docs/SPEC.md §6).

    Args:
        x: (B, T, I) numeric array; converted to the weights' dtype.
        kernel: (I, 3H) float32 or float64; recurrent_kernel: (H, 3H).
        bias: None, or (2, 3H) when reset_after=True (row 0 input bias, row 1 recurrent bias),
            (3H,) when reset_after=False.
        h0: (B, H) initial state or None (zeros).
        activation, recurrent_activation: as in :func:`lstm_forward`.
        reset_after: apply the reset gate after the recurrent matmul (Keras 3 / cuDNN / PyTorch).
        mask, go_backwards, training, lengths, return_sequences, pack: as in :func:`simple_rnn_forward`.
        dropout_mask, recurrent_dropout_mask, zoneout: as in :func:`simple_rnn_forward`.
        layer_norm: None or [gamma_x, beta_x, gamma_h, beta_h] (3H,) each (reset_after=True only;
            docs/SPEC.md §18.4). Backward appends their gradients.

    Returns:
        ``(outputs, h_last, cache)`` as :func:`simple_rnn_forward`, including the T = 0 and B = 0 rules.
    """
    if any_option(dropout_mask, recurrent_dropout_mask, zoneout, layer_norm):
        return extended_forward(
            "gru", x, kernel, recurrent_kernel, bias, (h0,),
            activation=check_activation(activation, "activation", ACTIVATIONS),
            recurrent_activation=check_activation(recurrent_activation, "recurrent_activation",
                                                  RECURRENT_ACTIVATIONS),
            reset_after=check_bool(reset_after, "reset_after"),
            mask=mask, lengths=lengths, **_ext_flags(go_backwards, training, return_sequences, pack),
            dropout_mask=dropout_mask, recurrent_dropout_mask=recurrent_dropout_mask, zoneout=zoneout,
            projection=None, layer_norm=layer_norm)
    activation = check_activation(activation, "activation", ACTIVATIONS)
    recurrent_activation = check_activation(recurrent_activation, "recurrent_activation", RECURRENT_ACTIVATIONS)
    reset_after = check_bool(reset_after, "reset_after")
    go_backwards, training, return_sequences = _flags(go_backwards, training, return_sequences)
    prepared = _prepare(3, x, kernel, recurrent_kernel, bias, (("h0", h0),), mask, lengths, reset_after)
    _, x, kernel, recurrent_kernel, bias, (h0,), mask, units = prepared
    if pack is not None:
        check_pack(pack, "gru", kernel, recurrent_kernel)
    if x.size == 0:
        outputs, (h_last,), cache = _empty_forward("gru", prepared, training, return_sequences)
        return outputs, h_last, cache
    impl = _backend.get_impl()
    outputs, h_last, inner = impl.gru_forward(
        x, kernel, recurrent_kernel, bias, h0, activation=activation,
        recurrent_activation=recurrent_activation, reset_after=reset_after, mask=mask,
        go_backwards=go_backwards, training=training, return_sequences=return_sequences,
        **_pack_kwargs(impl, pack, "gru", kernel, recurrent_kernel),
    )  # fmt: skip
    cache = _make_cache("gru", impl, inner, x, units, return_sequences)
    return outputs, h_last, cache


def gru_backward(d_outputs, d_h_last, cache):
    """Backpropagation through time for :func:`gru_forward`.

    Returns ``(dx, d_kernel, d_recurrent_kernel, d_bias, d_h0)``; d_bias has the forward bias's shape
    ((2, 3H) or (3H,)) or is None. T = 0 and B = 0 as in :func:`simple_rnn_backward`.
    """
    cache = _check_cache(cache, "gru", "gru_forward")
    d_outputs = _check_d_outputs(d_outputs, cache)
    d_h_last = _check_d_state(d_h_last, "d_h_last", cache)
    return _scaled(cache.impl.gru_backward(d_outputs, d_h_last, cache.inner), cache)
