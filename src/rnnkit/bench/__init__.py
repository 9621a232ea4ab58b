"""The benchmark harness: ``python -m rnnkit.bench`` (or ``rnnkit bench``) prints one side-by-side table.

Every row is one cell × size × mode (``fwd`` = inference forward, ``train`` = forward + BPTT backward)
timed three ways, never overlapping:

1. rnnkit's native kernels and the NumPy reference, in this process, through ``rnnkit.ops``
   (the backend is switched with ``rnnkit.set_backend`` and restored afterwards);
2. PyTorch (``nn.RNN(tanh)`` / ``nn.LSTM`` / ``nn.GRU``) in a *separate* process
   (``python -m rnnkit.bench.torch_worker``), after step 1: PyTorch bundles its own OpenMP runtime, and
   two spinning thread pools on the same cores distort both timings;
3. ONNX Runtime (ONNX's RNN / LSTM / GRU operators on rnnkit's weights), ``fwd`` rows only, in
   another separate process (``python -m rnnkit.bench.ort_worker``) after PyTorch's, for the same reason.

``--latency`` prints the serving-size latency table instead (latency.py).
``--torch-modules`` times rnnkit.torch against torch.nn instead (torch_modules.py, own options).

The parts: problems.py (sizes, FLOPs, inputs, the timed calls), timing.py (how a call is timed),
arguments.py (the command line), environment.py (the machine, its peak, other load), workers.py
(the PyTorch / ONNX Runtime subprocesses) with torch_worker.py / ort_worker.py (what runs in them),
throughput.py (the default table), report.py (printing), latency.py, torch_modules.py.

Shape letters: B batch, T time steps, I input features, H units, G gates (SimpleRNN 1, GRU 3, LSTM 4).
FLOPs of one forward pass: ``2·B·T·G·H·(I + H)``; forward + backward is counted as 3× that.
Times are medians of individually timed calls (``time.perf_counter``) after a warm-up.
See benchmarks/README.md for the columns and docs/PERFORMANCE.md §3 for the targets.
"""

from __future__ import annotations

import importlib
import sys

from .arguments import build_parser, parse_args
from .problems import (CELLS, DTYPES, GATES, MODES, SIZES, TRAIN_FLOP_FACTOR, flops, forward_flops,
                       make_call, make_problem, using_backend)
from .timing import summarize, time_call

__all__ = ["main", "build_parser", "parse_args", "SIZES", "GATES", "CELLS", "MODES", "DTYPES",
           "TRAIN_FLOP_FACTOR", "flops", "forward_flops", "make_problem", "make_call", "using_backend",
           "time_call", "summarize"]


def main(argv=None) -> int:
    """Run the benchmark; 0 on success, 1 if a measurement failed, 2 (SystemExit) on bad arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--torch-modules" in argv:  # its own table and options
        argv.remove("--torch-modules")
        return importlib.import_module("rnnkit.bench.torch_modules").main(argv)
    args = parse_args(argv)
    args.argv = argv
    try:
        importlib.import_module("rnnkit.ops")
    except Exception as exc:
        print(f"rnnkit bench: cannot import rnnkit.ops ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    if args.latency:
        return importlib.import_module("rnnkit.bench.latency").main(args)
    return importlib.import_module("rnnkit.bench.throughput").run(args)
