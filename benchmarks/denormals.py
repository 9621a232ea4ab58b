"""Native forward time with subnormal-range inputs vs normal-range ones (issue 14, "numerics under
stress"): docs/SPEC.md §3 (subnormals in the native kernels).

    python benchmarks/denormals.py [--rounds 7] [--threads 1 2] [--cells lstm gru simple_rnn] [--dtype float64]
    RNNKIT_ISA=avx2 python benchmarks/denormals.py     # another instruction-set path

For each cell (default LSTM and GRU, float32, B=64, T=100, I=H=256, inference) it times
rnnkit.ops.<cell>_forward on two inputs of the same shape: "normal" (x ~ N(0, 1)) and "subnormal"
(x ~ 1e-40 · N(0, 1), float64 1e-310 · N(0, 1), no bias, so the pre-activations, the gates' tanh
arguments and the states sit in the subnormal range, below 1.18e-38 / 2.2e-308). The weights are the same Glorot-scaled ones in both. Runs alternate normal / subnormal, and
the table prints the minimum and the median of the rounds and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnnkit
from rnnkit import ops


def problem(cell, batch, steps, features, units, dtype, seed=0):
    gates = {"lstm": 4, "gru": 3, "simple_rnn": 1}[cell]
    rng = np.random.default_rng(seed)
    kernel = (rng.standard_normal((features, gates * units)) / np.sqrt(features)).astype(dtype)
    recurrent = (rng.standard_normal((units, gates * units)) / np.sqrt(units)).astype(dtype)
    x = rng.standard_normal((batch, steps, features)).astype(dtype)
    return x, kernel, recurrent


def forward(cell, x, kernel, recurrent):
    fn = getattr(ops, f"{cell}_forward")
    return fn(x, kernel, recurrent, None, training=False)


def time_once(cell, x, kernel, recurrent):
    t0 = time.perf_counter()
    forward(cell, x, kernel, recurrent)
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--shape", type=int, nargs=4, default=[64, 100, 256, 256], metavar=("B", "T", "I", "H"))
    args = parser.parse_args(argv)
    rnnkit.set_backend("native")
    import rnnkit._native as native

    batch, steps, features, units = args.shape
    dtype = np.dtype(args.dtype).type
    scale = dtype(1e-40 if dtype is np.float32 else 1e-310)
    print(f"isa {native.isa()}, {args.dtype}, B={batch} T={steps} I={features} H={units}, "
          f"{args.rounds} alternating rounds; times in ms")
    print(f"{'cell':5} {'threads':>7} {'normal min':>10} {'median':>8} {'subnormal min':>13} {'median':>8} "
          f"{'ratio':>6}  subnormal states")
    for cell in args.cells:
        x, kernel, recurrent = problem(cell, batch, steps, features, units, dtype)
        tiny = (x * scale).astype(dtype)
        # how much of the subnormal run's state really is subnormal (and not flushed to zero)
        h_tiny = forward(cell, tiny, kernel, recurrent)[0]
        finfo = np.finfo(dtype)
        share = float(np.mean((h_tiny != 0) & (np.abs(h_tiny) < finfo.tiny)))
        for threads in args.threads:
            rnnkit.set_num_threads(threads)
            for _ in range(2):  # warm-up: pages, packs, thread pool
                forward(cell, x, kernel, recurrent), forward(cell, tiny, kernel, recurrent)
            normal, sub = [], []
            for _ in range(args.rounds):
                normal.append(time_once(cell, x, kernel, recurrent))
                sub.append(time_once(cell, tiny, kernel, recurrent))
            mn, ms = np.median(normal) * 1e3, np.median(sub) * 1e3
            print(f"{cell:5} {threads:7d} {min(normal) * 1e3:10.2f} {mn:8.2f} {min(sub) * 1e3:13.2f} {ms:8.2f} "
                  f"{ms / mn:6.2f}  {share:.0%}")


if __name__ == "__main__":
    main()
