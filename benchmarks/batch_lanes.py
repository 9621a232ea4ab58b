"""The batch-lane forward path against the GEMM path (both forced) on few-unit shapes: where
``use_batch_lanes`` (cpp/src/batch_lane.cc) switches between them. float32, inference forward,
best of 7 timings of an ops-level call.

    python benchmarks/batch_lanes.py
"""
import time

import numpy as np

from rnnkit import _native, ops

SHAPES = [(1, 3, 2, 4), (32, 10, 8, 4), (1, 50, 32, 4), (2, 50, 32, 8), (4, 50, 32, 8), (8, 50, 32, 8),
          (16, 50, 32, 8), (32, 50, 32, 8), (32, 50, 32, 16), (128, 50, 32, 16), (32, 50, 32, 32)]


def best_us(fn, n):
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main():
    rng = np.random.default_rng(0)
    print(f"{'cell':10s} {'B':>4s} {'T':>4s} {'I':>4s} {'H':>4s}  {'lanes us':>9s}  {'gemm us':>9s}  "
          f"{'gemm/lanes':>10s}")
    previous = _native.set_batch_lanes("auto")
    try:
        for cell, gates in (("simple_rnn", 1), ("lstm", 4), ("gru", 3)):
            forward = getattr(ops, cell + "_forward")
            for b, t, i, h in SHAPES:
                x = rng.standard_normal((b, t, i)).astype(np.float32)
                k = (0.3 * rng.standard_normal((i, gates * h))).astype(np.float32)
                r = (0.3 * rng.standard_normal((h, gates * h))).astype(np.float32)

                def call():
                    forward(x, k, r, training=False)

                n = max(20, int(2e5 / (b * t * h * gates + 1000)))
                times = {}
                for mode in ("on", "off", "on", "off"):  # interleaved: the host is noisy
                    _native.set_batch_lanes(mode)
                    times[mode] = min(times.get(mode, float("inf")), best_us(call, n))
                print(f"{cell:10s} {b:4d} {t:4d} {i:4d} {h:4d}  {times['on']:9.2f}  {times['off']:9.2f}  "
                      f"{times['off'] / times['on']:9.2f}x")
    finally:
        _native.set_batch_lanes(previous)


if __name__ == "__main__":
    main()
