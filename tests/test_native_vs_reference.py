"""The oracle test: the native kernels agree with the NumPy reference, forward and every gradient.

Both run through ``rnnkit.ops`` (``set_backend("native")`` vs ``set_backend("python")``) on the same
random cases. Agreement is measured per array as ‖a − b‖ / ‖b‖ (docs/SPEC.md §14.1):
≤ 1e-5 in float32, ≤ 1e-10 in float64; NaN or Inf never passes.

Cases come from a seeded generator: B, T, I, H drawn from sizes that include 1 and values that are
not multiples of the SIMD width, every activation, both dtypes, with/without bias and initial
states, masks and lengths (including zero-length rows), go_backwards, return_sequences on and off.
"""

from __future__ import annotations

import numpy as np
import pytest

from _native_required import import_native, skip_or_fail
from numerics import assert_rel_close

import rnnkit
from rnnkit import ops

_native = import_native()  # nothing to compare without it (skipped; a failure under RNNKIT_REQUIRE_NATIVE=1)
import rnnkit._native_ops as _native_ops  # noqa: E402

RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}
SIZES = (1, 3, 5, 17, 33)
ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")
RECURRENT_ACTIVATIONS = ("sigmoid", "hard_sigmoid", "tanh", "relu", "linear")
CASES_PER_CELL = 60

# variant -> (cell, gates G, forward, backward, number of states, extra forward kwargs)
VARIANTS = {
    "simple_rnn": ("simple_rnn", 1, ops.simple_rnn_forward, ops.simple_rnn_backward, 1, {}),
    "lstm": ("lstm", 4, ops.lstm_forward, ops.lstm_backward, 2, {}),
    "gru_reset_after": ("gru", 3, ops.gru_forward, ops.gru_backward, 1, {"reset_after": True}),
    "gru_reset_before": ("gru", 3, ops.gru_forward, ops.gru_backward, 1, {"reset_after": False}),
}


@pytest.mark.parametrize(
    "actual, expected, ok",
    [
        ([1.0, 2.0], [1.0, 2.0], True),
        ([1.0, 2.0 + 1e-12], [1.0, 2.0], True),
        ([1.0, 2.001], [1.0, 2.0], False),
        ([np.nan, 2.0], [1.0, 2.0], False),
        ([1.0, 2.0], [np.nan, 2.0], False),
        ([np.inf, 2.0], [np.inf, 2.0], False),
        ([0.0, 1e-30], [0.0, 0.0], False),
        ([0.0, 0.0], [0.0, 0.0], True),
    ],
)
def test_assert_rel_close_itself(actual, expected, ok):
    if ok:
        assert_rel_close(np.array(actual), np.array(expected), 1e-10)
    else:
        with pytest.raises(AssertionError):
            assert_rel_close(np.array(actual), np.array(expected), 1e-10)


# ---------------------------------------------------------------------------------------------
# Random cases
# ---------------------------------------------------------------------------------------------


def make_cases(variant, count, seed):
    """Deterministic case descriptions; activations and dtypes cycle so that each one appears."""
    rng = np.random.default_rng(seed)
    cases = []
    for k in range(count):
        b, t, i, h = (int(rng.choice(SIZES)) for _ in range(4))
        if k == 0:
            b = t = i = h = 1
        cases.append(dict(
            variant=variant, seed=int(rng.integers(2**31)), B=b, T=t, I=i, H=h,
            dtype=(np.float32, np.float64)[k % 2],
            activation=ACTIVATIONS[k % len(ACTIVATIONS)],
            recurrent_activation=RECURRENT_ACTIVATIONS[k % len(RECURRENT_ACTIVATIONS)],
            bias=bool(rng.random() < 0.75),
            initial_states=bool(rng.random() < 0.5),
            masking=("none", "mask", "lengths")[k % 3],
            go_backwards=bool(rng.random() < 0.5),
            return_sequences=bool(rng.random() < 0.7),
            d_state=bool(rng.random() < 0.7),
        ))
    return cases


def case_id(c):
    return (f"{c['B']}x{c['T']}x{c['I']}x{c['H']}-{np.dtype(c['dtype']).name}-{c['activation']}"
            f"{'-' + c['recurrent_activation'] if c['variant'] != 'simple_rnn' else ''}-{c['masking']}"
            f"{'-bias' if c['bias'] else ''}{'-h0' if c['initial_states'] else ''}"
            f"{'-back' if c['go_backwards'] else ''}{'-seq' if c['return_sequences'] else ''}")


CASES = [c for seed, v in enumerate(VARIANTS) for c in make_cases(v, CASES_PER_CELL, seed=1000 + seed)]


def make_arrays(case):
    """Forward kwargs and incoming gradients for one case (weights scaled to keep the recurrence stable)."""
    cell, gates, _, _, n_states, extra = VARIANTS[case["variant"]]
    b, t, i, h, dtype = case["B"], case["T"], case["I"], case["H"], case["dtype"]
    rng = np.random.default_rng(case["seed"])

    def rand(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    # Gates outside [0, 1] (tanh/relu/linear recurrent activations) let the state grow without limit
    # (h = z*h + (1-z)*hh with 1-z > 1): smaller weights keep every gate near 0 and long sequences finite.
    # Unbounded gates with an unbounded activation feed back quadratically (r * (h @ R)): smaller still.
    gain = 1.0
    if cell != "simple_rnn" and case["recurrent_activation"] not in ("sigmoid", "hard_sigmoid"):
        gain = 0.2 if case["activation"] in ("relu", "linear") else 0.3
    kwargs = dict(x=rand(b, t, i), kernel=rand(i, gates * h, scale=gain / np.sqrt(i)),
                  recurrent_kernel=rand(h, gates * h, scale=0.7 * gain / np.sqrt(h)), **extra)
    if case["bias"]:
        kwargs["bias"] = rand(*((2, 3 * h) if extra.get("reset_after") else (gates * h,)), scale=0.3)
    if case["initial_states"]:
        for name in ("h0", "c0")[:n_states]:
            kwargs[name] = rand(b, h, scale=0.5)
    if case["masking"] != "none":
        lengths = rng.integers(0, t + 1, size=b)
        lengths[0] = 0  # a zero-length row in every masked case
        if b > 1:
            lengths[1] = t
        if case["masking"] == "lengths":
            kwargs["lengths"] = lengths
        else:
            kwargs["mask"] = rng.random((b, t)) < 0.7  # arbitrary patterns, not only prefixes
            kwargs["mask"][0] = False
    kwargs["activation"] = case["activation"]
    if cell != "simple_rnn":
        kwargs["recurrent_activation"] = case["recurrent_activation"]
    kwargs["go_backwards"] = case["go_backwards"]
    kwargs["return_sequences"] = case["return_sequences"]
    d_outputs = rand(b, t, h) if case["return_sequences"] else None
    d_states = [rand(b, h) if case["d_state"] or d_outputs is None else None for _ in range(n_states)]
    return kwargs, d_outputs, d_states


def run(backend, variant, kwargs, d_outputs, d_states):
    """Forward (training) and backward with ``backend`` active; returns (names, arrays)."""
    _, _, forward, backward, n_states, _ = VARIANTS[variant]
    rnnkit.set_backend(backend)
    outputs, *finals, cache = forward(**kwargs, training=True)
    grads = backward(d_outputs, *d_states, cache)
    names = ["outputs", "h_last", "c_last"][: 1 + n_states] + \
        ["dx", "d_kernel", "d_recurrent_kernel", "d_bias", "d_h0", "d_c0"][: 4 + n_states]
    return names, [outputs, *finals, *grads]


def require_native(variant):
    cell = VARIANTS[variant][0]
    for fn in (f"{cell}_forward", f"{cell}_backward"):
        if not (hasattr(_native, fn) and hasattr(_native_ops, fn)):
            skip_or_fail(f"rnnkit._native has no {fn} yet")


@pytest.fixture
def restore_backend():
    previous = rnnkit.get_backend()
    yield
    rnnkit.set_backend(previous)


@pytest.fixture
def batch_lanes():
    """Call with "on" / "off" to force the native forward path; restored to the previous mode after."""
    previous = _native.set_batch_lanes("auto")
    _native.set_batch_lanes(previous)
    yield _native.set_batch_lanes
    _native.set_batch_lanes(previous)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['variant']}-{k % CASES_PER_CELL}-{case_id(c)}"
                                             for k, c in enumerate(CASES)])
def test_native_matches_reference(restore_backend, batch_lanes, case):
    """Both native forward paths (batch lanes and GEMM, forced in turn) agree with the reference."""
    require_native(case["variant"])
    kwargs, d_outputs, d_states = make_arrays(case)
    names, expected = run("python", case["variant"], kwargs, d_outputs, d_states)
    rtol = RTOL[np.dtype(case["dtype"])]
    for mode in ("on", "off"):
        batch_lanes(mode)
        _, actual = run("native", case["variant"], kwargs, d_outputs, d_states)
        for name, a, b in zip(names, actual, expected):
            if b is not None:
                assert a is not None and a.dtype == b.dtype, \
                    f"{mode}: {name}: dtype {getattr(a, 'dtype', None)} != {b.dtype}"
            assert_rel_close(a, b, rtol, f"batch lanes {mode}: {name}")


def test_inference_matches_training(restore_backend):
    """training=False gives the same outputs and states as training=True (it only skips the cache)."""
    for variant in VARIANTS:
        require_native(variant)
        kwargs, _, _ = make_arrays(make_cases(variant, 3, seed=7)[2])
        rnnkit.set_backend("native")
        forward = VARIANTS[variant][2]
        with_cache = forward(**kwargs, training=True)
        without = forward(**kwargs, training=False)
        assert without[-1] is None
        for a, b in zip(without[:-1], with_cache[:-1]):
            assert_rel_close(a, b, 0.0)


@pytest.mark.openmp  # one thread twice would agree trivially
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("B, H, lanes", [(64, 256, "off"), (200, 16, "on")], ids=["gemm-path", "batch-lane-path"])
def test_one_and_two_threads_agree(restore_backend, batch_lanes, variant, dtype, B, H, lanes):
    """A size big enough to run in parallel gives bit-identical results at 1 and 2 threads (every
    element is summed in the same order whatever the split), on both forward paths."""
    require_native(variant)
    batch_lanes(lanes)
    case = dict(variant=variant, seed=42, B=B, T=50, I=64, H=H, dtype=dtype, activation="tanh",
                recurrent_activation="sigmoid", bias=True, initial_states=True, masking="lengths",
                go_backwards=False, return_sequences=True, d_state=True)
    kwargs, d_outputs, d_states = make_arrays(case)
    threads = rnnkit.get_num_threads()
    try:
        rnnkit.set_num_threads(1)
        names, one = run("native", variant, kwargs, d_outputs, d_states)
        rnnkit.set_num_threads(2)
        _, two = run("native", variant, kwargs, d_outputs, d_states)
    finally:
        rnnkit.set_num_threads(threads)
    for name, a, b in zip(names, two, one):
        np.testing.assert_array_equal(a, b, err_msg=name)
