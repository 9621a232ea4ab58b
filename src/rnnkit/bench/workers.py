"""The PyTorch and ONNX Runtime columns: each timed by a worker module in its own subprocess
(``python -m rnnkit.bench.torch_worker`` / ``rnnkit.bench.ort_worker``), so that their thread pools never
spin next to rnnkit's timings."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from .timing import timing_kwargs

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
    """Run ``python -m rnnkit.bench.<module> JSON`` (a timing worker: torch_worker, ort_worker) and return
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
        done = subprocess.run([sys.executable, "-m", f"rnnkit.bench.{module}", json.dumps(request)],
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
    request = {"dtype": args.dtype, "threads": args.threads, "timing": timing_kwargs(args), "jobs": _jobs(rows)}
    result, error = run_worker("torch_worker", "PyTorch", request, args.threads)
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
    request = {"dtype": args.dtype, "threads": args.threads, "timing": timing_kwargs(args), "jobs": _jobs(rows)}
    result, error = run_worker("ort_worker", "ONNX Runtime", request, args.threads)
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
