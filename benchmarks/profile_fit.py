"""Where one ``Sequential.fit`` epoch spends its time at the mnist-rows size (B=150, T=28, I=28,
H=150): SimpleRNN(150) + Dense(10, softmax), sparse categorical cross-entropy, Adam.

    python benchmarks/profile_fit.py [--samples 4500] [--epochs 2]

Profiles the last epoch with cProfile and reports the share of wall time spent inside the native
module's functions (rnnkit._native.*): the rest is Python glue, NumPy element-wise work (loss,
optimizer, softmax) and data shuffling.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4500)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    import rnnkit
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.samples, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=args.samples)
    model = rnnkit.Sequential([rnnkit.SimpleRNN(150, seed=0), rnnkit.Dense(10, activation="softmax", seed=1)])
    model.compile(optimizer=rnnkit.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=args.epochs - 1, batch_size=150, verbose=0, seed=0)  # warm-up
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    model.fit(x, y, epochs=1, batch_size=150, verbose=0, seed=1)
    profiler.disable()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(profiler)
    native = 0.0
    rows = []
    for (filename, _line, name), (_cc, _nc, tottime, _cum, _callers) in stats.stats.items():
        if "rnnkit._native" in name or (filename == "~" and name.startswith("<built-in method rnnkit._native")):
            native += tottime
            rows.append((tottime, name))
    print(f"one epoch: {args.samples // 150} steps of batch 150, wall {wall * 1e3:.1f} ms (under cProfile)")
    for tottime, name in sorted(rows, reverse=True):
        print(f"  {tottime * 1e3:8.1f} ms  {name}")
    print(f"inside native kernels: {native * 1e3:.1f} ms = {100 * native / wall:.1f}% of the epoch")


if __name__ == "__main__":
    main()
