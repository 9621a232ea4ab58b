"""Accuracy of the vectorised tanh / sigmoid / exp kernels (rnnkit._native.activation / .exp).

docs/SPEC.md §3 and §14.4: vectorised tanh/sigmoid/exp in float32 stay within 4 ulp of the
correctly rounded value. The reference is the function evaluated in float64 and rounded once to
float32; the distance is counted in representable float32 values (the bit patterns mapped to a
monotonic integer line, so -0.0 == +0.0 and distances across zero count every value in between).

Domains (the kernels' documented exp range for float32 is [-87, 88], where 2^n stays normal):
  * tanh: every finite float32 (it saturates to ±1, which is then correctly rounded);
  * sigmoid and exp: [-87, 88]. Outside it the result is only required to be sane (finite, in
    [0, 1] for sigmoid, non-negative for exp, and not on the wrong side of the range-end value).

Sweeps: a strided walk over the float32 bit patterns (every binade, subnormals included), a dense
linear grid, tiny magnitudes ±1e-30..1e-3 on a log grid, and the range ends with their neighbours.
float64: relative error ≤ 1e-14. Each ISA path (RNNKIT_ISA=generic|avx2|avx512) that the CPU
supports is checked in a subprocess running this file as a script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _native_required import import_native

_native = import_native()  # skipped without it (a failure under RNNKIT_REQUIRE_NATIVE=1)

MAX_ULP = 4
F64_RTOL = 1e-14
FUNCS = ("tanh", "sigmoid", "exp")
F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal
EXP_LO, EXP_HI = -87.0, 88.0  # the float32 exp range (isa_kernels.inc, VT<float>::x_min/x_max)
F64_EXP_LO, F64_EXP_HI = -708.0, 709.0


# ---------------------------------------------------------------------------------------------
# Helpers (also used by the per-ISA subprocess, see __main__ below).

def native(name, x):
    return _native.exp(x) if name == "exp" else _native.activation(name, x)


def reference(name, x):
    """The function in float64 (x converted exactly), not yet rounded."""
    xd = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        if name == "tanh":
            return np.tanh(xd)
        if name == "exp":
            return np.exp(xd)
        e = np.exp(-np.abs(xd))
        return np.where(xd >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _ordered(a):
    """float32 -> int64 on a monotonic line: +0 and -0 both map to 0, adjacent floats differ by 1."""
    i = np.ascontiguousarray(a, dtype=np.float32).view(np.int32).astype(np.int64)
    return np.where(i < 0, -(i & 0x7FFFFFFF), i)


def ulp_distance(a, b):
    return np.abs(_ordered(a) - _ordered(b))


def _bits_walk(lo_abs, hi_abs, stride):
    """Every `stride`-th float32 bit pattern with lo_abs <= |x| <= hi_abs (positive values)."""
    lo = int(np.float32(lo_abs).view(np.int32))
    hi = int(np.float32(hi_abs).view(np.int32))
    return np.arange(lo, hi + 1, stride, dtype=np.int32).view(np.float32)


def _neighbours(points):
    pts = np.asarray(points, dtype=np.float32)
    out = [pts]
    for direction in (np.float32(np.inf), np.float32(-np.inf)):
        p = pts
        for _ in range(3):
            with np.errstate(over="ignore"):  # FLT_MAX -> inf; sweep() drops non-finite values
                p = np.nextafter(p, direction)
            out.append(p)
    return np.concatenate(out)


def sweep(name, scale=1):
    """The float32 test inputs for `name`; `scale` > 1 thins the dense parts (subprocess runs)."""
    stride = 733 * scale  # odd, so the low mantissa bits vary along the walk
    if name == "tanh":
        pos = np.concatenate([
            _bits_walk(0.0, 20.0, stride),              # ~1.5M values: every binade up to 20
            _bits_walk(20.0, F32_MAX, 64 * stride),     # the saturated tail up to FLT_MAX
        ])
        walk = np.concatenate([pos, -pos])
        lin = np.linspace(-20, 20, 1_000_001 // scale, dtype=np.float32)
        ends = _neighbours([0.0, F32_TINY, 1e-30, 1e-3, 0.5, 1.0, 9.0, 10.0, 20.0, 1e30, F32_MAX])
        ends = np.concatenate([ends, -ends])
    else:
        walk = np.concatenate([_bits_walk(0.0, EXP_HI, stride), -_bits_walk(0.0, -EXP_LO, stride)])
        lin = np.linspace(EXP_LO, EXP_HI, 1_000_001 // scale, dtype=np.float32)
        ends = _neighbours([0.0, F32_TINY, 1e-30, 1e-3, 0.5, 1.0, 20.0, 80.0, 87.0, 88.0])
        ends = np.concatenate([ends, -ends])
    tiny = np.geomspace(1e-30, 1e-3, 50_000 // scale).astype(np.float32)
    x = np.concatenate([walk, lin, tiny, -tiny, ends]).astype(np.float32)
    if name != "tanh":
        x = x[(x >= EXP_LO) & (x <= EXP_HI)]
    return np.ascontiguousarray(x[np.isfinite(x)])


def f32_errors(name, x):
    """-> (ulp distance per element, native result, correctly rounded reference)."""
    y = native(name, x)
    ref = reference(name, x).astype(np.float32)
    assert y.dtype == np.float32 and y.shape == x.shape
    nan = np.isnan(y)
    assert not nan.any(), f"{name}: NaN for inputs {x[nan][:10].tolist()}"
    return ulp_distance(y, ref), y, ref


def worst(name, x, k=5):
    d, y, ref = f32_errors(name, x)
    idx = np.argsort(d)[::-1][:k]
    return int(d.max()), [
        {"x": float(x[i]), "x_hex": float(x[i]).hex(), "got": float(y[i]), "want": float(ref[i]),
         "ulp": int(d[i])}
        for i in idx
    ]


def isa_report(scale):
    out = {"isa": _native.isa()}
    for name in FUNCS:
        max_ulp, top = worst(name, sweep(name, scale))
        out[name] = {"max_ulp": max_ulp, "worst": top}
    return out


# ---------------------------------------------------------------------------------------------
# float32: ulp accuracy on the active ISA (dense sweeps).

@pytest.mark.parametrize("name", FUNCS)
def test_float32_within_4_ulp(name):
    x = sweep(name)
    assert x.size > 2_000_000
    max_ulp, top = worst(name, x)
    assert max_ulp <= MAX_ULP, (
        f"{name} on {_native.isa()}: max error {max_ulp} ulp > {MAX_ULP}; worst inputs: {top}"
    )


@pytest.mark.parametrize("name", FUNCS)
def test_float32_tiny_magnitudes(name):
    """Near 0: tanh(x) ~ x and exp/sigmoid ~ 1 (+x) must not lose relative accuracy."""
    mags = np.geomspace(1e-30, 1e-3, 20_001).astype(np.float32)
    sub = np.arange(1, 0x00800000, 4099, dtype=np.int32).view(np.float32)  # subnormals
    x = np.concatenate([mags, -mags, sub, -sub, np.float32([0.0, -0.0])])
    max_ulp, top = worst(name, x)
    assert max_ulp <= MAX_ULP, f"{name}: max error {max_ulp} ulp near 0; worst inputs: {top}"


def test_tanh_is_odd_and_saturates():
    x = sweep("tanh", scale=8)
    x = x[x > 0]
    y = native("tanh", x)
    np.testing.assert_array_equal(native("tanh", -x), -y)
    assert np.all(np.abs(y) <= 1)
    big = np.float32([10.0, 20.0, 100.0, 1e10, 1e30, F32_MAX])
    np.testing.assert_array_equal(native("tanh", big), np.ones(6, np.float32))
    np.testing.assert_array_equal(native("tanh", -big), -np.ones(6, np.float32))


@pytest.mark.parametrize("name", FUNCS)
def test_results_do_not_depend_on_position(name):
    """The vector body and the zero-padded tail give identical bits for the same input."""
    x = sweep(name, scale=64)[:4099]
    full = native(name, x)
    for start in (1, 3, 7, 15):
        np.testing.assert_array_equal(native(name, x[start:].copy()), full[start:])
    singles = np.concatenate([native(name, x[i:i + 1].copy()) for i in range(0, x.size, 97)])
    np.testing.assert_array_equal(singles, full[::97])


# ---------------------------------------------------------------------------------------------
# float32 outside the exp range: only sane, not ulp-accurate.

def _outside_exp_range():
    below = -np.concatenate([
        _bits_walk(-EXP_LO, F32_MAX, 5_003), np.float32([87.0001, 87.5, 88.0, 89.0, 100.0, 104.0, 1e4]),
    ])
    above = np.concatenate([
        _bits_walk(EXP_HI, F32_MAX, 5_003), np.float32([88.0001, 88.5, 88.8, 89.0, 100.0, 1e4]),
    ])
    below, above = below[below < EXP_LO], above[above > EXP_HI]
    return np.ascontiguousarray(below), np.ascontiguousarray(above)


def test_float32_sigmoid_outside_range_is_finite_in_unit_interval():
    below, above = _outside_exp_range()
    for x in (below, above):
        y = native("sigmoid", x)
        assert np.all(np.isfinite(y)), x[~np.isfinite(y)][:10]
        assert np.all((y >= 0) & (y <= 1)), x[(y < 0) | (y > 1)][:10]
    # on the correct side of the range-end values (no wrap-around of 2^n)
    lo_end = native("sigmoid", np.float32([EXP_LO]))[0]
    assert np.all(native("sigmoid", below) <= lo_end)
    np.testing.assert_array_equal(native("sigmoid", above), np.ones_like(above))


def test_float32_exp_outside_range_is_non_negative():
    below, above = _outside_exp_range()
    lo_end, hi_end = native("exp", np.float32([EXP_LO, EXP_HI]))
    y = native("exp", below)
    assert not np.isnan(y).any() and np.all(y >= 0)
    assert np.all(y <= lo_end), below[y > lo_end][:10]
    y = native("exp", above)
    assert not np.isnan(y).any() and np.all(y >= 0)
    assert np.all(y >= hi_end), above[y < hi_end][:10]


def test_float32_infinities():
    inf = np.float32([np.inf, -np.inf])
    np.testing.assert_array_equal(native("tanh", inf), np.float32([1.0, -1.0]))
    s = native("sigmoid", inf)
    assert s[0] == 1.0 and 0.0 <= s[1] <= F32_TINY * 2
    e = native("exp", inf)
    assert not np.isnan(e).any() and np.all(e >= 0) and e[0] >= e[1]


# ---------------------------------------------------------------------------------------------
# float64: relative accuracy.

def _f64_sweep(name):
    mags = np.geomspace(1e-300, 750.0, 200_001)
    x = np.concatenate([np.linspace(-750, 750, 1_000_001), mags, -mags,
                        [0.0, -0.0, 1e300, -1e300, np.finfo(np.float64).max]])
    if name != "tanh":
        x = x[(x >= F64_EXP_LO) & (x <= F64_EXP_HI)]
    return np.ascontiguousarray(x)


@pytest.mark.parametrize("name", FUNCS)
def test_float64_relative_error(name):
    x = _f64_sweep(name)
    y = native(name, x)
    ref = reference(name, x)
    assert y.dtype == np.float64 and not np.isnan(y).any()
    zero = ref == 0
    np.testing.assert_array_equal(y[zero], 0.0)
    rel = np.abs(y[~zero] - ref[~zero]) / np.abs(ref[~zero])
    k = int(np.argmax(rel))
    assert rel[k] <= F64_RTOL, (
        f"{name} float64 on {_native.isa()}: relative error {rel[k]:.3e} at x = {x[~zero][k]!r} "
        f"(got {y[~zero][k]!r}, want {ref[~zero][k]!r})"
    )


# ---------------------------------------------------------------------------------------------
# Every ISA path the CPU supports, each in its own process (the ISA is chosen once, at first use).

def _subprocess_env(isa):
    env = dict(os.environ)
    pkg_root = str(Path(_native.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([pkg_root] + [p for p in [env.get("PYTHONPATH")] if p])
    env["RNNKIT_ISA"] = isa
    return env


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
def test_each_isa_within_4_ulp(isa):
    if not _native.isa_supported(isa):
        pytest.skip(f"this CPU cannot run the {isa} kernels")
    proc = subprocess.run([sys.executable, __file__, "--isa-report", "4"], env=_subprocess_env(isa),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["isa"] == isa, f"RNNKIT_ISA={isa} ran {report['isa']}"
    bad = {n: report[n] for n in FUNCS if report[n]["max_ulp"] > MAX_ULP}
    assert not bad, f"{isa}: over {MAX_ULP} ulp: {json.dumps(bad, indent=1)}"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--isa-report":
        print(json.dumps(isa_report(int(sys.argv[2]))))
    else:
        sys.exit(f"usage: {sys.argv[0]} --isa-report SCALE  (or run with pytest)")
