"""The benchmark harness: ``python -m rnnkit.bench`` (or ``rnnkit bench``) prints one side-by-side table.

Every row is one cell × size × mode (``fwd`` = inference forward, ``train`` = forward + BPTT backward)
timed three ways, never overlapping:

1. rnnkit's native kernels and the NumPy reference, in this process, through ``rnnkit.ops``
   (the backend is switched with ``rnnkit.set_backend`` and restored afterwards);
2. PyTorch (``nn.RNN(tanh)`` / ``nn.LSTM`` / ``nn.GRU``) in a *separate* process
   (``python -m rnnkit._bench_torch``), after step 1: PyTorch bundles its own OpenMP runtime, and two
   spinning thread pools on the same cores distort both timings;
3. ONNX Runtime (ONNX's RNN / LSTM / GRU operators on rnnkit's weights), ``fwd`` rows only, in
   another separate process (``python -m rnnkit._bench_ort``) after PyTorch's, for the same reason.

``--latency`` prints the serving-size latency table instead (``rnnkit._bench_latency``).
``--torch-modules`` times rnnkit.torch against torch.nn instead (``rnnkit._bench_torch_modules``, own options).

Shape letters: B batch, T time steps, I input features, H units, G gates (SimpleRNN 1, GRU 3, LSTM 4).
FLOPs of one forward pass: ``2·B·T·G·H·(I + H)``; forward + backward is counted as 3× that.
Times are medians of individually timed calls (``time.perf_counter``) after a warm-up.
See benchmarks/README.md for the columns and docs/PERFORMANCE.md §3 for the targets.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from ._backend import _available_cores

# name: (B, T, I, H) -- the sizes of docs/PERFORMANCE.md §2, smallest first
SIZES = {
    "seed-tiny": (1, 3, 2, 4),
    "seed-small": (32, 10, 8, 4),
    "seed-numpy": (32, 100, 32, 64),
    "mnist-rows": (150, 28, 28, 150),
    "medium": (64, 100, 128, 256),
    "large": (128, 100, 512, 1024),
}
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
CELLS = tuple(GATES)
MODES = ("fwd", "train")
DTYPES = ("float32", "float64")
# sizes at which the NumPy reference is skipped unless --reference-all (it takes seconds per call there)
REFERENCE_SKIPPED_SIZES = ("large",)
TRAIN_FLOP_FACTOR = 3  # forward + backward ≈ 3 × forward (backward ≈ 2 GEMMs per forward GEMM)


# --------------------------------------------------------------------------------------------------
# the problems and what is timed


def forward_flops(cell: str, size: str) -> int:
    """FLOPs of one forward pass: 2·B·T·G·H·(I + H)."""
    batch, steps, features, units = SIZES[size]
    return 2 * batch * steps * GATES[cell] * units * (features + units)


def flops(cell: str, size: str, mode: str) -> int:
    """FLOPs counted for one timed call of ``mode`` (``train`` = 3 × forward)."""
    return forward_flops(cell, size) * (TRAIN_FLOP_FACTOR if mode == "train" else 1)


def make_problem(cell: str, size, dtype: str = "float32", seed: int = 0, d_outputs: bool = True) -> dict:
    """Random inputs and weights in the canonical layouts (docs/SPEC.md §2) for one cell and size.

    ``size`` is a name of SIZES or a shape (B, T, I, H). Returns a dict with x (B,T,I), kernel (I,G·H),
    recurrent_kernel (H,G·H), bias ((2,3H) for GRU, else (G·H,)) and d_outputs (B,T,H) (None with
    ``d_outputs=False``), all C-contiguous arrays of ``dtype``. Weights are scaled by 1/sqrt(fan-in)
    so that activations stay in their non-saturated range, as in a trained network. The same
    (cell, shape, dtype, seed) gives the same arrays in every process (the ONNX Runtime worker and
    the latency table rely on it).
    """
    batch, steps, features, units = SIZES[size] if isinstance(size, str) else size
    gates = GATES[cell]
    rng = np.random.default_rng(seed)

    def normal(shape, scale=1.0):
        values = rng.standard_normal(shape, dtype=np.dtype(dtype))
        values *= scale
        return values

    bias_shape = (2, gates * units) if cell == "gru" else (gates * units,)
    return {
        "cell": cell,
        "size": size,
        "x": normal((batch, steps, features)),
        "kernel": normal((features, gates * units), 1.0 / np.sqrt(features)),
        "recurrent_kernel": normal((units, gates * units), 1.0 / np.sqrt(units)),
        "bias": normal(bias_shape, 0.1),
        "d_outputs": normal((batch, steps, units)) if d_outputs else None,
    }


def make_call(problem: dict, mode: str):
    """Return a no-argument function running one ``mode`` call of ``rnnkit.ops`` on ``problem``.

    ``fwd``: ``<cell>_forward(..., training=False, return_sequences=True)``.
    ``train``: ``<cell>_forward(..., training=True, return_sequences=True)`` then ``<cell>_backward``
    with the problem's random d_outputs (and no gradient for the final states).
    The backend is the one active when the function is *called*.
    """
    ops = importlib.import_module("rnnkit.ops")
    cell = problem["cell"]
    forward = getattr(ops, f"{cell}_forward")
    backward = getattr(ops, f"{cell}_backward")
    x, kernel, recurrent_kernel, bias = (problem[k] for k in ("x", "kernel", "recurrent_kernel", "bias"))
    d_outputs = problem["d_outputs"]
    if mode == "fwd":
        def run():
            return forward(x, kernel, recurrent_kernel, bias=bias, training=False, return_sequences=True)
    elif cell == "lstm":  # outputs, h_last, c_last, cache
        def run():
            result = forward(x, kernel, recurrent_kernel, bias=bias, training=True, return_sequences=True)
            return backward(d_outputs, None, None, result[-1])
    else:  # outputs, h_last, cache
        def run():
            result = forward(x, kernel, recurrent_kernel, bias=bias, training=True, return_sequences=True)
            return backward(d_outputs, None, result[-1])
    return run


def native_missing(cell: str, mode: str) -> str | None:
    """Why rnnkit's native backend cannot run ``cell`` in ``mode`` (None if it can)."""
    try:
        native = importlib.import_module("rnnkit._native")
    except Exception as exc:  # ImportError, or OSError from the dynamic loader
        return f"rnnkit._native does not import ({type(exc).__name__}: {exc})"
    needed = [f"{cell}_forward"] + ([f"{cell}_backward"] if mode == "train" else [])
    missing = [name for name in needed if not hasattr(native, name)]
    if missing:
        return f"rnnkit._native has no {', '.join(missing)}"
    return None


@contextlib.contextmanager
def using_backend(name: str):
    """Run the body with ``rnnkit.set_backend(name)``, restoring the previous backend afterwards."""
    import rnnkit

    previous = rnnkit.get_backend()
    rnnkit.set_backend(name)
    try:
        yield
    finally:
        rnnkit.set_backend(previous)


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


def _comma_list(text: str, known, what: str, parser: argparse.ArgumentParser) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(known)
    if not names:
        parser.error(f"--{what}s needs at least one name; choose from: {', '.join(known)}")
    for name in names:
        if name not in known:
            parser.error(f"unknown {what} {name!r}; choose from: {', '.join(known)} (comma-separated, or 'all')")
    return list(dict.fromkeys(names))  # drop duplicates, keep order


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number of seconds, got {text}")
    return value


def _program_name() -> str:
    """``rnnkit bench`` when started through the ``rnnkit`` command (rnnkit.cli), else the -m form."""
    launcher = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if launcher == "rnnkit" or (launcher == "__main__.py" and os.path.basename(os.path.dirname(sys.argv[0])) == "rnnkit"):
        return "rnnkit bench"
    return "python -m rnnkit.bench"


def build_parser() -> argparse.ArgumentParser:
    sizes = "; ".join(f"{name} {','.join(map(str, shape))}" for name, shape in SIZES.items())
    parser = argparse.ArgumentParser(
        prog=_program_name(),
        description="Time rnnkit's native kernels against the NumPy reference and PyTorch "
                    "(PyTorch in a separate process) and print one table.",
        epilog=f"Sizes (B,T,I,H): {sizes}. FLOPs of a forward pass: 2*B*T*G*H*(I+H) "
               "(G = 1 simple_rnn, 3 gru, 4 lstm); train = forward+backward = 3x forward.",
    )
    parser.add_argument("--cells", default=None,
                        help=f"comma list of {', '.join(CELLS)} or 'all' (default: simple_rnn; "
                             "with --latency: all)")
    parser.add_argument("--sizes", default="all", help="comma list of size names or 'all' (default: all)")
    parser.add_argument("--mode", "--modes", dest="mode", default="fwd,train",
                        help="comma list of fwd (inference forward), train (forward+backward); default both")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="default: float32")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="threads for rnnkit (rnnkit.set_num_threads), NumPy's BLAS and PyTorch "
                             "(torch.set_num_threads); default: all cores available")
    parser.add_argument("--repeat", type=_positive_int, default=10,
                        help="minimum number of timed calls per measurement (default: 10)")
    parser.add_argument("--min-time", type=_non_negative_float, default=0.2,
                        help="keep timing until this many seconds were measured (default: 0.2)")
    parser.add_argument("--max-time", type=_non_negative_float, default=10.0,
                        help="stop a measurement after this many seconds once 3 calls were timed (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before timing (default: 2)")
    parser.add_argument("--rounds", type=_positive_int, default=1,
                        help="time rnnkit and PyTorch in this many alternating rounds (rnnkit rows, then "
                             "the PyTorch subprocess, again and again) and report the median of the "
                             "rounds' medians: on a noisy host both sides then sample the same spells "
                             "(default: 1; the reference is timed in the first round only)")
    parser.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    parser.add_argument("--no-ort", action="store_true", help="do not time ONNX Runtime")
    parser.add_argument("--no-reference", action="store_true", help="do not time the NumPy reference")
    parser.add_argument("--reference-all", action="store_true",
                        help=f"also time the reference at {', '.join(REFERENCE_SKIPPED_SIZES)} (slow)")
    parser.add_argument("--no-layer", action="store_true", help="skip the layer call overhead footer")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the rows and the environment as JSON to FILE")
    latency = parser.add_argument_group(
        "latency table (--latency)",
        "serving sizes: whole-sequence inference and streaming (one step per call) of rnnkit vs "
        "PyTorch vs ONNX Runtime, against the physical floor and the targets; replaces the main table")
    latency.add_argument("--latency", action="store_true", help="print the latency table instead")
    parser.add_argument("--torch-modules", action="store_true",
                        help="time rnnkit.torch vs torch.nn modules instead (other options: "
                             "python -m rnnkit._bench_torch_modules --help)")
    latency.add_argument("--latency-units", default="256,512,1024",
                         help="comma list of H (= I) (default: 256,512,1024)")
    latency.add_argument("--latency-batches", default="1,4", help="comma list of B (default: 1,4)")
    latency.add_argument("--latency-steps", type=_positive_int, default=100,
                         help="T of the whole-sequence call (default: 100)")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.cells = _comma_list(args.cells or ("all" if args.latency else "simple_rnn"), CELLS, "cell", parser)
    args.sizes = _comma_list(args.sizes, tuple(SIZES), "size", parser)
    args.mode = _comma_list(args.mode, MODES, "mode", parser)
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.no_reference and args.reference_all:
        parser.error("--no-reference and --reference-all contradict each other")
    if args.threads is None:
        args.threads = _available_cores()
    if args.latency:
        args.latency_units = _int_list(args.latency_units, "--latency-units", parser)
        args.latency_batches = _int_list(args.latency_batches, "--latency-batches", parser)
        if args.rounds > 1:
            parser.error("--rounds is not supported with --latency")
    return args


def _int_list(text: str, option: str, parser: argparse.ArgumentParser) -> list[int]:
    try:
        values = [_positive_int(v.strip()) for v in text.split(",") if v.strip()]
    except argparse.ArgumentTypeError as exc:
        parser.error(f"{option}: {exc}")
    if not values:
        parser.error(f"{option} needs at least one positive integer")
    return list(dict.fromkeys(values))


# --------------------------------------------------------------------------------------------------
# environment


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _native_module():
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
def _blas_threads(n: int):
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
        "command": " ".join([_program_name(), *args.argv]),
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


def _new_row(cell, size, mode, dtype, threads) -> dict:
    batch, steps, features, units = SIZES[size]
    return {"cell": cell, "size": size, "B": batch, "T": steps, "I": features, "H": units, "mode": mode,
            "dtype": dtype, "threads": threads, "flops": flops(cell, size, mode),
            "rnnkit_ms": None, "reference_ms": None, "torch_ms": None, "ort_ms": None,
            "speedup_vs_reference": None, "speedup_vs_torch": None, "speedup_vs_ort": None,
            "gflops": None, "pct_peak": None, "reference_gflops": None, "torch_gflops": None,
            "ort_gflops": None,
            "rnnkit": None, "reference": None, "torch": None, "ort": None,  # the full summaries
            "notes": []}


def _timing_kwargs(args) -> dict:
    return {"repeat": args.repeat, "min_time": args.min_time, "max_time": args.max_time,
            "warmup": args.warmup}


def _progress(message: str) -> None:
    """One status line on stderr while a long run goes on (only on a terminal)."""
    if sys.stderr is not None and sys.stderr.isatty():
        sys.stderr.write(f"\r\033[Ktiming {message} ...")
        sys.stderr.flush()


def _progress_done() -> None:
    if sys.stderr is not None and sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def _plan(args, rows: list[dict]) -> dict[str, list[dict]]:
    """Which rows each in-process backend times; notes why a row is left out."""
    plan = {"native": [], "python": []}
    for row in rows:
        reason = native_missing(row["cell"], row["mode"])
        if reason is None:
            plan["native"].append(row)
        else:
            row["notes"].append(f"rnnkit skipped: {reason}")
        if args.no_reference:
            continue
        if row["size"] in REFERENCE_SKIPPED_SIZES and not args.reference_all:
            row["notes"].append("reference skipped at this size (--reference-all to time it)")
        else:
            plan["python"].append(row)
    return plan


def time_backend(args, rows: list[dict], backend: str) -> list[str]:
    """Time ``rows`` on one backend (``native`` fills the rnnkit column, ``python`` the reference
    column), in place; return error messages. One backend at a time, so that the thread pool of the
    other (OpenBLAS for the reference) has gone idle instead of spinning next to the timed calls."""
    column = "rnnkit" if backend == "native" else "reference"
    errors = []
    for row in rows:
        _progress(f"{column} {row['cell']} {row['size']} {row['mode']}")
        try:
            call = make_call(make_problem(row["cell"], row["size"], args.dtype), row["mode"])
            with using_backend(backend):
                summary = summarize(time_call(call, **_timing_kwargs(args)))
        except Exception as exc:
            message = f"{column} failed: {type(exc).__name__}: {exc}"
            if message not in row["notes"]:  # once, however many rounds fail the same way
                row["notes"].append(message)
            errors.append(f"{row['cell']} {row['size']} {row['mode']}: {message}")
            continue
        row[column] = summary
        row[f"{column}_ms"] = summary["median_ms"]
        row.setdefault(f"{column}_rounds", []).append(summary)
        row.setdefault(f"{column}_rounds_ms", []).append(summary["median_ms"])
    return errors


def _importable(*names: str) -> bool:
    """True if every module can be found, without importing it here (torch or onnxruntime would
    load a second OpenMP runtime / thread pool into the process that times rnnkit)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in names)
    except (ImportError, ValueError):
        return False


def torch_available() -> bool:
    """True if torch can be found (without importing it here: it would load a second OpenMP runtime)."""
    return _importable("torch")


def ort_available() -> bool:
    """True if onnx and onnxruntime can be found (not imported here: ONNX Runtime's pool would spin)."""
    return _importable("onnx", "onnxruntime")


def run_worker(module: str, label: str, request: dict, threads: int) -> tuple[dict | None, str | None]:
    """Run ``python -m rnnkit.<module> JSON`` (a timing worker: _bench_torch, _bench_ort) and return
    (its JSON answer, None) or (None, why it failed). ``label`` names it in messages."""
    import rnnkit

    env = dict(os.environ)
    # make `-m rnnkit.<module>` find this very rnnkit, however this process found it
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(rnnkit.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    env["RNNKIT_BACKEND"] = "python"  # the child never needs rnnkit's native module (nor its OpenMP)
    try:
        done = subprocess.run([sys.executable, "-m", f"rnnkit.{module}", json.dumps(request)],
                              capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        return None, f"could not start the {label} subprocess: {exc}"
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        return None, f"{label} subprocess exited with {done.returncode}: {tail}"
    try:
        return json.loads(done.stdout.strip().splitlines()[-1]), None
    except (ValueError, IndexError):
        return None, f"{label} subprocess printed no JSON: {done.stdout[-200:]!r}"


def _fill_column(rows: list[dict], answers: list[dict], column: str) -> None:
    """Put a worker's per-job answers into ``<column>_ms`` etc. of ``rows`` (errors become notes)."""
    for row, answer in zip(rows, answers):
        if "error" in answer:
            if f"{column} failed: {answer['error']}" not in row["notes"]:
                row["notes"].append(f"{column} failed: {answer['error']}")
            continue
        row[column] = {k: v for k, v in answer.items() if k.endswith("_ms") or k == "samples"}
        row[f"{column}_ms"] = answer["median_ms"]
        row.setdefault(f"{column}_rounds", []).append(row[column])
        row.setdefault(f"{column}_rounds_ms", []).append(answer["median_ms"])


def _jobs(rows: list[dict]) -> list[dict]:
    return [{"cell": r["cell"], "size": r["size"], "mode": r["mode"],
             "shape": [r["B"], r["T"], r["I"], r["H"]]} for r in rows]


def run_torch(args, rows: list[dict]) -> tuple[dict, str | None]:
    """Time PyTorch for every row in a subprocess; fill ``torch_ms``.

    Returns ({"version", "threads"} of the subprocess's torch, None) or ({}, error message)."""
    request = {"dtype": args.dtype, "threads": args.threads, "timing": _timing_kwargs(args), "jobs": _jobs(rows)}
    result, error = run_worker("_bench_torch", "PyTorch", request, args.threads)
    if error:
        return {}, error
    _fill_column(rows, result["results"], "torch")
    return {"version": result.get("torch_version"), "threads": result.get("threads")}, None


def run_ort(args, rows: list[dict]) -> tuple[dict, str | None]:
    """Time ONNX Runtime for the ``fwd`` rows in a subprocess; fill ``ort_ms``.

    Returns ({"version", "threads"}, None) or ({}, error message)."""
    rows = [r for r in rows if r["mode"] == "fwd"]
    if not rows:
        return {}, None
    request = {"dtype": args.dtype, "threads": args.threads, "timing": _timing_kwargs(args), "jobs": _jobs(rows)}
    result, error = run_worker("_bench_ort", "ONNX Runtime", request, args.threads)
    if error:
        return {}, error
    _fill_column(rows, result["results"], "ort")
    return {"version": result.get("onnxruntime_version"), "threads": result.get("threads")}, None


def ort_reason(args) -> str | None:
    """Why the ONNX Runtime column stays empty for the whole run (None if it is timed)."""
    if args.no_ort:
        return None
    if not ort_available():
        return "onnx/onnxruntime: not importable, column left '-'"
    if args.dtype != "float32":
        return "onnxruntime: its CPU RNN/LSTM/GRU kernels are float32 only, column left '-'"
    return None


def finish_rows(rows: list[dict], peak) -> None:
    """Derived columns: speedups, GFLOP/s, % of peak."""
    for row in rows:
        for column in ("rnnkit", "reference", "torch", "ort"):
            ms = row[f"{column}_ms"]
            if ms:
                gflops = row["flops"] / (ms * 1e-3) / 1e9
                row["gflops" if column == "rnnkit" else f"{column}_gflops"] = gflops
        if row["rnnkit_ms"]:
            for column in ("reference", "torch", "ort"):
                if row[f"{column}_ms"]:
                    row[f"speedup_vs_{column}"] = row[f"{column}_ms"] / row["rnnkit_ms"]
            if peak:
                row["pct_peak"] = 100.0 * row["gflops"] / peak


def layer_overhead(args) -> dict | None:
    """Median time of ``rnnkit.SimpleRNN`` called on seed-tiny vs the ``ops`` call it wraps."""
    import rnnkit

    if not hasattr(rnnkit, "SimpleRNN"):
        return None
    batch, steps, features, units = SIZES["seed-tiny"]
    x = np.random.default_rng(0).standard_normal((batch, steps, features)).astype(args.dtype)
    layer = rnnkit.SimpleRNN(units, dtype=args.dtype)
    layer(x)  # builds the weights
    kernel, recurrent_kernel, bias = (np.ascontiguousarray(w) for w in layer.get_weights())
    x = x.astype(kernel.dtype)  # time both calls without a dtype conversion
    return_sequences = bool(getattr(layer, "return_sequences", False))
    ops = importlib.import_module("rnnkit.ops")

    def ops_call():
        return ops.simple_rnn_forward(x, kernel, recurrent_kernel, bias=bias, training=False,
                                      return_sequences=return_sequences)

    def layer_call():
        return layer(x, training=False)

    timing = _timing_kwargs(args)
    ops_ms = summarize(time_call(ops_call, **timing))["median_ms"]
    layer_ms = summarize(time_call(layer_call, **timing))["median_ms"]
    return {"backend": rnnkit.get_backend(), "dtype": str(kernel.dtype), "layer_us": layer_ms * 1e3,
            "ops_us": ops_ms * 1e3, "overhead_us": (layer_ms - ops_ms) * 1e3}


# --------------------------------------------------------------------------------------------------
# output


def _fmt_ms(value) -> str:
    if value is None:
        return "-"
    if value < 0.1:
        return f"{value:.4f}"
    if value < 10:
        return f"{value:.3f}"
    if value < 1000:
        return f"{value:.1f}"
    return f"{value:.0f}"


def _fmt_ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _fmt_number(value) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value:.3f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


HEADER = ("cell", "size", "B", "T", "I", "H", "mode", "rnnkit ms", "reference ms", "torch ms", "ort ms",
          "vs ref", "vs torch", "vs ort", "GFLOP/s", "% peak")


def _rnnkit_cell(row) -> str:
    if row["rnnkit_ms"] is not None:
        return _fmt_ms(row["rnnkit_ms"])
    return "skip" if any(n.startswith("rnnkit skipped") for n in row["notes"]) else "err"


def format_table(rows: list[dict]) -> str:
    lines = [HEADER]
    for r in rows:
        lines.append((r["cell"], r["size"], str(r["B"]), str(r["T"]), str(r["I"]), str(r["H"]), r["mode"],
                      _rnnkit_cell(r), _fmt_ms(r["reference_ms"]), _fmt_ms(r["torch_ms"]), _fmt_ms(r["ort_ms"]),
                      _fmt_ratio(r["speedup_vs_reference"]), _fmt_ratio(r["speedup_vs_torch"]),
                      _fmt_ratio(r["speedup_vs_ort"]),
                      _fmt_number(r["gflops"]), _fmt_number(r["pct_peak"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    left = {0, 1, 6}  # text columns; numbers are right-aligned

    def render(line):
        return "  ".join(v.ljust(w) if i in left else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(lines[0]), rule] + [render(line) for line in lines[1:]])


def _describe_environment(env: dict) -> str:
    peak = f"{env['peak_gflops']:.0f} GFLOP/s" if env["peak_gflops"] else "-"
    blas = ", ".join(f"{b['internal_api']} {b['version']}" for b in env["blas"]) or "?"
    return (f"rnnkit bench  cpu: {env['cpu']}  isa: {env['isa'] or '-'}  threads: {env['threads']}  "
            f"dtype: {env['dtype']}  FMA peak: {peak}\n"
            f"python {env['python']}  numpy {env['numpy']} ({blas})  torch {env['torch'] or '-'}  "
            f"onnxruntime {env.get('onnxruntime') or '-'}")


def main(argv=None) -> int:
    """Run the benchmark; 0 on success, 1 if a measurement failed, 2 (SystemExit) on bad arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--torch-modules" in argv:  # its own table and options
        argv.remove("--torch-modules")
        return importlib.import_module("rnnkit._bench_torch_modules").main(argv)
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        import rnnkit
        importlib.import_module("rnnkit.ops")
    except Exception as exc:
        print(f"rnnkit bench: cannot import rnnkit.ops ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    if args.latency:
        return importlib.import_module("rnnkit._bench_latency").main(args)

    contention = CpuContention()
    contention.start()
    previous_threads = rnnkit.get_num_threads()
    rnnkit.set_num_threads(args.threads)
    try:
        native = _native_module()
        peak = measure_peak(native, args.dtype, args.threads)
        env = environment(args, native, peak)
        env["rnnkit_threads"] = rnnkit.get_num_threads()  # what rnnkit actually uses
        rows = [_new_row(cell, size, mode, args.dtype, args.threads)
                for cell in args.cells for size in args.sizes for mode in args.mode]
        plan = _plan(args, rows)
        footer = []
        torch_wanted = not args.no_torch and torch_available()
        if not args.no_torch and not torch_wanted:
            footer.append("torch: not importable, column left '-'")
        ort_note = ort_reason(args)
        ort_wanted = not args.no_ort and ort_note is None
        if ort_note:
            footer.append(ort_note)
        elif ort_wanted and "train" in args.mode:
            footer.append("onnxruntime: inference (fwd) rows only, train rows '-'")
        worker_errors = set()
        for round_index in range(args.rounds):
            with _blas_threads(args.threads):
                # 1. rnnkit native (then, in the first round only, the layer overhead on the default
                #    backend and the reference)
                errors_now = time_backend(args, plan["native"], "native")
                if round_index == 0:
                    errors = errors_now
                    overhead = None
                    if not args.no_layer:
                        try:
                            overhead = layer_overhead(args)
                        except Exception as exc:
                            errors.append(f"layer call overhead failed: {type(exc).__name__}: {exc}")
                    errors += time_backend(args, plan["python"], "python")
                else:
                    errors += [e for e in errors_now if e not in errors]
            # 2. PyTorch only after every in-process timing of the round is done: the two never overlap
            if torch_wanted:
                _progress(f"PyTorch in a subprocess ({len(rows)} rows)"
                          + (f", round {round_index + 1}/{args.rounds}" if args.rounds > 1 else ""))
                torch_info, torch_error = run_torch(args, rows)
                if torch_info:
                    env["torch"], env["torch_threads"] = torch_info.get("version"), torch_info.get("threads")
                if torch_error:
                    worker_errors.add(f"torch: {torch_error}")
            # 3. ONNX Runtime after PyTorch, in its own process too (its intra-op pool spins)
            if ort_wanted:
                _progress("ONNX Runtime in a subprocess")
                ort_info, ort_error = run_ort(args, rows)
                if ort_info:
                    env["onnxruntime"], env["onnxruntime_threads"] = ort_info["version"], ort_info["threads"]
                if ort_error:
                    worker_errors.add(f"onnxruntime: {ort_error}")
        footer.extend(sorted(worker_errors))
        env.setdefault("torch", None)
        env.setdefault("torch_threads", None)
        env["rounds"] = args.rounds
        if args.rounds > 1:
            for row in rows:
                for column in ("rnnkit", "torch", "ort"):
                    values = row.get(f"{column}_rounds_ms")
                    if values:
                        # the column and its summary describe all rounds (each round's own spread
                        # stays in <column>_rounds)
                        row[f"{column}_ms"] = statistics.median(values)
                        rounds = row[f"{column}_rounds"]
                        row[column] = {"median_ms": row[f"{column}_ms"],
                                       "min_ms": min(r["min_ms"] for r in rounds),
                                       "samples": sum(r["samples"] for r in rounds)}
            footer.append(f"rnnkit, PyTorch and ONNX Runtime timed in {args.rounds} alternating rounds; their "
                          "columns are the medians of the rounds' medians")
        # measure the peak again at the end: a busy moment at the start would make it look low
        peak = max((p for p in (peak, measure_peak(native, args.dtype, args.threads, tries=2)) if p),
                   default=None)
        env["peak_gflops"] = peak
    finally:
        rnnkit.set_num_threads(previous_threads)

    _progress_done()
    finish_rows(rows, peak)
    env["other_cpu_load"] = contention.stop()
    if env["other_cpu_load"] is not None and env["other_cpu_load"] > 0.10:
        footer.insert(0, f"WARNING: other processes used {100 * env['other_cpu_load']:.0f}% of the CPU time "
                         "during this run; timings are unreliable, multi-threaded ones especially (rerun on a quiet "
                         "machine; --threads 1 suffers least)")

    print(_describe_environment(env))
    print(format_table(rows))
    if overhead is not None:
        print(f"layer call overhead at seed-tiny: {overhead['overhead_us']:.1f} µs "
              f"(ops call: {overhead['ops_us']:.1f} µs; layer call: {overhead['layer_us']:.1f} µs; "
              f"{overhead['backend']} backend, {overhead['dtype']})")
    notes = {}
    for row in rows:
        for note in row["notes"]:
            notes.setdefault(note, []).append(f"{row['cell']}/{row['size']}/{row['mode']}")
    for note, where in notes.items():
        where_text = ", ".join(where) if len(where) <= 3 else f"{len(where)} rows"
        footer.append(f"{note} [{where_text}]")
    footer.extend(e for e in errors if e.startswith("layer"))
    if peak is None:
        footer.append("% peak: '-' (rnnkit._native.peak_gflops unavailable)")
    footer.append("speedups are ratios of medians (>1: rnnkit faster); train = forward+backward, "
                  f"counted as {TRAIN_FLOP_FACTOR}x the forward FLOPs")
    for line in footer:
        print(f"  {line}")

    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"environment": env, "rows": rows, "layer_overhead": overhead, "errors": errors,
                       "footer": footer}, f, indent=2)
            f.write("\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
