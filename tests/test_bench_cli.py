"""Smoke tests of the benchmark CLI (``python -m rnnkit.bench``): it runs, prints the table, writes
JSON with positive numbers, and rejects bad arguments with exit code 2. No timing assertions."""

from __future__ import annotations

import importlib.util
import json

import pytest

from rnnkit import bench

NUMERIC_FIELDS = ("B", "T", "I", "H", "flops", "threads")


def _run(argv, capsys):
    code = bench.main(argv)
    return code, capsys.readouterr()


def test_seed_tiny_table_and_json(tmp_path, capsys):
    out_file = tmp_path / "bench.json"
    code, captured = _run(["--sizes", "seed-tiny", "--no-torch", "--repeat", "3", "--json", str(out_file)], capsys)
    assert code == 0, captured.err + captured.out

    lines = captured.out.splitlines()
    header = next(line for line in lines if line.startswith("cell"))
    assert header.split() == ["cell", "size", "B", "T", "I", "H", "mode", "rnnkit", "ms", "reference", "ms",
                              "torch", "ms", "vs", "ref", "vs", "torch", "GFLOP/s", "%", "peak"]
    body = [line.split() for line in lines if line.startswith("simple_rnn")]
    assert [(r[1], r[2:6], r[6]) for r in body] == [("seed-tiny", ["1", "3", "2", "4"], "fwd"),
                                                    ("seed-tiny", ["1", "3", "2", "4"], "train")]
    assert all(r[9] == "-" for r in body), "torch column must be '-' with --no-torch"

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
        assert row["torch_ms"] is None
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
    code, captured = _run(["--sizes", "large", "--no-torch", "--no-layer", "--cells", "gru", "--mode", "fwd",
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
        bench.main(argv + ["--no-torch"])
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
    code, captured = _run(["--sizes", "seed-tiny", "--no-reference", "--no-layer", "--mode", "fwd",
                           "--repeat", "3", "--min-time", "0", "--json", str(out_file)], capsys)
    assert code == 0, captured.err + captured.out
    report = json.loads(out_file.read_text())
    assert report["environment"]["torch"]
    (row,) = report["rows"]
    assert row["torch_ms"] > 0 and row["torch_gflops"] > 0


def test_failing_torch_subprocess_leaves_column_empty(monkeypatch, capsys):
    """A PyTorch subprocess that crashes is reported in the footer; the rest of the table stands."""
    monkeypatch.setattr(bench, "torch_available", lambda: True)

    def crashed(cmd, **kwargs):
        assert cmd[1:3] == ["-m", "rnnkit._bench_torch"]
        return bench.subprocess.CompletedProcess(cmd, 1, stdout="", stderr="RuntimeError: boom\n")

    monkeypatch.setattr(bench.subprocess, "run", crashed)
    code, captured = _run(["--sizes", "seed-tiny", "--mode", "fwd", "--no-layer", "--repeat", "1",
                           "--min-time", "0"], capsys)
    assert code == 0, captured.err + captured.out
    row = next(line.split() for line in captured.out.splitlines() if line.startswith("simple_rnn"))
    assert row[9] == "-"
    assert "torch: PyTorch subprocess exited with 1: RuntimeError: boom" in captured.out


def test_rounds_report_the_median_of_round_medians(tmp_path, capsys):
    """--rounds N times rnnkit N times (alternating with PyTorch when present); the column is the
    median of the rounds' medians and every round's median is kept in the JSON."""
    out_file = tmp_path / "bench.json"
    code, captured = _run(["--sizes", "seed-tiny", "--no-reference", "--no-layer", "--no-torch", "--mode", "fwd",
                           "--repeat", "3", "--min-time", "0", "--rounds", "3", "--json", str(out_file)], capsys)
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
