"""Helpers shared by the test modules: central finite differences and the relative-norm
comparison of docs/SPEC.md §14 (‖actual − expected‖ / ‖expected‖, NaN/Inf never pass)."""

import numpy as np

from rnnkit import _weights as weight_locks


def _write(arr, idx, value):
    """arr[idx] = value; a layer's (read-only) weight through rnnkit's own write route, which gives
    it a new stamp so that the layer repacks it (rnnkit._weights)."""
    with weight_locks.unlocked([arr]):
        arr[idx] = value


def numeric_grad(loss, arr, eps=1e-6):
    """Central finite differences of the scalar ``loss()`` with respect to every entry of ``arr``
    (perturbed in place and restored), in float64."""
    grad = np.zeros(arr.shape, dtype=np.float64)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        _write(arr, idx, old + eps)
        plus = loss()
        _write(arr, idx, old - eps)
        minus = loss()
        _write(arr, idx, old)
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def assert_rel_close(actual, expected, rtol, name="array"):
    """Assert ‖actual − expected‖ / ‖expected‖ ≤ rtol, with matching shapes; NaN/Inf always fail.

    If ``expected`` is all zeros, ``actual`` must be all zeros too. Both None also passes.
    """
    if expected is None or actual is None:
        assert actual is None and expected is None, f"{name}: one result is None, the other is not"
        return
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert np.all(np.isfinite(actual)), f"{name}: actual has non-finite values"
    assert np.all(np.isfinite(expected)), f"{name}: expected has non-finite values"
    a, b = actual.astype(np.float64), expected.astype(np.float64)
    err, ref = np.linalg.norm(a - b), np.linalg.norm(b)
    if ref == 0:
        assert err == 0, f"{name}: expected all zeros, got norm {err:.3e}"
    else:
        assert err / ref <= rtol, f"{name}: relative error {err / ref:.3e} > {rtol:.0e}"
