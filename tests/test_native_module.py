"""Direct calls into ``rnnkit._native``: bad input raises, never crashes; empty input works.

``rnnkit._native`` takes already-canonical arrays, but it re-checks everything itself
(cpp/python/module.cc, ``checked``/``checked_mask``/``is_f64_array``) so that no input can crash the
interpreter. These tests call it directly, bypassing ``rnnkit.ops``:

* every array argument of every function with a wrong dtype (integer, float16, bool, byte-swapped,
  the other float type), non-contiguous or misaligned memory, a wrong number of dimensions, a Python
  list or scalar instead of an array;
* shape mismatches spelled out per function (kernel vs x features, recurrent kernel, bias, h0, c0,
  mask, incoming gradients, the arrays saved by the forward), saved tuples of the wrong length,
  None where an array is required, unknown activation names;
* each raises ``ValueError``/``TypeError`` (the exact type module.cc uses) whose message names the
  offending argument;
* B = 0 and T = 0 give correctly shaped results: with T = 0, ``h_last == h0`` (``c_last == c0``),
  the weight gradients are zero and ``d_h0 == d_h_last`` (``d_c0 == d_c_last``).

The argument names used in the messages are module.cc's: x, kernel, recurrent_kernel, bias, h0, c0,
mask, d_outputs, d_h_last, d_c_last, states (SimpleRNN) / h_states, c_states, gates (LSTM) /
states, gates, extra (GRU), saved, a, b.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from _native_required import import_native

_native = import_native()  # skipped without it (a failure under RNNKIT_REQUIRE_NATIVE=1)

B, T, I, H = 2, 3, 4, 5  # B != T so that a transposed mask has the wrong shape
U = 6  # Dense units
FLOATS = (np.float32, np.float64)


def _other(dtype):
    return np.float64 if np.dtype(dtype) == np.float32 else np.float32


def _rand(rng, shape, dtype):
    return np.ascontiguousarray(rng.standard_normal(shape) * 0.5, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Valid keyword arguments for every function (the bad cases below change one thing).

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def forward_kwargs(cell, dtype=np.float32, b=B, t=T, i=I, h=H, *, bias=True, h0=True,
                   mask=True, reset_after=True, go_backwards=False, training=True,
                   return_sequences=True, seed=0):
    rng = np.random.default_rng(seed)
    g = GATES[cell]
    kw = {
        "x": _rand(rng, (b, t, i), dtype),
        "kernel": _rand(rng, (i, g * h), dtype),
        "recurrent_kernel": _rand(rng, (h, g * h), dtype),
    }
    if cell == "gru" and reset_after:
        kw["bias"] = _rand(rng, (2, g * h), dtype) if bias else None
    else:
        kw["bias"] = _rand(rng, (g * h,), dtype) if bias else None
    kw["h0"] = _rand(rng, (b, h), dtype) if h0 else None
    if cell == "lstm":
        kw["c0"] = _rand(rng, (b, h), dtype) if h0 else None
    kw["activation"] = "tanh"
    if cell != "simple_rnn":
        kw["recurrent_activation"] = "sigmoid"
    if cell == "gru":
        kw["reset_after"] = reset_after
    if mask:
        m = rng.random((b, t)) < 0.7
        if t:
            m[:, 0] = True
        kw["mask"] = np.ascontiguousarray(m)
    else:
        kw["mask"] = None
    kw.update(go_backwards=go_backwards, training=training, return_sequences=return_sequences)
    return kw


def run_forward(cell, kw):
    """-> outputs, h_last, c_last (None unless LSTM), saved (states array / tuple / None)."""
    res = getattr(_native, f"{cell}_forward")(**kw)
    if cell == "lstm":
        return res
    return res[0], res[1], None, res[2]


def backward_kwargs(cell, fkw, saved, d_outputs="random", d_h_last="random", d_c_last="random",
                    seed=1):
    rng = np.random.default_rng(seed)
    dtype = fkw["kernel"].dtype
    b, t = fkw["x"].shape[:2]
    h = fkw["recurrent_kernel"].shape[0]

    def grad(spec, shape):
        return _rand(rng, shape, dtype) if isinstance(spec, str) and spec == "random" else spec

    kw = {"d_outputs": grad(d_outputs, (b, t, h)), "d_h_last": grad(d_h_last, (b, h))}
    if cell == "lstm":
        kw["d_c_last"] = grad(d_c_last, (b, h))
    kw.update(x=fkw["x"], kernel=fkw["kernel"], recurrent_kernel=fkw["recurrent_kernel"])
    if cell == "simple_rnn":
        kw["states"] = saved
    else:
        kw["saved"] = saved
    kw["mask"] = fkw["mask"]
    kw["activation"] = fkw["activation"]
    if cell != "simple_rnn":
        kw["recurrent_activation"] = fkw["recurrent_activation"]
    if cell == "gru":
        kw["reset_after"] = fkw["reset_after"]
    kw["go_backwards"] = fkw["go_backwards"]
    kw["has_bias"] = fkw["bias"] is not None
    return kw


def _fwd_builder(cell, **opts):
    return lambda dtype: forward_kwargs(cell, dtype, **opts)


def _bwd_builder(cell, **opts):
    def build(dtype):
        fkw = forward_kwargs(cell, dtype, **opts)
        return backward_kwargs(cell, fkw, run_forward(cell, fkw)[3])
    return build


def _gemm_kwargs(dtype):
    rng = np.random.default_rng(2)
    return {"a": _rand(rng, (3, 4), dtype), "b": _rand(rng, (4, 5), dtype),
            "trans_a": False, "trans_b": False}


def _dense_kwargs(dtype):
    rng = np.random.default_rng(3)
    return {"x": _rand(rng, (B, I), dtype), "kernel": _rand(rng, (I, U), dtype),
            "bias": _rand(rng, (U,), dtype), "activation": "tanh"}


BUILDERS = {
    "simple_rnn_forward": _fwd_builder("simple_rnn"),
    "simple_rnn_backward": _bwd_builder("simple_rnn"),
    "lstm_forward": _fwd_builder("lstm"),
    "lstm_backward": _bwd_builder("lstm"),
    "gru_forward": _fwd_builder("gru"),
    "gru_backward": _bwd_builder("gru"),
    "gru_forward_v1": _fwd_builder("gru", reset_after=False),
    "gru_backward_v1": _bwd_builder("gru", reset_after=False),
    "gemm": _gemm_kwargs,
    "dense_forward": _dense_kwargs,
}


def native_fn(name):
    return getattr(_native, name.replace("_v1", ""))


# Array arguments of each function ("saved.k" is element k of the saved tuple), in the order
# module.cc checks them, and the name its messages use for each.
ARRAY_ARGS = {
    "simple_rnn_forward": ["kernel", "x", "recurrent_kernel", "bias", "h0", "mask"],
    "simple_rnn_backward": ["kernel", "x", "recurrent_kernel", "states", "d_outputs", "d_h_last", "mask"],
    "lstm_forward": ["kernel", "x", "recurrent_kernel", "bias", "h0", "c0", "mask"],
    "lstm_backward": ["kernel", "x", "recurrent_kernel", "saved.0", "saved.1", "saved.2",
                      "d_outputs", "d_h_last", "d_c_last", "mask"],
    "gru_forward": ["kernel", "x", "recurrent_kernel", "bias", "h0", "mask"],
    "gru_backward": ["kernel", "x", "recurrent_kernel", "saved.0", "saved.1", "saved.2",
                     "d_outputs", "d_h_last", "mask"],
    "gru_forward_v1": ["kernel", "x", "recurrent_kernel", "bias", "h0", "mask"],
    "gru_backward_v1": ["kernel", "x", "recurrent_kernel", "saved.0", "saved.1", "saved.2",
                        "d_outputs", "d_h_last", "mask"],
    "gemm": ["a", "b"],
    "dense_forward": ["kernel", "x", "bias"],
}
SAVED_NAMES = {
    "lstm_backward": ("h_states", "c_states", "gates"),
    "gru_backward": ("states", "gates", "extra"),
    "gru_backward_v1": ("states", "gates", "extra"),
}
# The argument whose dtype selects float32/float64, and the first one checked against it.
DISPATCH = {fn: ("a", "b") if fn == "gemm" else ("kernel", "x") for fn in BUILDERS}
REQUIRED = {"x", "kernel", "recurrent_kernel", "states", "saved.0", "saved.1", "saved.2", "a", "b"}


def get_arg(kw, key):
    if key.startswith("saved."):
        return kw["saved"][int(key[6:])]
    return kw[key]


def set_arg(kw, key, value):
    if key.startswith("saved."):
        k = int(key[6:])
        saved = list(kw["saved"])
        saved[k] = value
        kw["saved"] = tuple(saved)
    else:
        kw[key] = value


def msg_name(fn, key):
    if key.startswith("saved."):
        return SAVED_NAMES[fn][int(key[6:])]
    return key


# ---------------------------------------------------------------------------------------------
# Transforms of one valid array into a bad one.

def non_contiguous(a):
    wide = np.repeat(a, 2, axis=-1)  # same values, every other element
    out = wide[..., ::2]
    assert not out.flags.c_contiguous
    return out


def fortran_order(a):
    out = np.asfortranarray(a)
    assert not out.flags.c_contiguous
    return out


def misaligned(a):
    buf = np.zeros(a.nbytes + a.itemsize, dtype=np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a  # frombuffer of a writable buffer is writable
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


def _ulist(a):
    return a.tolist()


TRANSFORMS = {
    # name: (function, applies to bool mask?, applies to float arrays?)
    "int32": (lambda a: a.astype(np.int32), True, True),
    "int64": (lambda a: a.astype(np.int64), True, True),
    "uint8": (lambda a: a.astype(np.uint8), True, False),
    "float16": (lambda a: a.astype(np.float16), True, True),
    "float32": (lambda a: a.astype(np.float32), True, False),
    "bool": (lambda a: a.astype(bool), False, True),
    "complex64": (lambda a: a.astype(np.complex64), False, True),
    "byteswapped": (lambda a: a.astype(a.dtype.newbyteorder(">" if a.dtype.byteorder != ">" else "<")),
                    False, True),
    "other_float": (lambda a: a.astype(_other(a.dtype)), False, True),
    "non_contiguous": (non_contiguous, True, True),
    "fortran_order": (fortran_order, True, True),  # only used for arrays with >= 2 dims
    "misaligned": (misaligned, False, True),
    "extra_leading_dim": (lambda a: a[None], True, True),
    "flattened_or_0d": (lambda a: a.reshape(-1) if a.ndim >= 2 else np.asarray(a[0]), True, True),
    "list": (_ulist, True, True),
    "python_float": (lambda a: 1.0, True, True),
}


def expected_error(fn, key, transform, dtype):
    """-> (exception type, regex) that module.cc raises for `transform` applied to argument `key`."""
    name = msg_name(fn, key)
    dispatch, follower = DISPATCH[fn]
    is_mask = key == "mask"
    if transform in ("list", "python_float"):
        return TypeError, rf"^{name} must be a numpy (bool )?array"
    if transform in ("non_contiguous", "fortran_order", "misaligned"):
        return ValueError, rf"^{name} must be C-contiguous and aligned"
    if transform in ("extra_leading_dim", "flattened_or_0d"):
        return ValueError, rf"^{name} must have shape \(.*\), got \("
    # dtype transforms
    if is_mask:
        return ValueError, r"^mask must have dtype bool, got "
    if key == dispatch:
        if transform == "other_float":  # the kernel picks the other type; the next array mismatches
            return ValueError, rf"^{follower} must have dtype {np.dtype(_other(dtype))}, got {np.dtype(dtype)}"
        return ValueError, rf"^{name} must have dtype float32 or float64, got "
    return ValueError, rf"^{name} must have dtype {np.dtype(dtype)}, got "


def _generic_cases():
    cases = []
    for fn, keys in ARRAY_ARGS.items():
        sample = BUILDERS[fn](np.float32)
        for key in keys:
            shape = get_arg(sample, key).shape
            for tname, (_, on_mask, on_float) in TRANSFORMS.items():
                if (key == "mask" and not on_mask) or (key != "mask" and not on_float):
                    continue
                if tname == "fortran_order" and sum(d > 1 for d in shape) < 2:
                    continue  # Fortran order is also C order for this shape
                for dtype in FLOATS:
                    if tname == "float32" and dtype == np.float32:
                        continue
                    cases.append(pytest.param(fn, key, tname, dtype,
                                              id=f"{fn}-{key}-{tname}-{np.dtype(dtype)}"))
    return cases


@pytest.mark.parametrize("fn,key,tname,dtype", _generic_cases())
def test_bad_array_argument_raises(fn, key, tname, dtype):
    kw = BUILDERS[fn](dtype)
    a = get_arg(kw, key)
    assert isinstance(a, np.ndarray), f"{key} must be present in the valid kwargs"
    set_arg(kw, key, TRANSFORMS[tname][0](a))
    exc, pattern = expected_error(fn, key, tname, dtype)
    with pytest.raises(exc, match=pattern):
        native_fn(fn)(**kw)


@pytest.mark.parametrize("fn", list(BUILDERS))
@pytest.mark.parametrize("dtype", FLOATS)
def test_valid_baseline_runs(fn, dtype):
    """The unmodified kwargs are valid, so every failure above is caused by the one change made."""
    res = native_fn(fn)(**BUILDERS[fn](dtype))
    arrays = [res] if isinstance(res, np.ndarray) else [r for r in res if isinstance(r, np.ndarray)]
    assert arrays
    for r in arrays:
        assert r.dtype == np.dtype(dtype)
        assert np.all(np.isfinite(r))


def test_gemm_and_dense_baseline_values():
    rng = np.random.default_rng(4)
    for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):
        a, b = _rand(rng, (7, 9), dtype), _rand(rng, (9, 11), dtype)
        np.testing.assert_allclose(_native.gemm(a, b), a @ b, rtol=tol, atol=tol)
        at, bt = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)
        np.testing.assert_allclose(_native.gemm(at, bt, trans_a=True, trans_b=True), a @ b,
                                   rtol=tol, atol=tol)
        x, k, bias = _rand(rng, (5, 9), dtype), _rand(rng, (9, 3), dtype), _rand(rng, (3,), dtype)
        np.testing.assert_allclose(_native.dense_forward(x, k, bias, "relu"),
                                   np.maximum(x @ k + bias, 0), rtol=tol, atol=tol)


# ---------------------------------------------------------------------------------------------
# Shape mismatches, spelled out per function.

def _z(shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


SHAPE_CASES = [
    # (function, argument, bad value, regex). B=2, T=3, I=4, H=5, U=6.
    # SimpleRNN forward
    ("simple_rnn_forward", "x", _z((B, T, I + 1)), r"^x must have shape \(2, 3, 4\), got \(2, 3, 5\)"),
    ("simple_rnn_forward", "kernel", _z((I + 1, H)), r"^x must have shape \(2, 3, 5\), got \(2, 3, 4\)"),
    ("simple_rnn_forward", "kernel", _z((I, H + 1)), r"^recurrent_kernel must have shape \(6, 6\)"),
    ("simple_rnn_forward", "recurrent_kernel", _z((H, H + 1)), r"^recurrent_kernel must have shape \(5, 5\), got \(5, 6\)"),
    ("simple_rnn_forward", "recurrent_kernel", _z((H + 1, H)), r"^recurrent_kernel must have shape \(5, 5\), got \(6, 5\)"),
    ("simple_rnn_forward", "bias", _z((H + 1,)), r"^bias must have shape \(5,\), got \(6,\)"),
    ("simple_rnn_forward", "bias", _z((1, H)), r"^bias must have shape \(5,\), got \(1, 5\)"),
    ("simple_rnn_forward", "h0", _z((B + 1, H)), r"^h0 must have shape \(2, 5\), got \(3, 5\)"),
    ("simple_rnn_forward", "h0", _z((B, H + 1)), r"^h0 must have shape \(2, 5\), got \(2, 6\)"),
    ("simple_rnn_forward", "h0", _z((H,)), r"^h0 must have shape \(2, 5\), got \(5,\)"),
    ("simple_rnn_forward", "mask", np.ones((B, T + 1), bool), r"^mask must have shape \(2, 3\), got \(2, 4\)"),
    ("simple_rnn_forward", "mask", np.ones((T, B), bool), r"^mask must have shape \(2, 3\), got \(3, 2\)"),
    ("simple_rnn_forward", "mask", np.ones((B,), bool), r"^mask must have shape \(2, 3\), got \(2,\)"),
    # SimpleRNN backward
    ("simple_rnn_backward", "x", _z((B, T, I + 1)), r"^x must have shape \(2, 3, 4\)"),
    ("simple_rnn_backward", "recurrent_kernel", _z((H, H + 1)), r"^recurrent_kernel must have shape \(5, 5\)"),
    ("simple_rnn_backward", "states", _z((T, B, H)), r"^states must have shape \(4, 2, 5\), got \(3, 2, 5\)"),
    ("simple_rnn_backward", "states", _z((T + 1, B + 1, H)), r"^states must have shape \(4, 2, 5\)"),
    ("simple_rnn_backward", "states", _z((T + 1, B, H + 1)), r"^states must have shape \(4, 2, 5\)"),
    ("simple_rnn_backward", "d_outputs", _z((B, T, H + 1)), r"^d_outputs must have shape \(2, 3, 5\), got \(2, 3, 6\)"),
    ("simple_rnn_backward", "d_outputs", _z((B, T + 1, H)), r"^d_outputs must have shape \(2, 3, 5\)"),
    ("simple_rnn_backward", "d_outputs", _z((T, B, H)), r"^d_outputs must have shape \(2, 3, 5\)"),
    ("simple_rnn_backward", "d_h_last", _z((B, H + 1)), r"^d_h_last must have shape \(2, 5\)"),
    ("simple_rnn_backward", "d_h_last", _z((B, T, H)), r"^d_h_last must have shape \(2, 5\)"),
    ("simple_rnn_backward", "mask", np.ones((T, B), bool), r"^mask must have shape \(2, 3\)"),
    # LSTM forward
    ("lstm_forward", "x", _z((B, T, I + 1)), r"^x must have shape \(2, 3, 4\)"),
    ("lstm_forward", "kernel", _z((I, 4 * H + 1)), r"^kernel must have shape \(input_dim, 4 \* units\)"),
    ("lstm_forward", "kernel", _z((I, 3 * H)), r"^kernel must have shape \(input_dim, 4 \* units\)"),
    ("lstm_forward", "kernel", _z((I + 1, 4 * H)), r"^x must have shape \(2, 3, 5\)"),
    ("lstm_forward", "kernel", _z((I, 4 * H + 4)), r"^recurrent_kernel must have shape \(6, 24\)"),
    ("lstm_forward", "recurrent_kernel", _z((H, 4 * H + 1)), r"^recurrent_kernel must have shape \(5, 20\)"),
    ("lstm_forward", "recurrent_kernel", _z((H, H)), r"^recurrent_kernel must have shape \(5, 20\)"),
    ("lstm_forward", "recurrent_kernel", _z((4 * H, H)), r"^recurrent_kernel must have shape \(5, 20\)"),
    ("lstm_forward", "bias", _z((H,)), r"^bias must have shape \(20,\), got \(5,\)"),
    ("lstm_forward", "bias", _z((2, 4 * H)), r"^bias must have shape \(20,\)"),
    ("lstm_forward", "h0", _z((B, H + 1)), r"^h0 must have shape \(2, 5\)"),
    ("lstm_forward", "h0", _z((B + 1, H)), r"^h0 must have shape \(2, 5\)"),
    ("lstm_forward", "c0", _z((B, H + 1)), r"^c0 must have shape \(2, 5\)"),
    ("lstm_forward", "c0", _z((B + 1, H)), r"^c0 must have shape \(2, 5\)"),
    ("lstm_forward", "mask", np.ones((B, T + 1), bool), r"^mask must have shape \(2, 3\)"),
    ("lstm_forward", "mask", np.ones((T, B), bool), r"^mask must have shape \(2, 3\)"),
    # LSTM backward
    ("lstm_backward", "x", _z((B, T, I + 1)), r"^x must have shape \(2, 3, 4\)"),
    ("lstm_backward", "recurrent_kernel", _z((H, 4 * H + 1)), r"^recurrent_kernel must have shape \(5, 20\)"),
    ("lstm_backward", "saved.0", _z((T, B, H)), r"^h_states must have shape \(4, 2, 5\)"),
    ("lstm_backward", "saved.0", _z((T + 1, B, H + 1)), r"^h_states must have shape \(4, 2, 5\)"),
    ("lstm_backward", "saved.1", _z((T + 1, B + 1, H)), r"^c_states must have shape \(4, 2, 5\)"),
    ("lstm_backward", "saved.1", _z((T + 1, B, 4 * H)), r"^c_states must have shape \(4, 2, 5\)"),
    ("lstm_backward", "saved.2", _z((T, B, H)), r"^gates must have shape \(3, 2, 20\)"),
    ("lstm_backward", "saved.2", _z((T + 1, B, 4 * H)), r"^gates must have shape \(3, 2, 20\)"),
    ("lstm_backward", "d_outputs", _z((B, T, 4 * H)), r"^d_outputs must have shape \(2, 3, 5\)"),
    ("lstm_backward", "d_h_last", _z((B, H + 1)), r"^d_h_last must have shape \(2, 5\)"),
    ("lstm_backward", "d_c_last", _z((B, H + 1)), r"^d_c_last must have shape \(2, 5\)"),
    ("lstm_backward", "d_c_last", _z((B + 1, H)), r"^d_c_last must have shape \(2, 5\)"),
    ("lstm_backward", "mask", np.ones((B, T + 1), bool), r"^mask must have shape \(2, 3\)"),
    # GRU forward (reset_after=True: bias (2, 3H); reset_after=False: bias (3H,))
    ("gru_forward", "x", _z((B, T, I + 1)), r"^x must have shape \(2, 3, 4\)"),
    ("gru_forward", "kernel", _z((I, 3 * H + 1)), r"^kernel must have shape \(input_dim, 3 \* units\)"),
    ("gru_forward", "kernel", _z((I, 4 * H)), r"^kernel must have shape \(input_dim, 3 \* units\)"),
    ("gru_forward", "kernel", _z((I + 1, 3 * H)), r"^x must have shape \(2, 3, 5\)"),
    ("gru_forward", "recurrent_kernel", _z((H, 3 * H + 1)), r"^recurrent_kernel must have shape \(5, 15\)"),
    ("gru_forward", "recurrent_kernel", _z((H + 1, 3 * H)), r"^recurrent_kernel must have shape \(5, 15\)"),
    ("gru_forward", "bias", _z((3 * H,)), r"^bias must have shape \(2, 15\), got \(15,\)"),
    ("gru_forward", "bias", _z((2, 3 * H + 1)), r"^bias must have shape \(2, 15\)"),
    ("gru_forward", "bias", _z((3, 3 * H)), r"^bias must have shape \(2, 15\)"),
    ("gru_forward_v1", "bias", _z((2, 3 * H)), r"^bias must have shape \(15,\), got \(2, 15\)"),
    ("gru_forward_v1", "bias", _z((3 * H + 1,)), r"^bias must have shape \(15,\)"),
    ("gru_forward", "h0", _z((B, H + 1)), r"^h0 must have shape \(2, 5\)"),
    ("gru_forward", "h0", _z((B + 1, H)), r"^h0 must have shape \(2, 5\)"),
    ("gru_forward", "mask", np.ones((B, T + 1), bool), r"^mask must have shape \(2, 3\)"),
    ("gru_forward", "mask", np.ones((T, B), bool), r"^mask must have shape \(2, 3\)"),
    # GRU backward
    ("gru_backward", "x", _z((B, T, I + 1)), r"^x must have shape \(2, 3, 4\)"),
    ("gru_backward", "recurrent_kernel", _z((H, 3 * H + 1)), r"^recurrent_kernel must have shape \(5, 15\)"),
    ("gru_backward", "saved.0", _z((T, B, H)), r"^states must have shape \(4, 2, 5\)"),
    ("gru_backward", "saved.0", _z((T + 1, B + 1, H)), r"^states must have shape \(4, 2, 5\)"),
    ("gru_backward", "saved.1", _z((T, B, 3 * H + 1)), r"^gates must have shape \(3, 2, 15\)"),
    ("gru_backward", "saved.1", _z((T, B, H)), r"^gates must have shape \(3, 2, 15\)"),
    ("gru_backward", "saved.2", _z((T, B, H + 1)), r"^extra must have shape \(3, 2, 5\)"),
    ("gru_backward", "saved.2", _z((T + 1, B, H)), r"^extra must have shape \(3, 2, 5\)"),
    ("gru_backward_v1", "saved.2", _z((T, B, 3 * H)), r"^extra must have shape \(3, 2, 5\)"),
    ("gru_backward", "d_outputs", _z((B, T, H + 1)), r"^d_outputs must have shape \(2, 3, 5\)"),
    ("gru_backward", "d_h_last", _z((B + 1, H)), r"^d_h_last must have shape \(2, 5\)"),
    ("gru_backward", "mask", np.ones((B, T + 1), bool), r"^mask must have shape \(2, 3\)"),
    # GEMM and Dense
    ("gemm", "b", _z((5, 5)), r"^gemm: inner dimensions differ: a is \(3, 4\) and b is \(5, 5\)"),
    ("gemm", "a", _z((3,)), r"^a must have shape"),
    ("gemm", "b", _z((4, 5, 1)), r"^b must have shape"),
    ("dense_forward", "x", _z((B, I + 1)), r"^x must have shape \(2, 4\), got \(2, 5\)"),
    ("dense_forward", "x", _z((B, 1, I)), r"^x must have shape \(-1, 4\), got \(2, 1, 4\)"),
    ("dense_forward", "kernel", _z((I + 1, U)), r"^x must have shape \(2, 5\)"),
    ("dense_forward", "kernel", _z((I * U,)), r"^kernel must have shape"),
    ("dense_forward", "bias", _z((U + 1,)), r"^bias must have shape \(6,\), got \(7,\)"),
    ("dense_forward", "bias", _z((1, U)), r"^bias must have shape \(6,\), got \(1, 6\)"),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fn,key,value,pattern", SHAPE_CASES,
                         ids=[f"{c[0]}-{c[1]}-{'x'.join(map(str, c[2].shape))}" for c in SHAPE_CASES])
def test_wrong_shape_raises(fn, key, value, pattern, dtype):
    kw = BUILDERS[fn](dtype)
    if value.dtype != np.bool_:
        value = value.astype(dtype)
    set_arg(kw, key, value)
    with pytest.raises(ValueError, match=pattern):
        native_fn(fn)(**kw)


@pytest.mark.parametrize("trans_a,trans_b,shape_a,shape_b", [
    (True, False, (3, 4), (4, 5)),   # a.T is (4, 3): inner 3 != 4
    (False, True, (3, 4), (4, 5)),   # b.T is (5, 4): inner 4 != 5
    (True, True, (3, 4), (3, 5)),    # (4, 3) @ (5, 3)
])
def test_gemm_transposed_inner_mismatch_raises(trans_a, trans_b, shape_a, shape_b):
    a, b = _z(shape_a), _z(shape_b)
    with pytest.raises(ValueError, match=r"^gemm: inner dimensions differ: a is .* and b is .* after transposes"):
        _native.gemm(a, b, trans_a=trans_a, trans_b=trans_b)


# A kernel whose width is not a whole number of gate blocks is rejected by the backward functions
# too (not only the forward), naming "kernel"; before the check, H = width // G silently truncated.
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fn,g", [("lstm_backward", 4), ("gru_backward", 3), ("gru_backward_v1", 3)])
@pytest.mark.parametrize("extra_cols", [1, 2])
def test_backward_rejects_kernel_width_not_multiple_of_gates(fn, g, extra_cols, dtype):
    kw = BUILDERS[fn](dtype)
    k = kw["kernel"]
    kw["kernel"] = np.ascontiguousarray(np.concatenate([k, k[:, :extra_cols]], axis=1))
    assert kw["kernel"].shape[1] == g * H + extra_cols
    with pytest.raises(ValueError, match=r"kernel"):
        native_fn(fn)(**kw)


@pytest.mark.parametrize("fn", [fn for fn in BUILDERS if fn.startswith(("simple", "lstm", "gru"))])
def test_zero_units_rejected(fn):
    """A kernel of width 0 (units = 0) is rejected rather than run with H = 0."""
    kw = BUILDERS[fn](np.float32)
    kw["kernel"] = np.zeros((I, 0), np.float32)
    with pytest.raises(ValueError, match=r"^kernel must have shape \(input_dim, \d \* units\), got \(4, 0\)"):
        native_fn(fn)(**kw)


# ---------------------------------------------------------------------------------------------
# Saved tuples, None where an array is required, activation names.

SAVED_LENGTH_CASES = [
    ("lstm_backward", r"^saved must be the \(h_states, c_states, gates\) tuple of lstm_forward"),
    ("gru_backward", r"^saved must be the \(states, gates, extra\) tuple of gru_forward"),
    ("gru_backward_v1", r"^saved must be the \(states, gates, extra\) tuple of gru_forward"),
]


@pytest.mark.parametrize("fn,pattern", SAVED_LENGTH_CASES)
@pytest.mark.parametrize("length", [0, 1, 2, 4])
def test_saved_tuple_of_wrong_length_raises(fn, pattern, length):
    kw = BUILDERS[fn](np.float32)
    saved = kw["saved"]
    kw["saved"] = tuple((saved * 2)[:length])
    with pytest.raises(ValueError, match=pattern):
        native_fn(fn)(**kw)


@pytest.mark.parametrize("fn", ["lstm_backward", "gru_backward"])
@pytest.mark.parametrize("bad", ["none", "list", "array"])
def test_saved_that_is_not_a_tuple_raises_type_error(fn, bad):
    kw = BUILDERS[fn](np.float32)
    kw["saved"] = {"none": None, "list": list(kw["saved"]), "array": kw["saved"][0]}[bad]
    with pytest.raises(TypeError, match=r"(?s)incompatible function arguments.*saved: tuple"):
        native_fn(fn)(**kw)


@pytest.mark.parametrize("fn", ["lstm_backward", "gru_backward"])
def test_saved_in_the_wrong_order_raises(fn):
    kw = BUILDERS[fn](np.float32)
    s = kw["saved"]
    kw["saved"] = (s[2], s[1], s[0])
    first = SAVED_NAMES[fn][0]
    with pytest.raises(ValueError, match=rf"^{first} must have shape"):
        native_fn(fn)(**kw)


def _none_cases():
    cases = []
    for fn, keys in ARRAY_ARGS.items():
        for key in keys:
            if key not in REQUIRED:
                continue
            name = msg_name(fn, key)
            if key == DISPATCH[fn][0]:  # the dtype switch needs an array: TypeError
                exc, pattern = TypeError, rf"^{name} must be a numpy array"
            else:
                exc, pattern = ValueError, rf"^{name} is required, got None"
            cases.append(pytest.param(fn, key, exc, pattern, id=f"{fn}-{key}"))
    return cases


@pytest.mark.parametrize("fn,key,exc,pattern", _none_cases())
def test_none_for_a_required_array_raises(fn, key, exc, pattern):
    kw = BUILDERS[fn](np.float32)
    set_arg(kw, key, None)
    with pytest.raises(exc, match=pattern):
        native_fn(fn)(**kw)


@pytest.mark.parametrize("fn", list(BUILDERS))
def test_optional_arrays_may_be_none(fn):
    kw = BUILDERS[fn](np.float32)
    for key in ARRAY_ARGS[fn]:
        if key not in REQUIRED:
            set_arg(kw, key, None)
    native_fn(fn)(**kw)


ACT_FUNCS = [fn for fn in BUILDERS if fn != "gemm"]


@pytest.mark.parametrize("fn", ACT_FUNCS)
@pytest.mark.parametrize("bad", ["bogus", "Tanh", "", "softmax", "tanh ", "hard-sigmoid"])
def test_unknown_activation_raises(fn, bad):
    kw = BUILDERS[fn](np.float32)
    kw["activation"] = bad
    with pytest.raises(ValueError, match=rf"^unknown activation '{re.escape(bad)}'"):
        native_fn(fn)(**kw)


@pytest.mark.parametrize("fn", [fn for fn in BUILDERS if fn.startswith(("lstm", "gru"))])
@pytest.mark.parametrize("bad", ["bogus_recurrent", "Sigmoid", "swish"])
def test_unknown_recurrent_activation_raises(fn, bad):
    kw = BUILDERS[fn](np.float32)
    kw["recurrent_activation"] = bad
    with pytest.raises(ValueError, match=rf"^unknown activation '{re.escape(bad)}'"):
        native_fn(fn)(**kw)


@pytest.mark.parametrize("fn,key", [(fn, key) for fn in ACT_FUNCS
                                    for key in ("activation", "recurrent_activation")
                                    if fn.startswith(("lstm", "gru")) or key == "activation"])
def test_activation_that_is_not_a_string_raises_type_error(fn, key):
    kw = BUILDERS[fn](np.float32)
    kw[key] = None
    with pytest.raises(TypeError, match=rf"(?s)incompatible function arguments.*{key}: str"):
        native_fn(fn)(**kw)


# The accuracy helpers take a 1-D float array and an activation name.
@pytest.mark.parametrize("value,exc,pattern", [
    (np.zeros((2, 3), np.float32), ValueError, r"^x must have shape \(-1,\), got \(2, 3\)"),
    (np.zeros(4, np.int32), ValueError, r"^x must have dtype float32 or float64, got int32"),
    (np.zeros(4, np.float16), ValueError, r"^x must have dtype float32 or float64"),
    (np.zeros(8, np.float32)[::2], ValueError, r"^x must be C-contiguous and aligned"),
    ([0.0, 1.0], TypeError, r"^x must be a numpy array"),
    (None, TypeError, r"^x must be a numpy array"),
])
def test_activation_and_exp_helpers_check_x(value, exc, pattern):
    with pytest.raises(exc, match=pattern):
        _native.activation("tanh", value)
    with pytest.raises(exc, match=pattern):
        _native.exp(value)


def test_activation_helper_unknown_name_raises():
    with pytest.raises(ValueError, match=r"^unknown activation 'gelu'"):
        _native.activation("gelu", np.zeros(3, np.float32))


def test_isa_helpers_reject_unknown_names():
    assert _native.isa() in ("generic", "avx2", "avx512")
    assert _native.isa_supported("generic")
    assert not _native.isa_supported("sse9")
    with pytest.raises(ValueError, match=r"isa must be 'generic', 'avx2' or 'avx512', got 'sse9'"):
        _native.force_isa("sse9")


def test_set_batch_lanes_modes():
    previous = _native.set_batch_lanes("on")
    try:
        assert _native.set_batch_lanes("off") == "on"
        assert _native.set_batch_lanes("auto") == "off"
        with pytest.raises(ValueError, match=r"^mode must be 'auto', 'on' or 'off', got 'fast'"):
            _native.set_batch_lanes("fast")
        assert _native.set_batch_lanes("auto") == "auto"  # a rejected mode changes nothing
    finally:
        _native.set_batch_lanes(previous)


def test_peak_gflops_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"^dtype must be 'float32' or 'float64', got 'float16'"):
        _native.peak_gflops("float16", 1)
    for threads in (0, -1, _native.max_threads() + 1, 2 ** 31 - 1):  # too many made OpenMP abort the process
        with pytest.raises(ValueError, match=rf"^threads must be between 1 and {_native.max_threads()} "
                                             rf"\(max_threads\(\)\), got {threads}$"):
            _native.peak_gflops("float32", threads)


@pytest.mark.parametrize("call, pattern", [
    (lambda: _native.activation("tanh\x00x", np.zeros(3, np.float32)), r"^name must not contain NUL"),
    (lambda: _native.force_isa("generic\x00"), r"^name must not contain NUL"),
    (lambda: _native.dense_forward(np.zeros((1, 2), np.float32), np.zeros((2, 3), np.float32), None, "relu\x00"),
     r"^activation must not contain NUL"),
])
def test_names_with_a_nul_are_rejected(call, pattern):
    """A NUL would cut the C string to another, valid name ("tanh\\0x" ran tanh)."""
    with pytest.raises(ValueError, match=pattern):
        call()
    assert not _native.isa_supported("generic\x00")


def _locked(a):
    a.flags.writeable = False
    return a


def test_weight_pack_refuses_two_gates_and_uninitialised_instances():
    k, rk = _locked(np.zeros((3, 10), np.float32)), _locked(np.zeros((5, 10), np.float32))
    with pytest.raises(ValueError, match=r"^gates must be 1, 3 or 4, got 2$"):
        _native.WeightPack(k, rk, 2)
    bare = _native.WeightPack.__new__(_native.WeightPack)  # no __init__: reading it crashed
    for attr in ("kernel", "recurrent_kernel", "gates", "packed_bytes"):
        with pytest.raises(TypeError, match=r"^WeightPack is not initialised"):
            getattr(bare, attr)
    k4, rk4 = _locked(np.zeros((3, 20), np.float32)), _locked(np.zeros((5, 20), np.float32))
    with pytest.raises(TypeError, match=r"^WeightPack is not initialised"):
        _native.lstm_forward(np.zeros((1, 2, 3), np.float32), k4, rk4, None, None, None, "tanh", "sigmoid",
                             None, False, False, True, pack=bare)


def test_weight_pack_refuses_a_kernel_resized_after_packing():
    """ndarray.resize(refcheck=False) moves the data: the pack would read freed memory."""
    k, rk = np.ones((3, 20), np.float32), _locked(np.ones((5, 20), np.float32))
    pack = _native.WeightPack(_locked(k), rk, 4)
    x = np.ones((1, 2, 3), np.float32)
    args = (None, None, None, "tanh", "sigmoid", None, False, False, True)
    before = _native.lstm_forward(x, k, rk, *args, pack=pack)[1]
    k.flags.writeable = True
    k.resize((300, 2000), refcheck=False)
    k.resize((3, 20), refcheck=False)
    k[...] = 1
    k.flags.writeable = False
    with pytest.raises(ValueError, match=r"^pack is stale: its kernel or recurrent_kernel was resized"):
        _native.lstm_forward(x, k, rk, *args, pack=pack)
    np.testing.assert_array_equal(_native.lstm_forward(x, k, rk, *args, pack=_native.WeightPack(k, rk, 4))[1], before)


# ---------------------------------------------------------------------------------------------
# Empty inputs.

CELL_VARIANTS = {
    "simple_rnn": ("simple_rnn", {}),
    "lstm": ("lstm", {}),
    "gru_reset_after": ("gru", {"reset_after": True}),
    "gru_reset_before": ("gru", {"reset_after": False}),
}


def _check_saved_shapes(cell, saved, b, t, h):
    if cell == "simple_rnn":
        assert saved.shape == (t + 1, b, h)
    elif cell == "lstm":
        assert [s.shape for s in saved] == [(t + 1, b, h), (t + 1, b, h), (t, b, 4 * h)]
    else:
        assert [s.shape for s in saved] == [(t + 1, b, h), (t, b, 3 * h), (t, b, h)]


def _unpack_backward(cell, res):
    """-> dx, dk, drk, db, dh0, dc0 (None unless LSTM)."""
    if cell == "lstm":
        return res
    return (*res, None)


@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_zero_steps(variant, dtype, with_mask, go_backwards):
    cell, opts = CELL_VARIANTS[variant]
    g = GATES[cell]
    fkw = forward_kwargs(cell, dtype, t=0, mask=with_mask, go_backwards=go_backwards, **opts)
    outputs, h_last, c_last, saved = run_forward(cell, fkw)
    assert outputs.shape == (B, 0, H) and outputs.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(h_last, fkw["h0"])
    if cell == "lstm":
        np.testing.assert_array_equal(c_last, fkw["c0"])
    _check_saved_shapes(cell, saved, B, 0, H)

    bkw = backward_kwargs(cell, fkw, saved)
    dx, dk, drk, db, dh0, dc0 = _unpack_backward(cell, native_fn(f"{cell}_backward")(**bkw))
    assert dx.shape == (B, 0, I)
    assert dk.shape == (I, g * H) and drk.shape == (H, g * H)
    assert db.shape == fkw["bias"].shape
    for grad in (dk, drk, db):
        assert grad.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(grad, 0)
    np.testing.assert_array_equal(dh0, bkw["d_h_last"])
    if cell == "lstm":
        np.testing.assert_array_equal(dc0, bkw["d_c_last"])

    # No incoming gradients at all: d_h0 (d_c0) are zero arrays, never None.
    bkw = backward_kwargs(cell, fkw, saved, d_outputs=None, d_h_last=None, d_c_last=None)
    dx, dk, drk, db, dh0, dc0 = _unpack_backward(cell, native_fn(f"{cell}_backward")(**bkw))
    np.testing.assert_array_equal(dh0, np.zeros((B, H)))
    if cell == "lstm":
        np.testing.assert_array_equal(dc0, np.zeros((B, H)))


@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
@pytest.mark.parametrize("dtype", FLOATS)
def test_zero_steps_without_initial_state_or_training(variant, dtype):
    cell, opts = CELL_VARIANTS[variant]
    for training, return_sequences in ((True, True), (False, False), (False, True), (True, False)):
        fkw = forward_kwargs(cell, dtype, t=0, h0=False, bias=False, training=training,
                             return_sequences=return_sequences, **opts)
        outputs, h_last, c_last, saved = run_forward(cell, fkw)
        if return_sequences:
            assert outputs.shape == (B, 0, H)
        else:
            assert outputs is None
        np.testing.assert_array_equal(h_last, np.zeros((B, H)))
        if cell == "lstm":
            np.testing.assert_array_equal(c_last, np.zeros((B, H)))
        if training:
            _check_saved_shapes(cell, saved, B, 0, H)
        else:
            assert saved is None
    # has_bias=False: d_bias is None
    fkw = forward_kwargs(cell, dtype, t=0, h0=False, bias=False, **opts)
    saved = run_forward(cell, fkw)[3]
    res = _unpack_backward(cell, native_fn(f"{cell}_backward")(**backward_kwargs(cell, fkw, saved)))
    assert res[3] is None
    np.testing.assert_array_equal(res[1], 0)


@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("t", [0, T])
@pytest.mark.parametrize("with_mask", [False, True])
def test_zero_batch(variant, dtype, t, with_mask):
    cell, opts = CELL_VARIANTS[variant]
    g = GATES[cell]
    fkw = forward_kwargs(cell, dtype, b=0, t=t, mask=with_mask, **opts)
    outputs, h_last, c_last, saved = run_forward(cell, fkw)
    assert outputs.shape == (0, t, H)
    assert h_last.shape == (0, H)
    if cell == "lstm":
        assert c_last.shape == (0, H)
    _check_saved_shapes(cell, saved, 0, t, H)

    bkw = backward_kwargs(cell, fkw, saved)
    dx, dk, drk, db, dh0, dc0 = _unpack_backward(cell, native_fn(f"{cell}_backward")(**bkw))
    assert dx.shape == (0, t, I)
    assert dh0.shape == (0, H)
    if cell == "lstm":
        assert dc0.shape == (0, H)
    assert dk.shape == (I, g * H) and drk.shape == (H, g * H) and db.shape == fkw["bias"].shape
    for grad in (dk, drk, db):  # a sum over an empty batch
        np.testing.assert_array_equal(grad, 0)

    for training, return_sequences in ((False, False), (False, True)):
        fkw = forward_kwargs(cell, dtype, b=0, t=t, mask=with_mask, training=training,
                             return_sequences=return_sequences, **opts)
        outputs, h_last, _, saved = run_forward(cell, fkw)
        assert h_last.shape == (0, H) and saved is None
        assert (outputs is None) if not return_sequences else outputs.shape == (0, t, H)


@pytest.mark.parametrize("variant", list(CELL_VARIANTS))
@pytest.mark.parametrize("dtype", FLOATS)
def test_zero_input_features(variant, dtype):
    """I = 0 runs like an input of zeros: the same outputs and state gradients, dx (B, T, 0)."""
    cell, opts = CELL_VARIANTS[variant]
    g = GATES[cell]
    fkw = forward_kwargs(cell, dtype, i=0, **opts)
    zkw = dict(fkw, x=np.zeros((B, T, 1), dtype), kernel=np.zeros((1, g * H), dtype))
    out0, h0, c0, saved0 = run_forward(cell, fkw)
    out1, h1, c1, saved1 = run_forward(cell, zkw)
    np.testing.assert_array_equal(out0, out1)
    np.testing.assert_array_equal(h0, h1)
    res0 = _unpack_backward(cell, native_fn(f"{cell}_backward")(**backward_kwargs(cell, fkw, saved0)))
    res1 = _unpack_backward(cell, native_fn(f"{cell}_backward")(**backward_kwargs(cell, zkw, saved1)))
    assert res0[0].shape == (B, T, 0) and res0[1].shape == (0, g * H)
    for a, b in zip(res0[2:], res1[2:]):
        if b is not None:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("m,k,n", [(0, 4, 5), (3, 4, 0), (3, 0, 5), (0, 0, 0)])
def test_gemm_empty(dtype, m, k, n):
    rng = np.random.default_rng(5)
    a, b = _rand(rng, (m, k), dtype), _rand(rng, (k, n), dtype)
    c = _native.gemm(a, b)
    assert c.shape == (m, n) and c.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(c, np.zeros((m, n)))  # k = 0: an empty sum is zero
    ct = _native.gemm(np.ascontiguousarray(a.T), np.ascontiguousarray(b.T), trans_a=True, trans_b=True)
    assert ct.shape == (m, n)
    np.testing.assert_array_equal(ct, np.zeros((m, n)))


@pytest.mark.parametrize("dtype", FLOATS)
def test_dense_empty(dtype):
    rng = np.random.default_rng(6)
    k, bias = _rand(rng, (I, U), dtype), _rand(rng, (U,), dtype)
    y = _native.dense_forward(np.zeros((0, I), dtype), k, bias, "tanh")
    assert y.shape == (0, U) and y.dtype == np.dtype(dtype)
    # No input features: y = act(bias) on every row.
    y = _native.dense_forward(np.zeros((3, 0), dtype), np.zeros((0, U), dtype), bias, "relu")
    np.testing.assert_array_equal(y, np.broadcast_to(np.maximum(bias, 0), (3, U)))
    y = _native.dense_forward(np.zeros((3, I), dtype), np.zeros((I, 0), dtype), None, "sigmoid")
    assert y.shape == (3, 0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_activation_helpers_empty(dtype):
    assert _native.activation("tanh", np.zeros(0, dtype)).shape == (0,)
    assert _native.exp(np.zeros(0, dtype)).shape == (0,)


def test_large_results_reuse_cached_blocks_and_release_memory():
    """Large results come from the cache of freed blocks; they stay valid after the cache is
    released, and values never leak from one result into the next."""
    import rnnkit
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 40, 16)).astype(np.float32)  # outputs (64, 40, 128): 1.3 MB
    k = (0.2 * rng.standard_normal((16, 128))).astype(np.float32)
    r = (0.1 * rng.standard_normal((128, 128))).astype(np.float32)
    first = _native.simple_rnn_forward(x, k, r, None, None, "tanh", None, False, False, True)[0]
    kept = first.copy()
    del first  # its block goes back to the cache ...
    second = _native.simple_rnn_forward(2 * x, k, r, None, None, "tanh", None, False, False, True)[0]
    rnnkit.release_memory()
    third = _native.simple_rnn_forward(x, k, r, None, None, "tanh", None, False, False, True)[0]
    np.testing.assert_array_equal(third, kept)  # ... and is fully overwritten by the next result
    assert not np.array_equal(second, kept)
    assert second.flags.owndata is False and second.base is not None  # owned by the cache capsule


_EVICTION_SCRIPT = r"""
import numpy as np
from rnnkit import _native
MiB = 1 << 20

def result(rows, scale=1.0):  # a (rows, 40, 128) float32 SimpleRNN output: rows * 20 KiB
    x = np.full((rows, 40, 16), scale, np.float32)
    k = np.full((16, 128), 0.01, np.float32)
    r = np.full((128, 128), 0.001, np.float32)
    return _native.simple_rnn_forward(x, k, r, None, None, "tanh", None, False, False, True)[0]

b2_expected = result(160, 2.0).copy()
_native.release_cached_blocks()
a = result(64)                       # 1.25 MiB: a page-rounded block
del a
after_a = _native.cached_block_bytes()
assert 1.2 * MiB < after_a < 1.4 * MiB, after_a
b = result(160)                      # 3.1 MiB: rounded to two 2 MiB huge pages
b_values = b.copy()
del b
after_b = _native.cached_block_bytes()
# the cap (4 MiB) cannot hold both: the older block (a) went back to the system, b stayed
assert after_b == 4 * MiB, after_b
a2 = result(64)                      # a's size again: not cached any more, fresh from the system
assert _native.cached_block_bytes() == 4 * MiB
b2 = result(160, 2.0)                # b's size: served from the cache
assert _native.cached_block_bytes() == 0
np.testing.assert_array_equal(b2, b2_expected)  # the reused block holds the new result in full
assert not np.array_equal(b2, b_values)
big = result(300)                    # 5.9 MiB: larger than the cap, never cached
del big
assert _native.cached_block_bytes() == 0
print("ok")
"""


def test_large_block_cache_evicts_the_oldest_blocks():
    """With RNNKIT_CACHE_MB=4, a freed block that does not fit evicts the blocks freed before it
    (not the other way round), and a block larger than the cap goes straight back."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, RNNKIT_CACHE_MB="4")
    done = subprocess.run([sys.executable, "-c", _EVICTION_SCRIPT], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
