"""Children of a process that already ran rnnkit's kernels on several threads (issue 10).

GNU libgomp keeps a pool of worker threads per thread that opened a parallel region; fork() copies
only the calling thread, so without care a child's first multi-threaded kernel waits forever for
workers that do not exist. rnnkit releases the forking thread's pool before fork() (a
``pthread_atfork`` handler in cpp/src/threading.cc), and a child creates a fresh pool: it computes
the same results as the parent on the parent's thread setting.

* a child forked after a 2-thread LSTM forward computes the parent's result bit for bit (results do
  not depend on the thread count) and runs on 2 threads: it has exactly one thread after fork()
  and one more (the OpenMP worker) after the kernel, read from /proc/self/task;
* the same one generation further (the child's own 2-thread run is observed the same way, so the
  grandchild really is forked after a multi-threaded call), and with idle Python threads in the
  parent that ran kernels concurrently (their pools stay theirs and keep working after the fork);
* ``multiprocessing`` pools with the "fork" and the "spawn" start methods map a predict over
  inputs and give the parent's predictions.

Every child runs under a deadline: a hang kills it and fails the test instead of hanging CI.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import select
import signal
import threading
import time
import traceback
import warnings

import numpy as np
import pytest

import rnnkit

from _native_required import import_native

_native = import_native()  # skipped without it (a failure under RNNKIT_REQUIRE_NATIVE=1)

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)"),
    pytest.mark.openmp,  # nothing to inherit without OpenMP (skipped; fails under RNNKIT_REQUIRE_NATIVE=1)
]

TIMEOUT = 120.0  # seconds for one child (a correct one takes well under a second)
HAVE_PROC_TASKS = os.path.isdir("/proc/self/task")

# Big enough that both threads work: the per-step GEMM (64 x 256 @ 256 x 1024) is far above
# RNNKIT_PARALLEL_MIN_FLOPS.
B, T, I, H = 64, 50, 256, 256
_rng = np.random.default_rng(10)
X = _rng.standard_normal((B, T, I)).astype(np.float32)
KERNEL = (_rng.standard_normal((I, 4 * H)) * 0.05).astype(np.float32)
RECURRENT = (_rng.standard_normal((H, 4 * H)) * 0.05).astype(np.float32)
BIAS = (_rng.standard_normal(4 * H) * 0.1).astype(np.float32)


def _lstm():
    outputs, _, _, _ = rnnkit.ops.lstm_forward(X, KERNEL, RECURRENT, BIAS, training=False)
    return outputs


def _thread_count():
    """Threads of this process (None where /proc is missing)."""
    return len(os.listdir("/proc/self/task")) if HAVE_PROC_TASKS else None


def _lstm_observed():
    """(outputs, rnnkit.get_num_threads(), threads before, threads after) for one LSTM forward."""
    before = _thread_count()
    outputs = _lstm()
    return outputs, rnnkit.get_num_threads(), before, _thread_count()


def _fork_quietly():
    # Python 3.12+ warns (DeprecationWarning) about fork() in a process with other threads, which
    # is what these tests are about; pytest turns warnings into errors.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*fork\(\)", category=DeprecationWarning)
        return os.fork()


def _run_forked(fn, timeout=TIMEOUT):
    """fn() in a forked child; its result comes back through a pipe. Fails on a hang or error."""
    read_fd, write_fd = os.pipe()
    pid = _fork_quietly()
    if pid == 0:  # the child: never return into the caller (pytest)
        code = 0
        try:
            os.close(read_fd)
            try:
                payload = pickle.dumps(("ok", fn()))
            except BaseException:  # noqa: BLE001 - reported to the parent
                payload = pickle.dumps(("error", traceback.format_exc()))
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks, deadline, done, status = [], time.monotonic() + timeout, False, None
    try:
        while not done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"the forked child did not finish within {timeout:.0f} s (hang)")
            ready, _, _ = select.select([read_fd], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(read_fd, 1 << 20)
                chunks.append(chunk)
                done = not chunk
        while status is None:  # the child exits right after closing the pipe
            waited, wait_status = os.waitpid(pid, os.WNOHANG)
            if waited:
                status = wait_status
            elif time.monotonic() > deadline:
                pytest.fail("the forked child did not exit after sending its result")
            else:
                time.sleep(0.01)
    finally:
        os.close(read_fd)
        if status is None:  # hung or failed: kill and reap it
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the forked child failed to send its result"
    kind, value = pickle.loads(b"".join(chunks))
    assert kind == "ok", f"the forked child raised:\n{value}"
    return value


@pytest.fixture
def two_threads():
    previous = rnnkit.get_num_threads()
    rnnkit.set_num_threads(2)
    yield
    rnnkit.set_num_threads(previous)


def _check_child(observed, reference, threads=2):
    outputs, nt, before, after = observed
    np.testing.assert_array_equal(outputs, reference)
    assert nt == threads  # the parent's setting
    if HAVE_PROC_TASKS:
        assert before == 1  # fork() copied the calling thread only
        assert after == threads  # the kernel's OpenMP team: the child's thread + new workers


def test_fork_after_multithreaded_call(two_threads):
    reference = _lstm()  # the parent's pool now has a worker
    _check_child(_run_forked(_lstm_observed), reference)
    # The parent's own next multi-threaded call (a new pool) is still right.
    np.testing.assert_array_equal(_lstm(), reference)


def test_fork_two_generations(two_threads):
    reference = _lstm()

    def child():
        observed = _lstm_observed()  # the child's main thread opens a 2-thread region ...
        return observed, _run_forked(_lstm_observed)  # ... before it forks the grandchild

    child_run, grandchild_run = _run_forked(child)
    _check_child(child_run, reference)
    _check_child(grandchild_run, reference)


def test_fork_with_threads_that_ran_kernels(two_threads):
    """Python threads that ran kernels concurrently (each with its own OpenMP pool) idle while the
    main thread forks; the child computes right, and the threads' pools still work afterwards."""
    reference = _lstm()
    resume, stop = threading.Event(), threading.Event()
    ready = threading.Barrier(3)
    errors = []

    def worker():
        try:
            for _ in range(2):
                np.testing.assert_array_equal(_lstm(), reference)
            ready.wait()
            resume.wait()
            while not stop.is_set():
                np.testing.assert_array_equal(_lstm(), reference)
                stop.wait(0.01)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
            ready.abort()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        np.testing.assert_array_equal(_lstm(), reference)  # concurrently with the workers
        ready.wait(timeout=TIMEOUT)
        # the parent's Python threads and their pools do not come along: 1 thread, then 2
        _check_child(_run_forked(_lstm_observed), reference)
        resume.set()
        np.testing.assert_array_equal(_lstm(), reference)
        time.sleep(0.2)
    finally:
        resume.set()
        stop.set()
        for thread in threads:
            thread.join(TIMEOUT)
    assert not errors, errors


# ---- multiprocessing pools -------------------------------------------------------------------------
N_INPUTS = 4


def _model():
    model = rnnkit.Sequential([rnnkit.LSTM(H, return_sequences=True), rnnkit.Dense(8)])
    model.build((None, T, I))
    rng = np.random.default_rng(3)
    model.set_weights([(rng.standard_normal(w.shape) * 0.05).astype(w.dtype)
                       for w in model.get_weights()])
    return model


def _inputs(i):
    return np.random.default_rng(100 + i).standard_normal((B, T, I)).astype(np.float32)


_FORK_MODEL = None  # set in the parent before the fork pool starts; the children inherit it


def _predict_forked(i):
    before = _thread_count()
    prediction = _FORK_MODEL.predict(_inputs(i), batch_size=B)
    return prediction, rnnkit.get_num_threads(), before, _thread_count()


_SPAWN_MODEL = None


def _predict_spawned(i):
    global _SPAWN_MODEL
    if _SPAWN_MODEL is None:
        _SPAWN_MODEL = _model()
    return _SPAWN_MODEL.predict(_inputs(i), batch_size=B), rnnkit.get_num_threads()


def _pool_map(method, fn):
    context = multiprocessing.get_context(method)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*fork\(\)", category=DeprecationWarning)
        pool = context.Pool(2)
    try:
        # chunksize 1: both workers get tasks; a hung worker raises multiprocessing.TimeoutError
        return pool.map_async(fn, range(N_INPUTS), chunksize=1).get(timeout=TIMEOUT)
    finally:
        pool.terminate()
        pool.join()


def test_fork_pool(two_threads):
    global _FORK_MODEL
    _FORK_MODEL = model = _model()
    references = [model.predict(_inputs(i), batch_size=B) for i in range(N_INPUTS)]
    try:
        results = _pool_map("fork", _predict_forked)
    finally:
        _FORK_MODEL = None
    for reference, (prediction, nt, before, after) in zip(references, results):
        np.testing.assert_array_equal(prediction, reference)
        assert nt == 2
        if HAVE_PROC_TASKS:
            assert before in (1, 2)  # a fresh worker has one thread; later tasks find its pool
            assert after == 2


def test_spawn_pool(two_threads):
    model = _model()
    references = [model.predict(_inputs(i), batch_size=B) for i in range(N_INPUTS)]
    results = _pool_map("spawn", _predict_spawned)
    for reference, (prediction, nt) in zip(references, results):
        np.testing.assert_array_equal(prediction, reference)
        assert nt == _native.max_threads() // 4  # a new process: the default, one per core
