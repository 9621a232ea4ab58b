"""Property-based tests: the native kernels equal the NumPy reference (docs/SPEC.md §14.1) on random
problems — shapes from empty to a few tiles, both dtypes, every activation, masks and lengths,
go_backwards, initial states or none, both GRU variants, with and without bias, return_sequences —
forward and backward (every gradient), through ``rnnkit.ops``.

The ``ci`` Hypothesis profile (the default here) runs 2,000 examples per cell; ``RNNKIT_HYPOTHESIS=slow``
(with ``-m slow`` for the marked test) runs 20,000. A failure prints the falsifying example and a
``@reproduce_failure`` blob to paste above the test.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from _native_required import require_native  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit import ops  # noqa: E402

settings.register_profile("ci", max_examples=2000, deadline=None, print_blob=True, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("slow", max_examples=20000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE = "slow" if os.environ.get("RNNKIT_HYPOTHESIS") == "slow" else "ci"

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
RTOL = {np.float32: 1e-5, np.float64: 1e-10}
ACTIVATIONS = ["tanh", "relu", "sigmoid", "linear"]
RECURRENT_ACTIVATIONS = ["sigmoid", "hard_sigmoid", "tanh"]


@st.composite
def problems(draw, cell):
    """The parameters of one random problem for ``cell`` (small: the falsifying example prints them;
    :func:`_build` makes the arrays from them and their seed)."""
    p = dict(cell=cell,
             dtype=draw(st.sampled_from(["float32", "float64"])),
             B=draw(st.integers(0, 6)), T=draw(st.integers(0, 7)), I=draw(st.integers(1, 9)),
             # mostly small, sometimes past a vector / micro-tile / panel (16, 32) to reach edge paths
             H=draw(st.one_of(st.integers(1, 9), st.sampled_from([15, 16, 17, 31, 33, 40]))),
             seed=draw(st.integers(0, 2**32 - 1)), scale=draw(st.sampled_from([0.3, 1.0, 2.0])),
             activation=draw(st.sampled_from(ACTIVATIONS)), go_backwards=draw(st.booleans()),
             return_sequences=draw(st.booleans()), bias=draw(st.booleans()),
             initial_states=draw(st.booleans()),
             masking=draw(st.sampled_from(["none", "mask", "lengths"])),
             d_last=[draw(st.booleans()) for _ in range(2 if cell == "lstm" else 1)])
    if cell != "simple_rnn":
        p["recurrent_activation"] = draw(st.sampled_from(RECURRENT_ACTIVATIONS))
        if p["activation"] == "relu" or p["recurrent_activation"] == "tanh":
            p["scale"] = min(p["scale"], 1.0)  # keep unbounded cells from overflowing over a few steps
    if cell == "gru":
        p["reset_after"] = draw(st.booleans())
    return p


def _build(p):
    """(dtype, forward args, forward kwargs, d_outputs, d_last) of the problem ``p``."""
    B, T, I, H, G = p["B"], p["T"], p["I"], p["H"], GATES[p["cell"]]
    dtype = np.dtype(p["dtype"]).type
    rng = np.random.default_rng(p["seed"])
    kw = dict(activation=p["activation"], go_backwards=p["go_backwards"],
              return_sequences=p["return_sequences"])
    for name in ("recurrent_activation", "reset_after"):
        if name in p:
            kw[name] = p[name]
    kernel = (rng.standard_normal((I, G * H)) * p["scale"] / np.sqrt(I)).astype(dtype)
    recurrent = (rng.standard_normal((H, G * H)) * p["scale"] / np.sqrt(H)).astype(dtype)
    bias = None
    if p["bias"]:
        shape = (2, G * H) if p.get("reset_after") else (G * H,)
        bias = (rng.standard_normal(shape) * 0.5).astype(dtype)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    n_states = len(p["d_last"])
    states = [rng.standard_normal((B, H)).astype(dtype) if p["initial_states"] else None
              for _ in range(n_states)]
    if p["masking"] == "mask":
        kw["mask"] = rng.random((B, T)) < 0.7
    elif p["masking"] == "lengths":
        kw["lengths"] = rng.integers(0, T + 1, size=B)
    d_outputs = rng.standard_normal((B, T, H)).astype(dtype) if p["return_sequences"] else None
    d_last = [rng.standard_normal((B, H)).astype(dtype) if want else None for want in p["d_last"]]
    return dtype, (x, kernel, recurrent, bias, *states), kw, d_outputs, d_last


def _run(backend, cell, args, kw, d_outputs, d_last):
    rnnkit.set_backend(backend)
    forward, backward = getattr(ops, cell + "_forward"), getattr(ops, cell + "_backward")
    out = forward(*args, training=True, **kw)
    grads = backward(d_outputs, *d_last, out[-1])
    return [a for a in out[:-1]] + [g for g in grads]


def _as64(value):
    return value.astype(np.float64) if isinstance(value, np.ndarray) and value.dtype == np.float32 else value


def _check(cell, problem):
    """Native == reference within docs/SPEC.md §14.1. float64: 1e-10 relative norm (+ 1e-13 √n for
    arrays that are small by cancellation). float32: the
    same arrays can be ill-conditioned (a gradient summing terms of opposite sign, at H = 1, loses
    digits in any float32 implementation), so the bound is taken against the float64 reference,
    widened by the float32 reference's own error there and by an absolute floor of float32 rounding
    on O(1) terms (n = the array's size):
    ‖native − ref64‖ ≤ 1e-5 ‖ref64‖ + 10 ‖ref32 − ref64‖ + 1e-6 √n."""
    require_native("native vs reference property tests")
    dtype, args, kw, d_outputs, d_last = _build(problem)
    previous = rnnkit.get_backend()
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            want = _run("python", cell, args, kw, d_outputs, d_last)
            want64 = want if dtype == np.float64 else _run(
                "python", cell, [_as64(a) for a in args], kw, _as64(d_outputs), [_as64(d) for d in d_last])
        got = _run("native", cell, args, kw, d_outputs, d_last)
    finally:
        rnnkit.set_backend(previous)
    for i, (g, w, w64) in enumerate(zip(got, want, want64)):
        if w is None:
            assert g is None, f"result {i}: native returned an array where the reference returned None"
            continue
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(w64))):  # out of range for the reference
            hypothesis.assume(False)
        assert g.shape == w.shape and g.dtype == w.dtype, f"result {i}: {g.shape} {g.dtype} vs {w.shape} {w.dtype}"
        if dtype == np.float64:  # 1e-10 relative, with an absolute floor of 1e-13 √n for cancellations
            err, ref = np.linalg.norm(g - w), np.linalg.norm(w)
            assert np.all(np.isfinite(g)) and err <= RTOL[dtype] * ref + 1e-13 * np.sqrt(w.size), (
                f"result {i}: ‖native − ref‖ = {err:.3e}, ‖ref‖ = {ref:.3e}")
            continue
        assert np.all(np.isfinite(g)), f"result {i}: native has non-finite values"
        err = np.linalg.norm(g.astype(np.float64) - w64)
        own = np.linalg.norm(w.astype(np.float64) - w64)
        bound = RTOL[dtype] * np.linalg.norm(w64) + 10 * own + 1e-6 * np.sqrt(w.size)
        assert err <= bound, (f"result {i}: ‖native − ref64‖ = {err:.3e} > {bound:.3e} "
                              f"(1e-5 ‖ref64‖ + 10 ‖ref32 − ref64‖ + 1e-6 √n; ‖ref32 − ref64‖ = {own:.3e})")


@settings(settings.get_profile(PROFILE))
@given(problem=problems("simple_rnn"))
def test_simple_rnn_native_equals_reference(problem):
    _check("simple_rnn", problem)


@settings(settings.get_profile(PROFILE))
@given(problem=problems("lstm"))
def test_lstm_native_equals_reference(problem):
    _check("lstm", problem)


@settings(settings.get_profile(PROFILE))
@given(problem=problems("gru"))
def test_gru_native_equals_reference(problem):
    _check("gru", problem)


@pytest.mark.slow
@pytest.mark.skipif(PROFILE != "slow", reason="RNNKIT_HYPOTHESIS=slow runs this (20,000 examples)")
@settings(settings.get_profile("slow"))
@given(cell=st.sampled_from(sorted(GATES)), data=st.data())
def test_every_cell_native_equals_reference_slow(cell, data):
    _check(cell, data.draw(problems(cell)))
