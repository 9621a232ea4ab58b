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



from .. import _backend
from .pack import check_pack
from ._checks import (
    RecurrentCache,
    check_recurrent_cache,
    check_d_outputs,
    check_d_state,
    empty_forward,
    extended_flags,
    forward_flags,
    make_cache,
    pack_kwargs,
    prepare,
    with_input_scale,
)
from .extended import any_option, extended_forward
from .._validation import (
    ACTIVATIONS,
    RECURRENT_ACTIVATIONS,
    check_activation,
    check_bool,
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
            mask=mask, lengths=lengths, **extended_flags(go_backwards, training, return_sequences, pack),
            dropout_mask=dropout_mask, recurrent_dropout_mask=recurrent_dropout_mask, zoneout=zoneout,
            projection=None, layer_norm=None)
    activation = check_activation(activation, "activation", ACTIVATIONS)
    go_backwards, training, return_sequences = forward_flags(go_backwards, training, return_sequences)
    prepared = prepare(1, x, kernel, recurrent_kernel, bias, (("h0", h0),), mask, lengths)
    _, x, kernel, recurrent_kernel, bias, (h0,), mask, units = prepared
    if pack is not None:
        check_pack(pack, "simple_rnn", kernel, recurrent_kernel)
    if x.size == 0:
        outputs, (h_last,), cache = empty_forward("simple_rnn", prepared, training, return_sequences)
        return outputs, h_last, cache
    impl = _backend.get_impl()
    outputs, h_last, inner = impl.simple_rnn_forward(
        x, kernel, recurrent_kernel, bias, h0, activation=activation, mask=mask,
        go_backwards=go_backwards, training=training, return_sequences=return_sequences,
        **pack_kwargs(impl, pack, "simple_rnn", kernel, recurrent_kernel),
    )  # fmt: skip
    cache = make_cache("simple_rnn", impl, inner, x, units, return_sequences)
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
    cache = check_recurrent_cache(cache, "simple_rnn", "simple_rnn_forward")
    d_outputs = check_d_outputs(d_outputs, cache)
    d_h_last = check_d_state(d_h_last, "d_h_last", cache)
    return with_input_scale(cache.impl.simple_rnn_backward(d_outputs, d_h_last, cache.inner), cache)


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
            mask=mask, lengths=lengths, **extended_flags(go_backwards, training, return_sequences, pack),
            dropout_mask=dropout_mask, recurrent_dropout_mask=recurrent_dropout_mask, zoneout=zoneout,
            projection=projection, layer_norm=layer_norm)
    activation = check_activation(activation, "activation", ACTIVATIONS)
    recurrent_activation = check_activation(recurrent_activation, "recurrent_activation", RECURRENT_ACTIVATIONS)
    go_backwards, training, return_sequences = forward_flags(go_backwards, training, return_sequences)
    prepared = prepare(4, x, kernel, recurrent_kernel, bias, (("h0", h0), ("c0", c0)), mask, lengths)
    _, x, kernel, recurrent_kernel, bias, (h0, c0), mask, units = prepared
    if pack is not None:
        check_pack(pack, "lstm", kernel, recurrent_kernel)
    if x.size == 0:
        outputs, (h_last, c_last), cache = empty_forward("lstm", prepared, training, return_sequences)
        return outputs, h_last, c_last, cache
    impl = _backend.get_impl()
    outputs, h_last, c_last, inner = impl.lstm_forward(
        x, kernel, recurrent_kernel, bias, h0, c0, activation=activation,
        recurrent_activation=recurrent_activation, mask=mask, go_backwards=go_backwards,
        training=training, return_sequences=return_sequences,
        **pack_kwargs(impl, pack, "lstm", kernel, recurrent_kernel),
    )  # fmt: skip
    cache = make_cache("lstm", impl, inner, x, units, return_sequences)
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
    cache = check_recurrent_cache(cache, "lstm", "lstm_forward")
    d_outputs = check_d_outputs(d_outputs, cache)
    d_h_last = check_d_state(d_h_last, "d_h_last", cache)
    d_c_last = check_d_state(d_c_last, "d_c_last", cache, 1)
    return with_input_scale(cache.impl.lstm_backward(d_outputs, d_h_last, d_c_last, cache.inner), cache)


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
            mask=mask, lengths=lengths, **extended_flags(go_backwards, training, return_sequences, pack),
            dropout_mask=dropout_mask, recurrent_dropout_mask=recurrent_dropout_mask, zoneout=zoneout,
            projection=None, layer_norm=layer_norm)
    activation = check_activation(activation, "activation", ACTIVATIONS)
    recurrent_activation = check_activation(recurrent_activation, "recurrent_activation", RECURRENT_ACTIVATIONS)
    reset_after = check_bool(reset_after, "reset_after")
    go_backwards, training, return_sequences = forward_flags(go_backwards, training, return_sequences)
    prepared = prepare(3, x, kernel, recurrent_kernel, bias, (("h0", h0),), mask, lengths, reset_after)
    _, x, kernel, recurrent_kernel, bias, (h0,), mask, units = prepared
    if pack is not None:
        check_pack(pack, "gru", kernel, recurrent_kernel)
    if x.size == 0:
        outputs, (h_last,), cache = empty_forward("gru", prepared, training, return_sequences)
        return outputs, h_last, cache
    impl = _backend.get_impl()
    outputs, h_last, inner = impl.gru_forward(
        x, kernel, recurrent_kernel, bias, h0, activation=activation,
        recurrent_activation=recurrent_activation, reset_after=reset_after, mask=mask,
        go_backwards=go_backwards, training=training, return_sequences=return_sequences,
        **pack_kwargs(impl, pack, "gru", kernel, recurrent_kernel),
    )  # fmt: skip
    cache = make_cache("gru", impl, inner, x, units, return_sequences)
    return outputs, h_last, cache


def gru_backward(d_outputs, d_h_last, cache):
    """Backpropagation through time for :func:`gru_forward`.

    Returns ``(dx, d_kernel, d_recurrent_kernel, d_bias, d_h0)``; d_bias has the forward bias's shape
    ((2, 3H) or (3H,)) or is None. T = 0 and B = 0 as in :func:`simple_rnn_backward`.
    """
    cache = check_recurrent_cache(cache, "gru", "gru_forward")
    d_outputs = check_d_outputs(d_outputs, cache)
    d_h_last = check_d_state(d_h_last, "d_h_last", cache)
    return with_input_scale(cache.impl.gru_backward(d_outputs, d_h_last, cache.inner), cache)
