"""pytest-benchmark suite: the matrix of ``python -m rnnkit.bench`` (cells × sizes × fwd/train ×
native/reference), one benchmark per combination, grouped so native and reference sit side by side.

Run: ``python -m pytest benchmarks/ --benchmark-only`` (not part of the default test run). Ids read
``<cell>-<size>-<mode>-<backend>``, e.g. ``-k "lstm and medium"``; ``-m "not slow"`` leaves out the
``large`` size. The reference is not benchmarked at ``large`` (seconds per call). PyTorch is not
benchmarked here: it must run in its own process (see rnnkit.bench and benchmarks/README.md).
Each benchmark records its FLOPs and GFLOP/s (of the median) in ``extra_info``.
"""

from __future__ import annotations

import pytest

from rnnkit import bench


def _cases():
    for cell in bench.CELLS:
        for size in bench.SIZES:
            for mode in bench.MODES:
                for backend in ("native", "python"):
                    if backend == "python" and size in bench.REFERENCE_SKIPPED_SIZES:
                        continue
                    label = "native" if backend == "native" else "reference"
                    marks = [pytest.mark.slow] if size == "large" else []
                    yield pytest.param(cell, size, mode, backend, id=f"{cell}-{size}-{mode}-{label}", marks=marks)


@pytest.mark.parametrize("cell, size, mode, backend", list(_cases()))
def test_bench(benchmark, cell, size, mode, backend, bench_dtype, bench_threads):
    if backend == "native":
        reason = bench.native_missing(cell, mode)
        if reason is not None:
            pytest.skip(reason)
    call = bench.make_call(bench.make_problem(cell, size, bench_dtype), mode)
    benchmark.group = f"{cell}-{size}-{mode}-{bench_dtype}"
    with bench.using_backend(backend):
        call()  # warm-up: thread pool, caches, lazily built workspaces
        benchmark(call)
    flops = bench.flops(cell, size, mode)
    benchmark.extra_info.update({"cell": cell, "size": size, "mode": mode, "backend": backend,
                                 "dtype": bench_dtype, "threads": bench_threads, "flops": flops})
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        median = stats.stats.median
        benchmark.extra_info["gflops"] = flops / median / 1e9 if median > 0 else None
