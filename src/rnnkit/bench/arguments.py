"""The command line of ``python -m rnnkit.bench`` (``--torch-modules`` has its own: torch_modules.py)."""

from __future__ import annotations

import argparse
import os
import sys

from .._backend import _available_cores
from .problems import CELLS, DTYPES, MODES, REFERENCE_SKIPPED_SIZES, SIZES

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


def program_name() -> str:
    """``rnnkit bench`` when started through the ``rnnkit`` command (rnnkit.cli), else the -m form."""
    launcher = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if launcher == "rnnkit" or (launcher == "__main__.py" and os.path.basename(os.path.dirname(sys.argv[0])) == "rnnkit"):
        return "rnnkit bench"
    return "python -m rnnkit.bench"


def build_parser() -> argparse.ArgumentParser:
    sizes = "; ".join(f"{name} {','.join(map(str, shape))}" for name, shape in SIZES.items())
    parser = argparse.ArgumentParser(
        prog=program_name(),
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
                             "python -m rnnkit.bench.torch_modules --help)")
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
