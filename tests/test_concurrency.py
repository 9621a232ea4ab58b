"""Calls from several Python threads at once (the native kernels release the GIL) give results
identical to serial calls — also for one shared layer whose weight pack is made, used and remade
while other threads call it, and while another thread changes the thread count or releases the
cached memory. Results do not depend on the thread count (docs/SPEC.md §14), so "identical" is
bit for bit."""

from __future__ import annotations

import threading

import numpy as np


import rnnkit
from rnnkit import _backend, ops


def _run_threads(work, n_threads, deadline=120.0):
    """Run work(i) on n_threads Python threads; re-raise the first error; fail if one hangs."""
    errors = []

    def target(i):
        try:
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(deadline)
        assert not t.is_alive(), "a thread did not finish (deadlock?)"
    if errors:
        raise errors[0]


CASES = [  # (cell, B, T, I, H): the few-row path, the batch split, the units split
    ("lstm", 1, 20, 64, 128),
    ("gru", 3, 12, 40, 96),
    ("simple_rnn", 48, 10, 32, 64),
    ("lstm", 64, 8, 64, 256),
]


def _problem(cell, B, T, I, H, seed):
    G = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
    rng = np.random.default_rng(seed)
    kernel = (rng.standard_normal((I, G * H)) / np.sqrt(I)).astype(np.float32)
    recurrent = (rng.standard_normal((H, G * H)) / np.sqrt(H)).astype(np.float32)
    bias = np.zeros((2, G * H) if cell == "gru" else G * H, np.float32)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    d = rng.standard_normal((B, T, H)).astype(np.float32)
    return kernel, recurrent, bias, x, d


def _train_call(cell, kernel, recurrent, bias, x, d):
    forward, backward = getattr(ops, cell + "_forward"), getattr(ops, cell + "_backward")
    out = forward(x, kernel, recurrent, bias, training=True)
    grads = backward(d, *([None, None] if cell == "lstm" else [None]), out[-1])
    return [a for a in out[:-1] if a is not None] + [g for g in grads if g is not None]


def test_concurrent_ops_calls_equal_serial_calls(native):
    problems = [(case[0], _problem(*case, seed=i)) for i, case in enumerate(CASES)]
    serial = [_train_call(cell, *p) for cell, p in problems]
    results = {}

    def work(i):
        for rep in range(6):
            k = (i + rep) % len(problems)
            cell, p = problems[k]
            results[(i, rep)] = (k, _train_call(cell, *p))

    _run_threads(work, 4)
    for k, got in results.values():
        for a, b in zip(got, serial[k]):
            np.testing.assert_array_equal(a, b)


def test_shared_layer_with_its_pack_while_settings_change(native):
    """One layer called from four threads (inference: its pack; steps: the few-row path) while a
    fifth thread flips the thread count and releases cached memory, and a sixth rewrites the
    weights with the same values (each rewrite makes the next call repack)."""
    layer = rnnkit.LSTM(96, return_sequences=True, seed=3)
    x = np.random.default_rng(4).standard_normal((2, 15, 48)).astype(np.float32)
    want = layer(x)
    y0, states0 = layer.step(x[:, 0])
    weights = layer.get_weights()
    stop = threading.Event()

    def disturb(i):
        while not stop.is_set():
            if i == 0:
                rnnkit.set_num_threads(1)
                rnnkit.set_num_threads(2)
                rnnkit.release_memory()
            else:
                layer.set_weights(weights)

    def call(i):
        for _ in range(40):
            np.testing.assert_array_equal(layer(x), want)
            y, _ = layer.step(x[:, 0])
            np.testing.assert_array_equal(y, y0)

    disturbers = [threading.Thread(target=disturb, args=(i,), daemon=True) for i in range(2)]
    for t in disturbers:
        t.start()
    try:
        _run_threads(call, 4)
    finally:
        stop.set()
        for t in disturbers:
            t.join(30)
    assert _backend.get_num_threads() in (1, 2)
