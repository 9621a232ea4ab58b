"""rnnkit.ops: argument validation, canonicalisation and the B = 0 / T = 0 rules.

Every bad-input path raises the right exception type with a message naming the argument; inputs
that are merely non-canonical (strided, integer, float16, big-endian) give the same results as the
canonical array; empty batches and sequences never reach an implementation.
"""

from __future__ import annotations

import numpy as np
import pytest


import rnnkit
from rnnkit import _backend, ops
from rnnkit.ops.recurrent import RecurrentCache


# cell -> (gates G, forward, backward, names of the initial states)
CELLS = {
    "simple_rnn": (1, ops.simple_rnn_forward, ops.simple_rnn_backward, ("h0",)),
    "lstm": (4, ops.lstm_forward, ops.lstm_backward, ("h0", "c0")),
    "gru": (3, ops.gru_forward, ops.gru_backward, ("h0",)),
}
B, T, I, H = 4, 7, 3, 5


@pytest.fixture(params=list(CELLS))
def cell(request):
    return request.param


def make_args(cell, batch=B, time=T, inputs=I, units=H, dtype=np.float64, seed=0, reset_after=True):
    """Random, well-scaled forward arguments (x, kernel, recurrent_kernel, bias, initial states)."""
    gates = CELLS[cell][0]
    rng = np.random.default_rng(seed)
    bias_shape = (2, gates * units) if cell == "gru" and reset_after else (gates * units,)
    args = dict(
        x=rng.standard_normal((batch, time, inputs)).astype(dtype),
        kernel=(rng.standard_normal((inputs, gates * units)) / np.sqrt(inputs)).astype(dtype),
        recurrent_kernel=(rng.standard_normal((units, gates * units)) / np.sqrt(units)).astype(dtype),
        bias=(0.1 * rng.standard_normal(bias_shape)).astype(dtype),
    )
    for name in CELLS[cell][3]:
        args[name] = rng.standard_normal((batch, units)).astype(dtype)
    if cell == "gru":
        args["reset_after"] = reset_after
    return args


def forward(cell, **kwargs):
    """Call ops.<cell>_forward; return (outputs, final_states list, cache)."""
    res = CELLS[cell][1](**kwargs)
    return res[0], list(res[1:-1]), res[-1]


def backward(cell, d_outputs, d_states, cache):
    return CELLS[cell][2](d_outputs, *d_states, cache)


def run_both(cell, **kwargs):
    """Forward with training and backward with all-ones incoming gradients; all arrays returned."""
    outputs, finals, cache = forward(cell, **kwargs)
    d_out = None if outputs is None else np.ones_like(outputs)
    grads = backward(cell, d_out, [np.ones_like(s) for s in finals], cache)
    return [outputs, *finals, *grads]


def assert_same(results_a, results_b):
    assert len(results_a) == len(results_b)
    for a, b in zip(results_a, results_b):
        if b is None:
            assert a is None
        else:
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# Bad input: one test per path, checking the type and that the message names the argument
# ---------------------------------------------------------------------------------------------


def test_x_wrong_ndim(backend, cell):
    args = make_args(cell)
    args["x"] = args["x"][:, 0]
    with pytest.raises(ValueError, match=r"x must have shape \(batch, time, 3\) \(3-D\), got 2-D"):
        forward(cell, **args)


def test_x_wrong_feature_size(backend, cell):
    args = make_args(cell)
    args["x"] = np.zeros((4, 7, 5))
    with pytest.raises(ValueError, match=r"^x must have shape \(batch, time, 3\), got \(4, 7, 5\)$"):
        forward(cell, **args)


def test_x_not_numeric(backend, cell):
    args = make_args(cell)
    args["x"] = np.full((B, T, I), "a")
    with pytest.raises(TypeError, match="^x must be a numeric array"):
        forward(cell, **args)


def test_kernel_wrong_ndim(backend, cell):
    args = make_args(cell)
    args["kernel"] = args["kernel"][0]
    with pytest.raises(ValueError, match=r"^kernel must have shape \(input_dim, "):
        forward(cell, **args)


@pytest.mark.parametrize("cell_with_gates", ["lstm", "gru"])
def test_kernel_columns_not_multiple_of_gates(backend, cell_with_gates):
    args = make_args(cell_with_gates)
    args["kernel"] = args["kernel"][:, :-1]
    with pytest.raises(ValueError, match=r"^kernel must have shape \(input_dim, [34] \* units\)"):
        forward(cell_with_gates, **args)


def test_recurrent_kernel_wrong_shape(backend, cell):
    args = make_args(cell)
    args["recurrent_kernel"] = args["recurrent_kernel"][:-1]
    gh = CELLS[cell][0] * H
    with pytest.raises(ValueError, match=rf"^recurrent_kernel must have shape \({H}, {gh}\), got \({H - 1}, {gh}\)"):
        forward(cell, **args)


def test_kernel_and_recurrent_kernel_disagree_on_units(backend, cell):
    args = make_args(cell)
    args["kernel"] = make_args(cell, units=H + 1)["kernel"]
    with pytest.raises(ValueError, match="^recurrent_kernel must have shape"):
        forward(cell, **args)


def test_bias_wrong_shape(backend, cell):
    args = make_args(cell)
    args["bias"] = args["bias"][..., :-1]
    with pytest.raises(ValueError, match="^bias must have shape"):
        forward(cell, **args)


@pytest.mark.parametrize("name", ["kernel", "recurrent_kernel", "bias"])
def test_integer_weights(backend, cell, name):
    args = make_args(cell)
    args[name] = np.ones(args[name].shape, dtype=np.int64)
    expected = "kernel must be a float32 or float64 array, got int64" if name == "kernel" else name
    with pytest.raises(TypeError, match=f"^{expected}"):
        forward(cell, **args)


@pytest.mark.parametrize("name", ["recurrent_kernel", "bias"])
def test_weights_of_mixed_dtypes(backend, cell, name):
    args = make_args(cell)
    args[name] = args[name].astype(np.float32)
    with pytest.raises(TypeError, match=rf"^{name} must have the same dtype as kernel \(float64\), got float32"):
        forward(cell, **args)


def test_float16_kernel_rejected(backend, cell):
    args = make_args(cell)
    args["kernel"] = args["kernel"].astype(np.float16)
    with pytest.raises(TypeError, match="^kernel must be a float32 or float64 array, got float16"):
        forward(cell, **args)


def test_mask_wrong_shape(backend, cell):
    with pytest.raises(ValueError, match=rf"^mask must have shape \({B}, {T}\) \(batch, time\), got \({B}, {T - 1}\)"):
        forward(cell, **make_args(cell), mask=np.ones((B, T - 1), bool))


def test_mask_wrong_dtype(backend, cell):
    with pytest.raises(TypeError, match="^mask must be a boolean array"):
        forward(cell, **make_args(cell), mask=np.ones((B, T), np.float64))


def test_lengths_wrong_shape(backend, cell):
    with pytest.raises(ValueError, match=rf"^lengths must have shape \({B},\) \(batch,\), got \({B}, 1\)"):
        forward(cell, **make_args(cell), lengths=np.ones((B, 1), np.int64))


def test_lengths_wrong_dtype(backend, cell):
    with pytest.raises(TypeError, match="^lengths must be an integer array"):
        forward(cell, **make_args(cell), lengths=np.ones(B))


@pytest.mark.parametrize("bad", [-1, T + 1])
def test_lengths_outside_range(backend, cell, bad):
    lengths = np.array([T, 0, bad, 2])
    with pytest.raises(ValueError, match=rf"^lengths must be in \[0, time\] = \[0, {T}\], got {bad} at row 2"):
        forward(cell, **make_args(cell), lengths=lengths)


def test_mask_and_lengths_both(backend, cell):
    with pytest.raises(ValueError, match="either mask or lengths"):
        forward(cell, **make_args(cell), mask=np.ones((B, T), bool), lengths=np.full(B, T))


def test_unknown_activation(backend, cell):
    with pytest.raises(ValueError, match=r"^activation must be one of tanh, relu, sigmoid, linear, got 'gelu'"):
        forward(cell, **make_args(cell), activation="gelu")


def test_activation_not_a_string(backend, cell):
    with pytest.raises(TypeError, match="^activation must be a string"):
        forward(cell, **make_args(cell), activation=np.tanh)


@pytest.mark.parametrize("gated", ["lstm", "gru"])
def test_unknown_recurrent_activation(backend, gated):
    with pytest.raises(ValueError, match=r"^recurrent_activation must be one of sigmoid, hard_sigmoid, tanh"):
        forward(gated, **make_args(gated), recurrent_activation="softmax")


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_bias_shape_must_match_reset_after(backend, reset_after):
    args = make_args("gru", reset_after=not reset_after)  # the other variant's bias
    args["reset_after"] = reset_after
    want = rf"\(2, {3 * H}\)" if reset_after else rf"\({3 * H},\)"
    with pytest.raises(ValueError, match=rf"^bias must have shape {want} when reset_after={reset_after}, got"):
        forward("gru", **args)


def test_h0_wrong_shape(backend, cell):
    args = make_args(cell)
    args["h0"] = args["h0"][:, :-1]
    with pytest.raises(ValueError, match=rf"^h0 must have shape \({B}, {H}\) = \(batch, units\), got \({B}, {H - 1}\)"):
        forward(cell, **args)


def test_h0_batch_mismatch(backend, cell):
    args = make_args(cell)
    args["h0"] = args["h0"][:-1]
    with pytest.raises(ValueError, match=r"^h0 must have shape"):
        forward(cell, **args)


def test_c0_wrong_shape(backend):
    args = make_args("lstm")
    args["c0"] = args["c0"][None]
    with pytest.raises(ValueError, match=rf"^c0 must have shape \({B}, {H}\)"):
        forward("lstm", **args)


@pytest.mark.parametrize("flag", ["go_backwards", "training", "return_sequences"])
def test_flags_must_be_bool(backend, cell, flag):
    with pytest.raises(TypeError, match=f"^{flag} must be a bool, got str"):
        forward(cell, **make_args(cell), **{flag: "False"})


def test_backward_after_inference_call(backend, cell):
    _, finals, cache = forward(cell, **make_args(cell), training=False)
    assert cache is None
    with pytest.raises(ValueError, match=r"^cache is None: call \w+_forward\(\.\.\., training=True\)"):
        backward(cell, None, [None] * len(finals), cache)


def test_backward_with_non_cache(backend, cell):
    with pytest.raises(TypeError, match="^cache must be the cache returned by"):
        backward(cell, None, [None] * len(CELLS[cell][3]), {"impl": None})


def test_backward_with_cache_of_another_cell(backend):
    *_, cache = forward("gru", **make_args("gru"))
    with pytest.raises(ValueError, match="^cache was made by gru_forward, not simple_rnn_forward"):
        ops.simple_rnn_backward(None, None, cache)


def test_wrong_d_outputs_shape(backend, cell):
    outputs, finals, cache = forward(cell, **make_args(cell))
    with pytest.raises(ValueError, match=rf"^d_outputs must have shape \({B}, {T}, {H}\) = \(batch, time, units\)"):
        backward(cell, outputs[:, 1:], [None] * len(finals), cache)


def test_d_outputs_without_return_sequences(backend, cell):
    outputs, finals, cache = forward(cell, **make_args(cell), return_sequences=False)
    assert outputs is None
    with pytest.raises(ValueError, match="^d_outputs must be None when forward ran with return_sequences=False"):
        backward(cell, np.zeros((B, T, H)), [None] * len(finals), cache)


@pytest.mark.parametrize(
    "state_cell, which", [("simple_rnn", 0), ("gru", 0), ("lstm", 0), ("lstm", 1)]
)
def test_wrong_d_state_shape(backend, state_cell, which):
    outputs, finals, cache = forward(state_cell, **make_args(state_cell))
    d_states = [None] * len(finals)
    d_states[which] = np.zeros((B, H + 1))
    name = ("d_h_last", "d_c_last")[which]
    with pytest.raises(ValueError, match=rf"^{name} must have shape \({B}, {H}\) = \(batch, units\)"):
        backward(state_cell, None, d_states, cache)


# ---------------------------------------------------------------------------------------------
# Conversion: non-canonical inputs are converted, never misread
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda x: np.asfortranarray(x), id="fortran-order"),
        pytest.param(lambda x: np.repeat(x, 2, axis=1)[:, ::2], id="strided"),
        pytest.param(lambda x: x.astype(np.float16), id="float16"),
        pytest.param(lambda x: x.astype(">f8"), id="big-endian-f8"),
        pytest.param(lambda x: x.astype(">f4"), id="big-endian-f4"),
        pytest.param(lambda x: np.rint(4 * x).astype(np.int64), id="int64"),
        pytest.param(lambda x: np.rint(4 * x).astype(np.int16), id="int16"),
        pytest.param(lambda x: (np.rint(4 * x).astype(np.int64)).tolist(), id="nested-list"),
    ],
)
def test_x_conversion_matches_canonical(backend, cell, dtype, convert):
    args = make_args(cell, dtype=dtype)
    odd_x = convert(args["x"])
    # the canonical array holds exactly the values the converted input represents
    args["x"] = np.ascontiguousarray(np.asarray(odd_x), dtype=dtype)
    expected = run_both(cell, **args)
    args["x"] = odd_x
    assert_same(run_both(cell, **args), expected)


def test_weights_and_states_conversion_matches_canonical(backend, cell):
    """Big-endian and strided weights/states, integer masks and int32 lengths are converted correctly."""
    args = make_args(cell)
    mask = np.arange(T) < np.array([T, 0, 3, 5])[:, None]
    expected = run_both(cell, **args, mask=mask)
    odd = {k: (v.astype(">f8") if k in ("kernel", "h0") else np.asfortranarray(v)) if isinstance(v, np.ndarray) else v
           for k, v in args.items()}
    odd["recurrent_kernel"] = np.repeat(args["recurrent_kernel"], 2, axis=0)[::2]
    assert not odd["recurrent_kernel"].flags.c_contiguous
    assert_same(run_both(cell, **odd, mask=mask.astype(np.uint8)), expected)
    assert_same(run_both(cell, **odd, lengths=np.array([T, 0, 3, 5], np.int32)), expected)
    assert_same(run_both(cell, **odd, mask=np.asfortranarray(mask)), expected)


def test_activation_names_are_case_insensitive(backend, cell):
    args = make_args(cell)
    expected = run_both(cell, **args, activation="relu")
    assert_same(run_both(cell, **args, activation="ReLU"), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_have_the_weights_dtype(backend, cell, dtype):
    args = make_args(cell, dtype=dtype)
    args["x"] = args["x"].astype(np.float64 if dtype == np.float32 else np.float32)
    for arr in run_both(cell, **args):
        assert arr.dtype == dtype


# ---------------------------------------------------------------------------------------------
# A spy implementation: canonical arrays are passed through, empty inputs never reach it
# ---------------------------------------------------------------------------------------------


class SpyImpl:
    """Records the arguments of every call; refuses empty arrays."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def fn(*args, **kwargs):
            for a in list(args) + list(kwargs.values()):
                if isinstance(a, np.ndarray):
                    assert a.size > 0, f"{name} received an empty array"
            self.calls.append((name, args, kwargs))
            raise LookupError("spy")

        return fn


@pytest.fixture
def spy(monkeypatch):
    impl = SpyImpl()
    monkeypatch.setattr(_backend, "_impl", impl)
    return impl


def test_canonical_arrays_are_passed_without_copies(spy, cell):
    args = make_args(cell, dtype=np.float32)
    mask = np.ones((B, T), bool)
    with pytest.raises(LookupError, match="spy"):
        forward(cell, **args, mask=mask)
    (name, passed, kwargs), = spy.calls
    assert name == f"{cell}_forward"
    expected = [args["x"], args["kernel"], args["recurrent_kernel"], args["bias"]] + [args[s] for s in CELLS[cell][3]]
    assert all(a is b for a, b in zip(passed, expected))
    assert kwargs["mask"] is mask
    assert kwargs["activation"] == "tanh"


def test_lengths_become_a_mask(spy, cell):
    with pytest.raises(LookupError, match="spy"):
        forward(cell, **make_args(cell), lengths=np.array([0, 7, 3, 1]), activation="Sigmoid")
    (_, _, kwargs), = spy.calls
    expected = np.arange(T) < np.array([0, 7, 3, 1])[:, None]
    mask = kwargs["mask"]
    assert mask.dtype == bool and mask.flags.c_contiguous
    np.testing.assert_array_equal(mask, expected)
    assert kwargs["activation"] == "sigmoid"


# ---------------------------------------------------------------------------------------------
# Empty inputs: T = 0 and B = 0
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_states", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
def test_zero_time_steps(spy, cell, with_states, with_bias):
    args = make_args(cell, time=0)
    if not with_states:
        for s in CELLS[cell][3]:
            args[s] = None
    if not with_bias:
        args["bias"] = None
    outputs, finals, cache = forward(cell, **args, lengths=np.zeros(B, np.int64))
    assert outputs.shape == (B, 0, H) and outputs.dtype == np.float64
    for name, final in zip(CELLS[cell][3], finals):
        expected = np.zeros((B, H)) if args[name] is None else args[name]
        np.testing.assert_array_equal(final, expected)
        assert final is not args[name]
    d_states = [np.full((B, H), k + 1.0) for k in range(len(finals))]
    dx, d_kernel, d_recurrent_kernel, d_bias, *d_initial = backward(cell, np.zeros((B, 0, H)), d_states, cache)
    assert dx.shape == (B, 0, I)
    np.testing.assert_array_equal(d_kernel, np.zeros_like(args["kernel"]))
    np.testing.assert_array_equal(d_recurrent_kernel, np.zeros_like(args["recurrent_kernel"]))
    if with_bias:
        np.testing.assert_array_equal(d_bias, np.zeros_like(args["bias"]))
    else:
        assert d_bias is None
    for d0, d_last in zip(d_initial, d_states):
        np.testing.assert_array_equal(d0, d_last)  # passed straight through
        assert d0 is not d_last
    # no incoming gradients: zeros
    *_, d_h0_none = backward(cell, None, [None] * len(finals), cache)[:5]
    np.testing.assert_array_equal(d_h0_none, np.zeros((B, H)))
    assert spy.calls == []


def test_zero_time_steps_without_sequences(spy, cell):
    outputs, finals, cache = forward(cell, **make_args(cell, time=0), return_sequences=False)
    assert outputs is None
    assert [f.shape for f in finals] == [(B, H)] * len(finals)
    _, finals, cache = forward(cell, **make_args(cell, time=0), training=False)
    assert cache is None
    assert spy.calls == []


@pytest.mark.parametrize("time", [0, T])
def test_zero_batch(spy, cell, time):
    args = make_args(cell, batch=0, time=time, dtype=np.float32)
    outputs, finals, cache = forward(cell, **args, mask=np.ones((0, time), bool), go_backwards=True)
    assert outputs.shape == (0, time, H) and outputs.dtype == np.float32
    assert [f.shape for f in finals] == [(0, H)] * len(finals)
    grads = backward(cell, np.zeros((0, time, H), np.float32), [None] * len(finals), cache)
    shapes = [(0, time, I), args["kernel"].shape, args["recurrent_kernel"].shape, args["bias"].shape]
    shapes += [(0, H)] * len(finals)
    assert [g.shape for g in grads] == shapes
    assert all(g.dtype == np.float32 and not g.any() for g in grads)
    assert spy.calls == []


def test_empty_results_with_a_real_backend(backend, cell):
    """The same rules hold whichever backend is active (it is never called)."""
    outputs, finals, cache = forward(cell, **make_args(cell, time=0))
    assert outputs.shape == (B, 0, H)
    assert isinstance(cache, RecurrentCache)


def test_cache_remembers_its_implementation(backend, cell):
    """Switching backend between forward and backward runs the backward of the forward's backend."""
    args = make_args(cell)
    expected = run_both(cell, **args)
    outputs, finals, cache = forward(cell, **args)
    impl = cache.impl
    other = "python" if backend == "native" else ("native" if _backend.native_available() else "python")
    rnnkit.set_backend(other)
    grads = backward(cell, np.ones_like(outputs), [np.ones_like(s) for s in finals], cache)
    assert cache.impl is impl
    assert_same([outputs, *finals, *grads], expected)
