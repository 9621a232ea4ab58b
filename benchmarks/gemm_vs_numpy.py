"""rnnkit's packed GEMM (rnnkit._native.gemm) against NumPy's ``@`` (OpenBLAS) on square products and
on the products inside the recurrences at the benchmark sizes, float32 and float64.

    python benchmarks/gemm_vs_numpy.py [--threads N] [--repeat R]

Prints one row per product: best-of-R times, GFLOP/s, the ratio, and % of the measured FMA peak.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

# (label, M, N, K, transpose A): square products, then the RNN-shaped products of the large and
# medium sizes: layer GEMM (B·T x I) @ (I x G·H), iteration GEMM (B x H) @ (H x G·H), and the
# weight gradients X^T dG (I x B·T) @ (B·T x G·H).
SHAPES = [
    ("square 1024", 1024, 1024, 1024, False),
    ("square 2048", 2048, 2048, 2048, False),
    ("large: x @ kernel", 12800, 1024, 512, False),
    ("large: h @ recurrent", 128, 1024, 1024, False),
    ("large: x^T @ dG", 512, 1024, 12800, True),
    ("large lstm: x @ kernel", 12800, 4096, 512, False),
    ("medium: x @ kernel", 6400, 256, 128, False),
    ("medium: h^T @ dG", 256, 256, 6400, True),
    ("mnist: x @ kernel", 4200, 150, 28, False),
]


def best_time(fn, repeat):
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    try:
        import threadpoolctl
        threadpoolctl.threadpool_limits(args.threads, user_api="blas")
    except ImportError:
        pass
    from rnnkit import _native
    _native.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"threads {args.threads}, isa {_native.isa()}")
    print(f"{'product':24s} {'dtype':7s} {'M':>6s} {'N':>6s} {'K':>6s}  {'rnnkit GF/s':>11s}  "
          f"{'numpy GF/s':>10s}  {'ratio':>6s}  {'% peak':>6s}")
    for dtype in ("float32", "float64"):
        peak = max(_native.peak_gflops(dtype, args.threads) for _ in range(3))
        for label, m, n, k, trans_a in SHAPES:
            a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            a_op = a.T if trans_a else a
            ours = best_time(lambda: _native.gemm(a, b, trans_a, False), args.repeat)
            # NumPy first waits out OpenBLAS's spinning threads so neither timing sees the other
            theirs = best_time(lambda: a_op @ b, args.repeat)
            time.sleep(0.3)
            flops = 2.0 * m * n * k
            print(f"{label:24s} {dtype:7s} {m:6d} {n:6d} {k:6d}  {flops / ours * 1e-9:11.0f}  "
                  f"{flops / theirs * 1e-9:10.0f}  {theirs / ours:5.2f}x  {100 * flops / ours * 1e-9 / peak:5.0f}%")
        print(f"  {dtype} FMA peak measured: {peak:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
