"""The machine a run measured: CPU, ISA, FMA peak, BLAS, versions, and the CPU time others used meanwhile."""

from __future__ import annotations

import contextlib
import datetime
import importlib
import os
import platform
import sys
import time

import numpy as np

from .._backend import _available_cores
from .arguments import program_name

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_module():
    try:
        return importlib.import_module("rnnkit._native")
    except Exception:
        return None


def _blas_info() -> list[dict]:
    try:
        import threadpoolctl
    except ImportError:
        return []
    return [{k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"]


@contextlib.contextmanager
def blas_threads(n: int):
    """Limit NumPy's BLAS to ``n`` threads if threadpoolctl is installed (the reference uses ``@``)."""
    try:
        import threadpoolctl
    except ImportError:
        yield
        return
    with threadpoolctl.threadpool_limits(limits=n, user_api="blas"):
        yield


def environment(args, native, peak) -> dict:
    import rnnkit

    isa = None
    if native is not None and hasattr(native, "isa"):
        try:
            isa = str(native.isa())
        except Exception as exc:
            isa = f"error: {exc}"
    return {
        "cpu": _cpu_model(),
        "cores_available": _available_cores(),
        "isa": isa,
        "threads": args.threads,
        "dtype": args.dtype,
        "peak_gflops": peak,
        "other_cpu_load": None,  # filled at the end: share of CPU time used by other processes
        "native_available": native is not None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "blas": _blas_info(),
        "rnnkit": getattr(rnnkit, "__version__", None),
        "torch": None,
        "torch_threads": None,
        "onnxruntime": None,
        "onnxruntime_threads": None,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "timing": {"repeat": args.repeat, "min_time_s": args.min_time, "max_time_s": args.max_time,
                   "warmup": args.warmup, "statistic": "median"},
        "command": " ".join([program_name(), *args.argv]),
    }


class CpuContention:
    """Share of the machine's CPU time used by *other* processes between start() and stop().

    Linux only (``/proc/stat``); None elsewhere. Our own CPU time (every thread, and the PyTorch
    subprocess once waited for) is subtracted, so a spinning OpenMP pool of ours does not count.
    Other work on a 2-core machine easily doubles a median: the footer warns when this is > 10 %.
    """

    def __init__(self):
        self._start = None

    @staticmethod
    def _snapshot():
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = sum(fields[:3]) + sum(fields[5:8])  # user nice system, irq softirq steal
        own = os.times()
        own_seconds = own.user + own.system + own.children_user + own.children_system
        return busy / os.sysconf("SC_CLK_TCK"), own_seconds, time.monotonic()

    def start(self):
        self._start = self._snapshot()

    def stop(self):
        end = self._snapshot()
        if self._start is None or end is None:
            return None
        busy = end[0] - self._start[0]
        own = end[1] - self._start[1]
        wall = end[2] - self._start[2]
        if wall <= 0:
            return None
        return max(0.0, (busy - own) / (wall * (os.cpu_count() or 1)))


def measure_peak(native, dtype: str, threads: int, tries: int = 3):
    """The FMA peak in GFLOP/s: the best of ``tries`` calls of ``rnnkit._native.peak_gflops``
    (~0.1 s each; the best, because interference only ever lowers it). None if unavailable."""
    if native is None or not hasattr(native, "peak_gflops"):
        return None
    best = None
    for _ in range(tries):
        try:
            peak = float(native.peak_gflops(dtype, threads))
        except Exception as exc:
            print(f"rnnkit bench: peak_gflops failed ({type(exc).__name__}: {exc})", file=sys.stderr)
            return None
        if peak > 0 and (best is None or peak > best):
            best = peak
    return best


# --------------------------------------------------------------------------------------------------
# running
