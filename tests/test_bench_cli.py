"""Smoke tests of the benchmark CLI (``python -m rnnkit.bench``): it runs, prints the table, writes
JSON with positive numbers, and rejects bad arguments with exit code 2. No timing assertions."""

from __future__ import annotations

import importlib.util
import json

import pytest

from rnnkit import bench
from rnnkit.bench import workers

NUMERIC_FIELDS = ("B", "T", "I", "H", "flops", "threads")


def _run(argv, capsys):
    code = bench.main(argv)
    return code, capsys.readouterr()


def test_seed_tiny_table_and_json(tmp_path, capsys):
    out_file = tmp_path / "bench.json"
    code, captured = _run(["--sizes", "seed-tiny", "--no-torch", "--no-ort", "--repeat", "3", "--json", str(out_file)],
                          capsys)
    assert code == 0, captured.err + captured.out

    lines = captured.out.splitlines()
    header = next(line for line in lines if line.startswith("cell"))
    assert header.split() == ["cell", "size", "B", "T", "I", "H", "mode", "rnnkit", "ms", "reference", "ms",
                              "torch", "ms", "ort", "ms", "vs", "ref", "vs", "torch", "vs", "ort", "GFLOP/s", "%",
                              "peak"]
    body = [line.split() for line in lines if line.startswith("simple_rnn")]
    assert [(r[1], r[2:6], r[6]) for r in body] == [("seed-tiny", ["1", "3", "2", "4"], "fwd"),
                                                    ("seed-tiny", ["1", "3", "2", "4"], "train")]
    assert all(r[9] == "-" for r in body), "torch column must be '-' with --no-torch"
    assert all(r[10] == "-" for r in body), "ort column must be '-' with --no-ort"

    report = json.loads(out_file.read_text())
    env = report["environment"]
    assert env["threads"] >= 1 and env["dtype"] == "float32" and env["numpy"]
    assert env["torch"] is None
    rows = report["rows"]
    assert [(r["cell"], r["size"], r["mode"]) for r in rows] == [("simple_rnn", "seed-tiny", "fwd"),
                                                                 ("simple_rnn", "seed-tiny", "train")]
    for row in rows:
        for field in NUMERIC_FIELDS:
            assert row[field] > 0, (field, row)
        assert row["flops"] == 2 * 1 * 3 * 1 * 4 * (2 + 4) * (3 if row["mode"] == "train" else 1)
        assert row["torch_ms"] is None and row["ort_ms"] is None
        # the reference always runs at seed-tiny; rnnkit runs when the native module is built
        assert row["reference_ms"] > 0 and row["reference_gflops"] > 0
        assert row["reference"]["samples"] >= 3
        if env["native_available"]:
            assert row["rnnkit_ms"] > 0 and row["gflops"] > 0
            assert row["speedup_vs_reference"] > 0
            if env["peak_gflops"]:
                assert row["pct_peak"] > 0
        else:
            assert row["rnnkit_ms"] is None and any("rnnkit skipped" in n for n in row["notes"])
    if report["layer_overhead"] is not None:
        assert report["layer_overhead"]["ops_us"] > 0 and report["layer_overhead"]["layer_us"] > 0
        assert "layer call overhead at seed-tiny:" in captured.out


def test_reference_skipped_at_large_by_default(capsys):
    code, captured = _run(["--sizes", "large", "--no-torch", "--no-ort", "--no-layer", "--cells", "gru", "--mode", "fwd",
                           "--repeat", "1", "--min-time", "0", "--warmup", "0"], capsys)
    # with the native module the row is timed; without it nothing runs at all (both columns '-')
    assert code == 0, captured.err + captured.out
    row = next(line.split() for line in captured.out.splitlines() if line.startswith("gru"))
    assert row[8] == "-"
    assert "reference skipped at this size" in captured.out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sizes", "seed-tiny,huge"], "unknown size 'huge'"),
        (["--cells", "rnn"], "unknown cell 'rnn'"),
        (["--mode", "backward"], "unknown mode 'backward'"),
        (["--dtype", "float16"], "invalid choice: 'float16'"),
        (["--threads", "0"], "expected a positive integer"),
        (["--repeat", "x"], "expected a positive integer"),
    ],
    ids=["size", "cell", "mode", "dtype", "threads", "repeat"],
)
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(argv + ["--no-torch", "--no-ort"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    if "unknown" in message:
        assert "choose from:" in err  # the valid names are listed


def test_flops_formula():
    assert bench.forward_flops("simple_rnn", "seed-small") == 2 * 32 * 10 * 1 * 4 * (8 + 4)
    assert bench.forward_flops("lstm", "large") == 2 * 128 * 100 * 4 * 1024 * (512 + 1024)
    assert bench.flops("gru", "medium", "train") == 3 * bench.forward_flops("gru", "medium")


@pytest.mark.torch
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_torch_column_from_subprocess(tmp_path, capsys):
    out_file = tmp_path / "bench.json"
    code, captured = _run(["--sizes", "seed-tiny", "--no-reference", "--no-layer", "--mode", "fwd", "--no-ort",
                           "--repeat", "3", "--min-time", "0", "--json", str(out_file)], capsys)
    assert code == 0, captured.err + captured.out
    report = json.loads(out_file.read_text())
    assert report["environment"]["torch"]
    (row,) = report["rows"]
    assert row["torch_ms"] > 0 and row["torch_gflops"] > 0


def test_failing_torch_subprocess_leaves_column_empty(monkeypatch, capsys):
    """A PyTorch subprocess that crashes is reported in the footer; the rest of the table stands."""
    monkeypatch.setattr(workers, "torch_available", lambda: True)

    def crashed(cmd, **kwargs):
        assert cmd[1:3] == ["-m", "rnnkit.bench.torch_worker"]
        return workers.subprocess.CompletedProcess(cmd, 1, stdout="", stderr="RuntimeError: boom\n")

    monkeypatch.setattr(workers.subprocess, "run", crashed)
    code, captured = _run(["--sizes", "seed-tiny", "--mode", "fwd", "--no-layer", "--no-ort", "--repeat", "1",
                           "--min-time", "0"], capsys)
    assert code == 0, captured.err + captured.out
    row = next(line.split() for line in captured.out.splitlines() if line.startswith("simple_rnn"))
    assert row[9] == "-"
    assert "torch: PyTorch subprocess exited with 1: RuntimeError: boom" in captured.out


def test_rounds_report_the_median_of_round_medians(tmp_path, capsys):
    """--rounds N times rnnkit N times (alternating with PyTorch when present); the column is the
    median of the rounds' medians and every round's median is kept in the JSON."""
    out_file = tmp_path / "bench.json"
    code, captured = _run(["--sizes", "seed-tiny", "--no-reference", "--no-layer", "--no-torch", "--no-ort",
                           "--mode", "fwd", "--repeat", "3", "--min-time", "0", "--rounds", "3", "--json",
                           str(out_file)], capsys)
    assert code == 0, captured.err + captured.out
    report = json.loads(out_file.read_text())
    (row,) = report["rows"]
    rounds = row["rnnkit_rounds_ms"]
    assert len(rounds) == 3 and all(r > 0 for r in rounds)
    assert row["rnnkit_ms"] == sorted(rounds)[1]
    assert row["rnnkit"]["median_ms"] == row["rnnkit_ms"] and len(row["rnnkit_rounds"]) == 3
    assert row["rnnkit"]["samples"] == sum(r["samples"] for r in row["rnnkit_rounds"])
    assert report["environment"]["rounds"] == 3
    assert "timed in 3 alternating rounds" in captured.out


def test_rounds_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--rounds", "0"])
    assert exc.value.code == 2


# --------------------------------------------------------------------------------------------------
# the ONNX Runtime column

ORT_INSTALLED = importlib.util.find_spec("onnx") is not None and importlib.util.find_spec("onnxruntime") is not None


@pytest.mark.onnx
@pytest.mark.skipif(not ORT_INSTALLED, reason="onnx/onnxruntime are not installed")
def test_ort_column_from_subprocess_fwd_rows_only(tmp_path, capsys):
    out_file = tmp_path / "bench.json"
    code, captured = _run(["--sizes", "seed-tiny", "--cells", "all", "--no-reference", "--no-layer", "--no-torch",
                           "--repeat", "3", "--min-time", "0", "--json", str(out_file)], capsys)
    assert code == 0, captured.err + captured.out
    report = json.loads(out_file.read_text())
    assert report["environment"]["onnxruntime"] and report["environment"]["onnxruntime_threads"] >= 1
    for row in report["rows"]:
        if row["mode"] == "fwd":
            assert row["ort_ms"] > 0 and row["ort_gflops"] > 0 and row["ort"]["samples"] >= 3, row
            if row["rnnkit_ms"]:
                assert row["speedup_vs_ort"] == pytest.approx(row["ort_ms"] / row["rnnkit_ms"])
        else:
            assert row["ort_ms"] is None and row["speedup_vs_ort"] is None
    assert "onnxruntime: inference (fwd) rows only" in captured.out


def test_ort_request_and_failures(monkeypatch, capsys):
    """The ORT subprocess gets the fwd rows only; a job error becomes a row note, a crash a footer line."""
    monkeypatch.setattr(workers, "torch_available", lambda: False)
    monkeypatch.setattr(workers, "ort_available", lambda: True)
    requests = []

    def fake(cmd, **kwargs):
        assert cmd[1:3] == ["-m", "rnnkit.bench.ort_worker"]
        request = json.loads(cmd[3])
        requests.append(request)
        answers = [{"error": "RuntimeError: no kernel"}] + [
            {"median_ms": 0.5, "min_ms": 0.4, "q1_ms": 0.45, "q3_ms": 0.55, "samples": 3}] * (len(request["jobs"]) - 1)
        return workers.subprocess.CompletedProcess(cmd, 0, stdout=json.dumps(
            {"onnxruntime_version": "9.9", "onnx_version": "1.0", "threads": 2, "results": answers}) + "\n", stderr="")

    monkeypatch.setattr(workers.subprocess, "run", fake)
    code, captured = _run(["--sizes", "seed-tiny,seed-small", "--no-layer", "--no-reference", "--repeat", "1",
                           "--min-time", "0", "--warmup", "0"], capsys)
    assert code == 0, captured.err + captured.out
    (request,) = requests
    assert [(j["size"], j["mode"], j["shape"]) for j in request["jobs"]] == [
        ("seed-tiny", "fwd", [1, 3, 2, 4]), ("seed-small", "fwd", [32, 10, 8, 4])]
    assert request["dtype"] == "float32" and request["threads"] >= 1
    rows = [line.split() for line in captured.out.splitlines() if line.startswith("simple_rnn")]
    assert [r[10] for r in rows] == ["-", "-", "0.500", "-"]  # tiny fwd failed; train rows never timed
    assert "ort failed: RuntimeError: no kernel [simple_rnn/seed-tiny/fwd]" in captured.out
    assert "onnxruntime 9.9" in captured.out

    def crashed(cmd, **kwargs):
        return workers.subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ImportError: boom\n")

    monkeypatch.setattr(workers.subprocess, "run", crashed)
    code, captured = _run(["--sizes", "seed-tiny", "--mode", "fwd", "--no-layer", "--repeat", "1",
                           "--min-time", "0"], capsys)
    assert code == 0
    assert "onnxruntime: ONNX Runtime subprocess exited with 1: ImportError: boom" in captured.out


def test_ort_column_says_why_it_is_empty(monkeypatch, capsys):
    monkeypatch.setattr(workers, "ort_available", lambda: False)
    code, captured = _run(["--sizes", "seed-tiny", "--mode", "fwd", "--no-layer", "--no-torch", "--repeat", "1",
                           "--min-time", "0"], capsys)
    assert code == 0
    assert "onnx/onnxruntime: not importable, column left '-'" in captured.out
    monkeypatch.setattr(workers, "ort_available", lambda: True)
    monkeypatch.setattr(workers.subprocess, "run", lambda *a, **k: pytest.fail("no ORT subprocess for float64"))
    code, captured = _run(["--sizes", "seed-tiny", "--mode", "fwd", "--no-layer", "--no-torch", "--repeat", "1",
                           "--min-time", "0", "--dtype", "float64"], capsys)
    assert code == 0
    assert "float32 only" in captured.out


# --------------------------------------------------------------------------------------------------
# the latency table (--latency), at tiny injected sizes

LATENCY_TINY = ["--latency", "--latency-units", "8", "--latency-batches", "1,2", "--latency-steps", "4",
                "--repeat", "2", "--min-time", "0", "--warmup", "0"]


def test_latency_table_rows_and_json(tmp_path, capsys):
    out_file = tmp_path / "latency.json"
    code, captured = _run(LATENCY_TINY + ["--no-torch", "--no-ort", "--json", str(out_file)], capsys)
    assert code == 0, captured.err + captured.out
    assert "whole sequence: µs per call of T=4 steps" in captured.out
    assert "streaming: µs per step" in captured.out
    report = json.loads(out_file.read_text())
    rows = report["latency_rows"]
    assert [(r["cell"], r["B"], r["T"], r["I"], r["H"]) for r in rows] == [
        (cell, b, 4, 8, 8) for b in (1, 2) for cell in ("simple_rnn", "lstm", "gru")]
    for row in rows:
        assert row["gemv_recurrent_us"] > 0 and row["gemv_cell_us"] > 0
        assert row["seq"]["floor_us"] == pytest.approx(1.25 * 4 * row["gemv_recurrent_us"])
        assert row["step"]["floor_us"] == pytest.approx(1.25 * row["gemv_cell_us"] + 5.0)
        for kind in ("seq", "step"):
            assert row[kind]["rnnkit_us"] > 0
            assert row[kind]["torch_us"] is None and row[kind]["allowed_us"] is None and row[kind]["met"] is None
    # the table prints both kinds of every row
    assert sum(line.startswith("lstm") for line in captured.out.splitlines()) == 4


def test_latency_targets():
    from rnnkit.bench import latency as lat

    rows = lat.latency_rows(["lstm"], [8], [1], 4, "float32", 1) * 1
    row = rows[0]
    row["seq"].update(rnnkit_us=40.0, torch_us=100.0, ort_us=45.0, floor_us=10.0)
    row["step"].update(rnnkit_us=12.0, torch_us=50.0, ort_us=None, floor_us=8.0)
    lat.finish_rows(rows)
    assert row["seq"]["allowed_us"] == 45.0 and row["seq"]["met"] is True  # min(max(50, 10), ort 45)
    assert row["seq"]["speedup_vs_torch"] == 2.5 and row["seq"]["speedup_vs_ort"] == pytest.approx(45 / 40)
    assert row["step"]["allowed_us"] == 10.0 and row["step"]["met"] is False  # max(50/5, 8)
    assert row["step"]["speedup_vs_ort"] is None


def test_latency_streaming_step_carries_the_state():
    """The streaming call of rnnkit (layer.step, or its fallback) gives the whole sequence's outputs."""
    from rnnkit.bench import latency as lat

    problem = bench.make_problem("lstm", (2, 5, 3, 4), "float32", d_outputs=False)
    sequence, step, _ = lat.rnnkit_calls("lstm", problem)
    outputs = [step() for _ in range(5)]
    import numpy as np

    np.testing.assert_allclose(np.stack([np.asarray(y).reshape(2, 4) for y in outputs], axis=1), sequence(),
                               rtol=1e-5, atol=1e-6)


def test_latency_workers_get_fwd_and_step_jobs(monkeypatch, capsys):
    monkeypatch.setattr(workers, "torch_available", lambda: True)
    monkeypatch.setattr(workers, "ort_available", lambda: True)
    calls = {}

    def fake(cmd, **kwargs):
        module = cmd[2]
        request = json.loads(cmd[3])
        calls[module] = request
        ms = 0.02 if module == "rnnkit.bench.torch_worker" else 0.01
        answers = [{"median_ms": ms, "min_ms": ms, "q1_ms": ms, "q3_ms": ms, "samples": 2}] * len(request["jobs"])
        version = {"torch_version": "0.0"} if module == "rnnkit.bench.torch_worker" else {"onnxruntime_version": "0.0"}
        return workers.subprocess.CompletedProcess(cmd, 0, stdout=json.dumps(
            {**version, "threads": 1, "results": answers}), stderr="")

    monkeypatch.setattr(workers.subprocess, "run", fake)
    code, captured = _run(LATENCY_TINY + ["--cells", "gru", "--latency-batches", "1"], capsys)
    assert code == 0, captured.err + captured.out
    assert set(calls) == {"rnnkit.bench.torch_worker", "rnnkit.bench.ort_worker"}
    for request in calls.values():
        assert [(j["cell"], j["mode"], j["shape"]) for j in request["jobs"]] == [
            ("gru", "fwd", [1, 4, 8, 8]), ("gru", "step", [1, 4, 8, 8])]
    row = next(line.split() for line in captured.out.splitlines() if line.startswith("gru"))
    assert row[5:7] == ["20.0", "10.0"]  # torch µs, ort µs (after cell, B, T, I=H, rnnkit µs)


@pytest.mark.torch
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
@pytest.mark.skipif(not ORT_INSTALLED, reason="onnx/onnxruntime are not installed")
def test_latency_with_real_workers(tmp_path, capsys):
    out_file = tmp_path / "latency.json"
    code, captured = _run(LATENCY_TINY + ["--cells", "lstm", "--latency-batches", "2", "--json", str(out_file)],
                          capsys)
    assert code == 0, captured.err + captured.out
    (row,) = json.loads(out_file.read_text())["latency_rows"]
    for kind in ("seq", "step"):
        m = row[kind]
        assert m["torch_us"] > 0 and m["ort_us"] > 0 and m["allowed_us"] > 0 and m["met"] in (True, False), m
    assert not row["notes"]


@pytest.mark.parametrize("argv, message", [
    (["--latency", "--latency-units", "0"], "--latency-units: expected a positive integer"),
    (["--latency", "--latency-batches", ","], "--latency-batches needs at least one"),
    (["--latency", "--rounds", "2"], "--rounds is not supported with --latency"),
])
def test_latency_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
