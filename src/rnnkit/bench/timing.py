"""How a call is timed (shared with the PyTorch and ONNX Runtime workers so both sides are measured alike)."""

from __future__ import annotations

import statistics
import time

def time_call(fn, *, repeat: int = 10, min_time: float = 0.2, max_time: float = 10.0,
              warmup: int = 2, warmup_time: float = 0.05) -> list[float]:
    """Time ``fn()`` call by call; return the durations in seconds.

    Warm-up: at least ``warmup`` calls and ``warmup_time`` seconds (wakes thread pools, fills caches);
    none at all if ``warmup`` is 0.
    Then sample until there are ``repeat`` samples *and* ``min_time`` seconds were measured, or stop
    early once ``max_time`` seconds were spent and at least min(3, repeat) samples exist.
    Shared with the PyTorch subprocess so both sides are measured the same way.
    """
    perf_counter = time.perf_counter
    start = perf_counter()
    calls = 0
    while warmup > 0 and (calls < warmup or perf_counter() - start < warmup_time):
        fn()
        calls += 1
    samples: list[float] = []
    start = perf_counter()
    while True:
        t0 = perf_counter()
        fn()
        t1 = perf_counter()
        samples.append(t1 - t0)
        spent = t1 - start
        if len(samples) >= repeat and spent >= min_time:
            return samples
        if spent >= max_time and len(samples) >= min(3, repeat):
            return samples


def summarize(samples: list[float]) -> dict:
    """Median and spread of a list of durations in seconds, as milliseconds."""
    ms = sorted(s * 1e3 for s in samples)
    quartiles = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0]] * 3
    return {"median_ms": statistics.median(ms), "min_ms": ms[0], "q1_ms": quartiles[0],
            "q3_ms": quartiles[2], "samples": len(ms)}


# --------------------------------------------------------------------------------------------------
# arguments


def timing_kwargs(args) -> dict:
    """The time_call keyword arguments chosen on the command line."""
    return {"repeat": args.repeat, "min_time": args.min_time, "max_time": args.max_time,
            "warmup": args.warmup}
