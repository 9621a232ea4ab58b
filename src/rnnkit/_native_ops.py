"""The native backend: adapts ``rnnkit._native`` (C++) to the canonical kernel signatures of
docs/ARCHITECTURE.md. ``rnnkit.ops`` has already validated and canonicalised every argument.

Native caches keep what the C++ backward needs: the inputs and weights (references, not copies) and
the time-major states (T+1, B, H) written by the forward pass.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

from . import _native

_this = sys.modules[__name__]
#: the forwards take ``pack=`` (an rnnkit.ops.WeightPack): packed layouts reused between calls
USES_WEIGHT_PACKS = True
#: the cells whose native forward / backward take zoneout keep weights (B, T, H): ``zoneout_h``, and
#: the LSTM's ``zoneout_c``
ZONEOUT_CELLS = frozenset({"simple_rnn", "gru", "lstm"})


class NativeCache(SimpleNamespace):
    """Backend-private state between a native forward and its backward (``impl`` = this module)."""

    def __init__(self, **fields):
        super().__init__(impl=_this, **fields)


# -- SimpleRNN --------------------------------------------------------------------------------------
def simple_rnn_forward(x, kernel, recurrent_kernel, bias=None, h0=None, activation="tanh",
                       mask=None, go_backwards=False, training=True, return_sequences=True, pack=None,
                       zoneout_h=None):
    outputs, h_last, states = _native.simple_rnn_forward(
        x, kernel, recurrent_kernel, bias, h0, activation, mask, go_backwards, training,
        return_sequences, None if pack is None else pack.native(), zoneout_h)
    if not training:
        return outputs, h_last, None
    cache = NativeCache(cell="simple_rnn", x=x, kernel=kernel, recurrent_kernel=recurrent_kernel,
                        has_bias=bias is not None, states=states, mask=mask, activation=activation,
                        go_backwards=go_backwards, return_sequences=return_sequences, zoneout_h=zoneout_h)
    return outputs, h_last, cache


def simple_rnn_backward(d_outputs, d_h_last, cache):
    c = cache
    return tuple(_native.simple_rnn_backward(
        d_outputs, d_h_last, c.x, c.kernel, c.recurrent_kernel, c.states, c.mask, c.activation,
        c.go_backwards, c.has_bias, c.zoneout_h))


# -- LSTM -------------------------------------------------------------------------------------------
def lstm_forward(x, kernel, recurrent_kernel, bias=None, h0=None, c0=None, activation="tanh",
                 recurrent_activation="sigmoid", mask=None, go_backwards=False, training=True,
                 return_sequences=True, pack=None, zoneout_h=None, zoneout_c=None):
    outputs, h_last, c_last, saved = _native.lstm_forward(
        x, kernel, recurrent_kernel, bias, h0, c0, activation, recurrent_activation, mask,
        go_backwards, training, return_sequences, None if pack is None else pack.native(), zoneout_h,
        zoneout_c)
    if not training:
        return outputs, h_last, c_last, None
    cache = NativeCache(cell="lstm", x=x, kernel=kernel, recurrent_kernel=recurrent_kernel,
                        has_bias=bias is not None, saved=saved, mask=mask, activation=activation,
                        recurrent_activation=recurrent_activation, go_backwards=go_backwards,
                        return_sequences=return_sequences, zoneout_h=zoneout_h, zoneout_c=zoneout_c)
    return outputs, h_last, c_last, cache


def lstm_backward(d_outputs, d_h_last, d_c_last, cache):
    c = cache
    return tuple(_native.lstm_backward(
        d_outputs, d_h_last, d_c_last, c.x, c.kernel, c.recurrent_kernel, c.saved, c.mask,
        c.activation, c.recurrent_activation, c.go_backwards, c.has_bias, c.zoneout_h, c.zoneout_c))


# -- GRU --------------------------------------------------------------------------------------------
def gru_forward(x, kernel, recurrent_kernel, bias=None, h0=None, activation="tanh",
                recurrent_activation="sigmoid", reset_after=True, mask=None, go_backwards=False,
                training=True, return_sequences=True, pack=None, zoneout_h=None):
    outputs, h_last, saved = _native.gru_forward(
        x, kernel, recurrent_kernel, bias, h0, activation, recurrent_activation, reset_after, mask,
        go_backwards, training, return_sequences, None if pack is None else pack.native(), zoneout_h)
    if not training:
        return outputs, h_last, None
    cache = NativeCache(cell="gru", x=x, kernel=kernel, recurrent_kernel=recurrent_kernel,
                        has_bias=bias is not None, saved=saved, mask=mask, activation=activation,
                        recurrent_activation=recurrent_activation, reset_after=reset_after,
                        go_backwards=go_backwards, return_sequences=return_sequences, zoneout_h=zoneout_h)
    return outputs, h_last, cache


def gru_backward(d_outputs, d_h_last, cache):
    c = cache
    return tuple(_native.gru_backward(
        d_outputs, d_h_last, c.x, c.kernel, c.recurrent_kernel, c.saved, c.mask, c.activation,
        c.recurrent_activation, c.reset_after, c.go_backwards, c.has_bias, c.zoneout_h))


# -- Dense --------------------------------------------------------------------------------------------
def dense_forward(x, kernel, bias=None, activation="linear", training=True):
    y = _native.dense_forward(x, kernel, bias, activation)
    cache = NativeCache(cell="dense", x=x, kernel=kernel, has_bias=bias is not None, y=y,
                        activation=activation) if training else None
    return y, cache


def dense_backward(d_y, cache):
    # dz = d_y * act'(y) (written through y); dx = dz @ kernel^T; d_kernel = x^T dz; d_bias = sums of dz
    return _native.dense_backward(d_y, cache.x, cache.kernel, cache.y, cache.activation, cache.has_bias)


def set_num_threads(n):
    _native.set_num_threads(int(n))


def get_num_threads():
    return _native.get_num_threads()


def release_memory():
    _native.release_cached_blocks()
