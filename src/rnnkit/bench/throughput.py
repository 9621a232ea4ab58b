"""The default run of ``python -m rnnkit.bench``: one side-by-side throughput table (rnnkit native, the
NumPy reference, PyTorch, ONNX Runtime) over cells × sizes × modes."""

from __future__ import annotations

import importlib
import json
import statistics

import numpy as np

from .environment import CpuContention, blas_threads, native_module, environment, measure_peak
from .problems import (REFERENCE_SKIPPED_SIZES, SIZES, TRAIN_FLOP_FACTOR, flops, make_call, make_problem,
                       native_missing, using_backend)
from .report import describe_environment, progress, progress_done, format_table
from .timing import timing_kwargs, summarize, time_call
from . import workers

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
        progress(f"{column} {row['cell']} {row['size']} {row['mode']}")
        try:
            call = make_call(make_problem(row["cell"], row["size"], args.dtype), row["mode"])
            with using_backend(backend):
                summary = summarize(time_call(call, **timing_kwargs(args)))
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

    timing = timing_kwargs(args)
    ops_ms = summarize(time_call(ops_call, **timing))["median_ms"]
    layer_ms = summarize(time_call(layer_call, **timing))["median_ms"]
    return {"backend": rnnkit.get_backend(), "dtype": str(kernel.dtype), "layer_us": layer_ms * 1e3,
            "ops_us": ops_ms * 1e3, "overhead_us": (layer_ms - ops_ms) * 1e3}


# --------------------------------------------------------------------------------------------------
# output


def run(args) -> int:
    """The throughput table for parsed ``args``; 0 on success, 1 if a measurement failed."""
    import rnnkit

    contention = CpuContention()
    contention.start()
    previous_threads = rnnkit.get_num_threads()
    rnnkit.set_num_threads(args.threads)
    try:
        native = native_module()
        peak = measure_peak(native, args.dtype, args.threads)
        env = environment(args, native, peak)
        env["rnnkit_threads"] = rnnkit.get_num_threads()  # what rnnkit actually uses
        rows = [_new_row(cell, size, mode, args.dtype, args.threads)
                for cell in args.cells for size in args.sizes for mode in args.mode]
        plan = _plan(args, rows)
        footer = []
        torch_wanted = not args.no_torch and workers.torch_available()
        if not args.no_torch and not torch_wanted:
            footer.append("torch: not importable, column left '-'")
        ort_note = workers.ort_reason(args)
        ort_wanted = not args.no_ort and ort_note is None
        if ort_note:
            footer.append(ort_note)
        elif ort_wanted and "train" in args.mode:
            footer.append("onnxruntime: inference (fwd) rows only, train rows '-'")
        worker_errors = set()
        for round_index in range(args.rounds):
            with blas_threads(args.threads):
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
                progress(f"PyTorch in a subprocess ({len(rows)} rows)"
                          + (f", round {round_index + 1}/{args.rounds}" if args.rounds > 1 else ""))
                torch_info, torch_error = workers.run_torch(args, rows)
                if torch_info:
                    env["torch"], env["torch_threads"] = torch_info.get("version"), torch_info.get("threads")
                if torch_error:
                    worker_errors.add(f"torch: {torch_error}")
            # 3. ONNX Runtime after PyTorch, in its own process too (its intra-op pool spins)
            if ort_wanted:
                progress("ONNX Runtime in a subprocess")
                ort_info, ort_error = workers.run_ort(args, rows)
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

    progress_done()
    finish_rows(rows, peak)
    env["other_cpu_load"] = contention.stop()
    if env["other_cpu_load"] is not None and env["other_cpu_load"] > 0.10:
        footer.insert(0, f"WARNING: other processes used {100 * env['other_cpu_load']:.0f}% of the CPU time "
                         "during this run; timings are unreliable, multi-threaded ones especially (rerun on a quiet "
                         "machine; --threads 1 suffers least)")

    print(describe_environment(env))
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
