"""Progress lines on a terminal and the printed table."""

from __future__ import annotations

import sys

def progress(message: str) -> None:
    """One status line on stderr while a long run goes on (only on a terminal)."""
    if sys.stderr is not None and sys.stderr.isatty():
        sys.stderr.write(f"\r\033[Ktiming {message} ...")
        sys.stderr.flush()


def progress_done() -> None:
    if sys.stderr is not None and sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def fmt_ms(value) -> str:
    if value is None:
        return "-"
    if value < 0.1:
        return f"{value:.4f}"
    if value < 10:
        return f"{value:.3f}"
    if value < 1000:
        return f"{value:.1f}"
    return f"{value:.0f}"


def fmt_ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def fmt_number(value) -> str:
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
        return fmt_ms(row["rnnkit_ms"])
    return "skip" if any(n.startswith("rnnkit skipped") for n in row["notes"]) else "err"


def format_table(rows: list[dict]) -> str:
    lines = [HEADER]
    for r in rows:
        lines.append((r["cell"], r["size"], str(r["B"]), str(r["T"]), str(r["I"]), str(r["H"]), r["mode"],
                      _rnnkit_cell(r), fmt_ms(r["reference_ms"]), fmt_ms(r["torch_ms"]), fmt_ms(r["ort_ms"]),
                      fmt_ratio(r["speedup_vs_reference"]), fmt_ratio(r["speedup_vs_torch"]),
                      fmt_ratio(r["speedup_vs_ort"]),
                      fmt_number(r["gflops"]), fmt_number(r["pct_peak"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    left = {0, 1, 6}  # text columns; numbers are right-aligned

    def render(line):
        return "  ".join(v.ljust(w) if i in left else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(lines[0]), rule] + [render(line) for line in lines[1:]])


def describe_environment(env: dict) -> str:
    peak = f"{env['peak_gflops']:.0f} GFLOP/s" if env["peak_gflops"] else "-"
    blas = ", ".join(f"{b['internal_api']} {b['version']}" for b in env["blas"]) or "?"
    return (f"rnnkit bench  cpu: {env['cpu']}  isa: {env['isa'] or '-'}  threads: {env['threads']}  "
            f"dtype: {env['dtype']}  FMA peak: {peak}\n"
            f"python {env['python']}  numpy {env['numpy']} ({blas})  torch {env['torch'] or '-'}  "
            f"onnxruntime {env.get('onnxruntime') or '-'}")
