"""Small data sets for the demo and the tests (generated, or shipped with scikit-learn: no download).

- :func:`time_series`: windows of ``f(t) = t·sin(t)/3 + 2·sin(5t)`` for sequence-to-sequence
  forecasting (predict the next value at every step).
- :func:`load_digits_sequences`: scikit-learn's 8×8 handwritten digits read as 8 steps of 8 features.
"""

from __future__ import annotations

import numpy as np

#: the time range the series is drawn from, and the spacing of its samples
T_MIN, T_MAX, RESOLUTION = 0.0, 30.0, 0.1


def series_value(t):
    """The underlying signal ``f(t) = t·sin(t)/3 + 2·sin(5t)`` (element-wise on arrays)."""
    t = np.asarray(t, dtype=np.float64)
    return t * np.sin(t) / 3 + 2 * np.sin(5 * t)


def time_series(n_windows=50, n_steps=20, seed=None, dtype="float32", starts=None):
    """Random windows of the series for next-step forecasting.

    Each window starts at a random time ``t0`` in ``[T_MIN, T_MAX - n_steps·RESOLUTION)`` and holds
    ``n_steps + 1`` samples ``0.1`` apart; the inputs are the first ``n_steps`` samples and the
    targets the same window shifted by one step: ``y[:, t] = f(t0 + (t + 1)·0.1) = x[:, t + 1]``.

    n_windows: N, the number of windows; n_steps: T; seed: int or ``np.random.Generator`` for the
    starts; starts: explicit window starts (N,) instead of random ones.
    Returns ``x`` (N, T, 1) and ``y`` (N, T, 1).
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    span = n_steps * RESOLUTION
    if starts is None:
        if n_windows < 1:
            raise ValueError(f"n_windows must be >= 1, got {n_windows}")
        rng = np.random.default_rng(seed)
        starts = T_MIN + rng.random(n_windows) * (T_MAX - T_MIN - span)
    starts = np.asarray(starts, dtype=np.float64).reshape(-1)
    times = starts[:, None] + np.arange(n_steps + 1) * RESOLUTION      # (N, T + 1)
    values = series_value(times).astype(dtype)
    return values[:, :-1, None].copy(), values[:, 1:, None].copy()


def load_digits_sequences(test_fraction=0.2, seed=0, dtype="float32"):
    """scikit-learn's digits (1797 images of 8×8 pixels) as sequences for a recurrent classifier.

    Each image is read row by row: 8 time steps of 8 features, scaled from 0..16 to [0, 1].
    The samples are shuffled with ``seed`` and split, ``test_fraction`` of them for testing.
    Returns ``(x_train, y_train), (x_test, y_test)`` with x (N, 8, 8) and integer labels y (N,).
    Needs scikit-learn (``pip install "rnnkit[demo]"``); the data ships with it.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            'load_digits_sequences needs scikit-learn: pip install "rnnkit[demo]"') from exc
    digits = load_digits()
    x = (digits.images / 16.0).astype(dtype)                          # (N, 8, 8)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(len(x) * test_fraction)))
    test, train = order[:n_test], order[n_test:]
    return (x[train], y[train]), (x[test], y[test])
