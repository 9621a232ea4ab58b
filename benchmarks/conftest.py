"""Fixtures of the pytest-benchmark suite (``python -m pytest benchmarks/ --benchmark-only``).

Environment variables:

- ``RNNKIT_BENCH_THREADS``: threads for rnnkit's native kernels (``rnnkit.set_num_threads``) and for
  NumPy's BLAS (through threadpoolctl, when installed), set once for the session. Default: unchanged
  (rnnkit's default is every available core).
- ``RNNKIT_BENCH_DTYPE``: ``float32`` (default) or ``float64``.
"""

from __future__ import annotations

import contextlib
import os

import pytest

import rnnkit
from rnnkit.bench import DTYPES


def _threads_from_environment() -> int | None:
    value = os.environ.get("RNNKIT_BENCH_THREADS", "").strip()
    if not value:
        return None
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise pytest.UsageError(f"RNNKIT_BENCH_THREADS must be a positive integer, got {value!r}")
    return threads


@pytest.fixture(scope="session", autouse=True)
def bench_threads():
    """The thread count of the session (RNNKIT_BENCH_THREADS, else rnnkit's default), restored afterwards."""
    threads = _threads_from_environment()
    if threads is None:
        yield rnnkit.get_num_threads()
        return
    previous = rnnkit.get_num_threads()
    rnnkit.set_num_threads(threads)
    with contextlib.ExitStack() as stack:
        try:
            import threadpoolctl
        except ImportError:
            pass
        else:
            stack.enter_context(threadpoolctl.threadpool_limits(limits=threads, user_api="blas"))
        try:
            yield threads
        finally:
            rnnkit.set_num_threads(previous)


@pytest.fixture(scope="session")
def bench_dtype() -> str:
    dtype = os.environ.get("RNNKIT_BENCH_DTYPE", "float32").strip() or "float32"
    if dtype not in DTYPES:
        raise pytest.UsageError(f"RNNKIT_BENCH_DTYPE must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype
