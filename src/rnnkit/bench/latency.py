"""The latency table of ``python -m rnnkit.bench --latency``: serving sizes, rnnkit vs PyTorch vs ONNX
Runtime, against a physical floor and the targets of issue 10.

Rows: B ∈ --latency-batches (1, 4), T = --latency-steps (100), I = H ∈ --latency-units (256, 512,
1024), each cell of --cells (all), float32 (--dtype), --threads threads. Weights and x come from
``rnnkit.make_problem(cell, (B, T, H, H))`` in every process (PyTorch uses its own random
weights of the same shapes: timing only).

Two measurements per row and implementation:

- **whole sequence** (µs per call): rnnkit ``layer(x)`` (return_sequences=True) / the PyTorch module
  on x (B, T, I) under ``inference_mode`` / ONNX Runtime on the whole-sequence model;
- **streaming** (µs per step): one time step per call with the state carried from the previous call:
  rnnkit ``layer.step(x_t, states)`` / the PyTorch module on x_t (B, 1, I) with its ``hx`` /
  ``session.run`` on a T = 1 ONNX model with ``initial_h`` (``initial_c``) inputs.

The physical floor, timed with NumPy in this process: the lowest median of >= 200 warm calls, of
two measurements with --threads BLAS threads and two with one (interference from other processes only
ever raises it, and on a shared 2-core machine a 2-thread OpenBLAS call that waits for a descheduled
thread takes milliseconds, every call): whole sequence
1.25 · T · (``h @ recurrent_kernel``, h (B, H)); streaming 1.25 · (``[x_t, h] @ [[kernel],
[recurrent_kernel]]``: one product over all the cell's weights) + 5 µs. Targets: whole sequence
allowed = max(torch / 2, floor), and never slower than ONNX Runtime (allowed = min(that, ort));
streaming allowed = max(torch / 5, floor). A target is "-" when PyTorch was not timed.

Order, as in the main table: rnnkit (in process), then the NumPy floors, then PyTorch and ONNX
Runtime each in its own subprocess (``rnnkit.bench.torch_worker`` / ``rnnkit.bench.ort_worker``, mode ``fwd`` for
the whole sequence and ``step`` for streaming), so no foreign thread pool spins next to rnnkit.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from . import main as bench_main
from .environment import CpuContention, blas_threads, environment, native_module
from .problems import GATES, make_problem
from .report import describe_environment, fmt_ratio, progress, progress_done
from .timing import summarize, time_call, timing_kwargs
from . import workers

FLOOR_FACTOR = 1.25        # the floor is 1.25 × the bare weight-streaming products
STEP_FLOOR_OVERHEAD_US = 5.0  # + 5 µs of per-call overhead allowed on a streaming step
SEQ_TORCH_FACTOR = 2.0     # whole sequence: rnnkit should take at most torch / 2 ...
STEP_TORCH_FACTOR = 5.0    # streaming: ... and at most torch / 5 per step
FLOOR_REPEAT = 200         # the NumPy floor products are µs-short: many samples ...
FLOOR_TRIES = 2            # ... in 2 measurements with --threads BLAS threads and 2 with 1 thread;
                           # the lowest median counts
KINDS = ("seq", "step")    # seq = whole sequence (worker mode fwd); step = streaming (worker mode step)
WORKER_MODE = {"seq": "fwd", "step": "step"}
COLUMNS = ("rnnkit", "torch", "ort")


def latency_rows(cells, units, batches, steps, dtype, threads) -> list[dict]:
    rows = []
    for batch in batches:
        for cell in cells:
            for h in units:
                row = {"cell": cell, "B": batch, "T": steps, "I": h, "H": h, "dtype": dtype,
                       "threads": threads, "notes": []}
                for kind in KINDS:
                    row[kind] = {f"{c}_us": None for c in COLUMNS}
                    row[kind].update(floor_us=None, allowed_us=None, met=None, speedup_vs_torch=None,
                                     speedup_vs_ort=None)
                rows.append(row)
    return rows


def _shape(row):
    return (row["B"], row["T"], row["I"], row["H"])


def make_layer(cell: str, problem: dict, **options):
    """An rnnkit layer of ``cell`` with the problem's weights (SimpleRNN tanh, GRU reset_after=True)."""
    import rnnkit

    layer_class = {"simple_rnn": rnnkit.SimpleRNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}[cell]
    extra = {"activation": "tanh"} if cell == "simple_rnn" else {"reset_after": True} if cell == "gru" else {}
    kernel = problem["kernel"]
    layer = layer_class(kernel.shape[1] // GATES[cell], dtype=str(kernel.dtype), **extra, **options)
    layer.build(kernel.shape[0])
    layer.set_weights([kernel, problem["recurrent_kernel"], problem["bias"]])
    return layer


def rnnkit_calls(cell: str, problem: dict):
    """(whole-sequence call, streaming-step call, how the step is taken) for rnnkit's layer."""
    layer = make_layer(cell, problem, return_sequences=True)
    x = problem["x"]
    steps = x.shape[1]
    x_steps = [np.ascontiguousarray(x[:, t]) for t in range(steps)]  # (B, I) each
    carried = {"t": 0, "states": None}  # None = zeros on the first step

    def sequence():
        return layer(x)

    if hasattr(layer, "step"):
        def step():
            t = carried["t"]
            y, carried["states"] = layer.step(x_steps[t], carried["states"])
            carried["t"] = t + 1 if t + 1 < steps else 0
            return y
        return sequence, step, "layer.step(x_t, states)"

    # FALLBACK until `layer.step` lands (remove it then): one step as a T = 1 call of a layer with
    # return_state=True, the states passed as initial_state.
    stepper = make_layer(cell, problem, return_sequences=False, return_state=True)
    x_steps_3d = [x_t[:, None, :] for x_t in x_steps]  # (B, 1, I) views

    def step():
        t = carried["t"]
        y, *carried["states"] = stepper(x_steps_3d[t], initial_state=carried["states"])
        carried["t"] = t + 1 if t + 1 < steps else 0
        return y
    return sequence, step, "fallback: layer(x_t[:, None, :], initial_state=states) (no layer.step yet)"


def floor_products(problem: dict):
    """(no-argument functions of) the NumPy products the floors are made of: ``h @ recurrent_kernel``
    and ``[x_t, h] @ [[kernel], [recurrent_kernel]]`` (one product over all the cell's weights)."""
    kernel, recurrent_kernel = problem["kernel"], problem["recurrent_kernel"]
    batch, units = problem["x"].shape[0], recurrent_kernel.shape[0]
    rng = np.random.default_rng(1)
    h = rng.standard_normal((batch, units)).astype(kernel.dtype)
    xh = rng.standard_normal((batch, kernel.shape[0] + units)).astype(kernel.dtype)
    weights = np.ascontiguousarray(np.concatenate([kernel, recurrent_kernel], axis=0))
    return (lambda: h @ recurrent_kernel), (lambda: xh @ weights)


def _median_us(fn, timing) -> float:
    return summarize(time_call(fn, **timing))["median_ms"] * 1e3


def time_rnnkit(args, rows) -> tuple[list[str], set[str]]:
    """rnnkit's two columns, in place; returns (errors, how the streaming step was taken)."""
    errors, step_ways = [], set()
    timing = timing_kwargs(args)
    for row in rows:
        progress(f"rnnkit {row['cell']} B={row['B']} H={row['H']}")
        try:
            problem = make_problem(row["cell"], _shape(row), args.dtype, d_outputs=False)
            sequence, step, way = rnnkit_calls(row["cell"], problem)
            step_ways.add(way)
            row["seq"]["rnnkit_us"] = _median_us(sequence, timing)
            row["step"]["rnnkit_us"] = _median_us(step, timing)
        except Exception as exc:
            message = f"rnnkit failed: {type(exc).__name__}: {exc}"
            row["notes"].append(message)
            errors.append(f"{row['cell']} B={row['B']} H={row['H']}: {message}")
    return errors, step_ways


def _lowest_median_us(fn, timing, threads: int) -> float:
    medians = []
    for n_blas in sorted({threads, 1}, reverse=True):
        with blas_threads(n_blas):
            medians += [_median_us(fn, timing) for _ in range(FLOOR_TRIES)]
    return min(medians)


def time_floors(args, rows) -> None:
    timing = dict(timing_kwargs(args), repeat=max(args.repeat, FLOOR_REPEAT))
    for row in rows:
        progress(f"NumPy floor {row['cell']} B={row['B']} H={row['H']}")
        problem = make_problem(row["cell"], (row["B"], 1, row["I"], row["H"]), args.dtype, d_outputs=False)
        recurrent, whole_cell = floor_products(problem)
        row["gemv_recurrent_us"] = _lowest_median_us(recurrent, timing, args.threads)
        row["gemv_cell_us"] = _lowest_median_us(whole_cell, timing, args.threads)
        row["seq"]["floor_us"] = FLOOR_FACTOR * row["T"] * row["gemv_recurrent_us"]
        row["step"]["floor_us"] = FLOOR_FACTOR * row["gemv_cell_us"] + STEP_FLOOR_OVERHEAD_US


def run_worker_column(args, rows, module: str, label: str, column: str) -> tuple[dict | None, str | None]:
    """Both kinds of every row in one subprocess of ``module``; fills ``row[kind][column + '_us']``."""
    jobs = [{"cell": row["cell"], "size": "latency", "mode": WORKER_MODE[kind], "shape": list(_shape(row))}
            for row in rows for kind in KINDS]
    request = {"dtype": args.dtype, "threads": args.threads, "timing": timing_kwargs(args), "jobs": jobs}
    result, error = workers.run_worker(module, label, request, args.threads)
    if error:
        return None, error
    answers = iter(result["results"])
    for row in rows:
        for kind in KINDS:
            answer = next(answers)
            if "error" in answer:
                note = f"{column} {kind} failed: {answer['error']}"
                if note not in row["notes"]:
                    row["notes"].append(note)
            else:
                row[kind][f"{column}_us"] = answer["median_ms"] * 1e3
    return result, None


def finish_rows(rows) -> None:
    """Ratios (other ÷ rnnkit, >1: rnnkit faster), allowed times and whether they are met."""
    for row in rows:
        for kind in KINDS:
            m = row[kind]
            rnnkit_us, torch_us, ort_us, floor_us = m["rnnkit_us"], m["torch_us"], m["ort_us"], m["floor_us"]
            if rnnkit_us:
                for column in ("torch", "ort"):
                    if m[f"{column}_us"]:
                        m[f"speedup_vs_{column}"] = m[f"{column}_us"] / rnnkit_us
            if torch_us is None or floor_us is None:
                continue
            factor = SEQ_TORCH_FACTOR if kind == "seq" else STEP_TORCH_FACTOR
            allowed = max(torch_us / factor, floor_us)
            if kind == "seq" and ort_us is not None:
                allowed = min(allowed, ort_us)  # and never slower than ONNX Runtime
            m["allowed_us"] = allowed
            if rnnkit_us is not None:
                m["met"] = rnnkit_us <= allowed


def _fmt_us(value) -> str:
    if value is None:
        return "-"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def _fmt_met(value) -> str:
    return "-" if value is None else ("yes" if value else "NO")


def format_table(rows, kind: str) -> str:
    header = ("cell", "B", "T" if kind == "seq" else "", "I=H", "rnnkit µs", "torch µs", "ort µs",
              "vs torch", "vs ort", "floor µs", "allowed µs", "met")
    lines = [header]
    for r in rows:
        m = r[kind]
        lines.append((r["cell"], str(r["B"]), str(r["T"]) if kind == "seq" else "", str(r["H"]),
                      _fmt_us(m["rnnkit_us"]), _fmt_us(m["torch_us"]), _fmt_us(m["ort_us"]),
                      fmt_ratio(m["speedup_vs_torch"]), fmt_ratio(m["speedup_vs_ort"]),
                      _fmt_us(m["floor_us"]), _fmt_us(m["allowed_us"]), _fmt_met(m["met"])))
    keep = [i for i in range(len(header)) if any(line[i] for line in lines)]  # drop the empty T column
    lines = [[line[i] for i in keep] for line in lines]
    widths = [max(len(line[i]) for line in lines) for i in range(len(keep))]

    def render(line):
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths)))

    return "\n".join([render(lines[0]), "  ".join("-" * w for w in widths)] + [render(l) for l in lines[1:]])


def main(args) -> int:
    """The latency run of ``python -m rnnkit.bench --latency`` (args from ``rnnkit.bench.parse_args``)."""
    import rnnkit

    contention = CpuContention()
    contention.start()
    previous_threads = rnnkit.get_num_threads()
    rnnkit.set_num_threads(args.threads)
    rows = latency_rows(args.cells, args.latency_units, args.latency_batches, args.latency_steps,
                        args.dtype, args.threads)
    footer = []
    try:
        native = native_module()
        env = environment(args, native, None)
        env["rnnkit_threads"] = rnnkit.get_num_threads()
        env["backend"] = rnnkit.get_backend()
        with blas_threads(args.threads):
            errors, step_ways = time_rnnkit(args, rows)       # 1. rnnkit, nothing else running
            time_floors(args, rows)                           # 2. NumPy's products (OpenBLAS)
    finally:
        rnnkit.set_num_threads(previous_threads)
    env["rnnkit_step"] = sorted(step_ways)
    # 3. PyTorch, then 4. ONNX Runtime, each in its own process
    if args.no_torch:
        pass
    elif not workers.torch_available():
        footer.append("torch: not importable, columns left '-' (no targets without it)")
    else:
        progress("PyTorch in a subprocess")
        result, error = run_worker_column(args, rows, "torch_worker", "PyTorch", "torch")
        if error:
            footer.append(f"torch: {error}")
        else:
            env["torch"], env["torch_threads"] = result.get("torch_version"), result.get("threads")
    ort_note = workers.ort_reason(args)
    if ort_note:
        footer.append(ort_note)
    elif not args.no_ort:
        progress("ONNX Runtime in a subprocess")
        result, error = run_worker_column(args, rows, "ort_worker", "ONNX Runtime", "ort")
        if error:
            footer.append(f"onnxruntime: {error}")
        else:
            env["onnxruntime"], env["onnxruntime_threads"] = (result.get("onnxruntime_version"),
                                                              result.get("threads"))
    progress_done()
    finish_rows(rows)
    env["other_cpu_load"] = contention.stop()
    if env["other_cpu_load"] is not None and env["other_cpu_load"] > 0.10:
        footer.insert(0, f"WARNING: other processes used {100 * env['other_cpu_load']:.0f}% of the CPU time "
                         "during this run; timings are unreliable (rerun on a quiet machine)")

    print(describe_environment(env))
    print(f"\nwhole sequence: µs per call of T={args.latency_steps} steps (rnnkit layer(x), return_sequences=True)")
    print(format_table(rows, "seq"))
    print(f"\nstreaming: µs per step, state carried (rnnkit {', '.join(sorted(step_ways)) or '-'})")
    print(format_table(rows, "step"))
    for row in rows:
        for note in row["notes"]:
            footer.append(f"{row['cell']} B={row['B']} H={row['H']}: {note}")
    footer += [
        "vs torch / vs ort: other ÷ rnnkit (>1: rnnkit faster)",
        f"floor: whole sequence {FLOOR_FACTOR} × T × (h @ recurrent_kernel); streaming {FLOOR_FACTOR} × "
        f"([x_t, h] @ [kernel; recurrent_kernel]) + {STEP_FLOOR_OVERHEAD_US:g} µs (NumPy, lowest median of "
        f"warm calls with {' or '.join(map(str, sorted({args.threads, 1}, reverse=True)))} BLAS thread(s))",
        f"allowed: whole sequence max(torch/{SEQ_TORCH_FACTOR:g}, floor), capped at ort; streaming "
        f"max(torch/{STEP_TORCH_FACTOR:g}, floor)",
    ]
    for line in footer:
        print(f"  {line}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"environment": env, "latency_rows": rows, "errors": errors, "footer": footer}, f, indent=2)
            f.write("\n")
    return 1 if errors else 0


if __name__ == "__main__":  # pragma: no cover - run through `python -m rnnkit.bench --latency`
    sys.exit(bench_main(["--latency", *sys.argv[1:]]))
