"""The MPI side of tests/test_mpi.py: ``mpiexec -n N python tests/mpi_worker.py OUT_DIR``.

Every rank runs every check below (all ranks make the same rnnkit calls, as a user's script would);
each rank computes the single-process reference itself (cheap models: no rank waits for rank 0)
and asserts; rank 0 writes ``OUT_DIR/result.json`` with what it measured. A failed check raises, and
``python -m mpi4py`` (the test's launch line) aborts every rank with a non-zero exit.

Checks: 20 training steps with N ranks equal the single-process run on the same global batches
(float64, relative 1e-10 on every weight; SimpleRNN / LSTM / GRU with Dense heads; Adam with
global_clipnorm, clipnorm or clipvalue that actually clip; uneven last batches, empty pieces,
masks, sample weights); rank 0's weights and optimizer state are broadcast; the weights are
bit-identical on every rank; the epoch logs (loss, accuracy, validation) equal the single-process
ones; evaluate and predict equal their single-process results on every rank; only rank 0 prints
and saves; chief_only callbacks; EarlyStopping and a stop on one rank stop every rank; mismatched
calls raise on every rank; stateful layers are refused; float32 training agrees to rounding level;
weights that differ between ranks after fit are reported and replaced by rank 0's.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings

import numpy as np

import rnnkit
from rnnkit.distributed import get_strategy

OUT_DIR = sys.argv[1]
STDOUT = sys.stdout
dist = get_strategy("mpi")
RANK, SIZE = dist.rank, dist.size
results = {"size": SIZE, "threads": dist.threads, "local_size": dist.local_size, "checks": []}


def check(name):
    results["checks"].append(name)


def rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def assert_same_weights(dist_model, ref_model, rtol, what):
    worst = 0.0
    for i, (w, r) in enumerate(zip(dist_model.get_weights(), ref_model.get_weights())):
        d = rel_diff(w, r)
        worst = max(worst, d)
        assert d <= rtol, f"{what}: weight {i} differs by {d:.3e} relative (> {rtol})"
    # identical on every rank, bit for bit
    mine = np.concatenate([w.reshape(-1) for w in dist_model.get_weights()]).astype(np.float64)
    chief = dist.comm.bcast(mine if RANK == 0 else None)
    assert np.array_equal(mine, chief), f"{what}: rank {RANK}'s weights differ from rank 0's"
    return worst


def assert_same_logs(h_dist, h_ref, rtol, what):
    assert h_dist.history.keys() == h_ref.history.keys(), (what, h_dist.history, h_ref.history)
    for key, values in h_ref.history.items():
        assert len(h_dist.history[key]) == len(values), (what, key)
        for a, b in zip(h_dist.history[key], values):
            assert abs(a - b) <= rtol * max(abs(b), 1e-12), f"{what}: log {key} {a!r} vs {b!r}"


def make_model(cell, seed, dtype, head, clip, return_sequences=False, units=6):
    layers = [cell(units, return_sequences=return_sequences, dtype=dtype, seed=seed)]
    if head == "softmax":
        layers.append(rnnkit.Dense(3, activation="softmax", dtype=dtype, seed=seed + 1))
        loss = "sparse_categorical_crossentropy"
        metrics = ["accuracy"]
    else:
        layers.append(rnnkit.Dense(2, dtype=dtype, seed=seed + 1))
        loss = "mse"
        metrics = ["mae"]
    model = rnnkit.Sequential(layers)
    model.compile(optimizer=rnnkit.optimizers.Adam(0.02, **clip), loss=loss, metrics=metrics)
    return model


def data(n, t, i, head, seq, rng, dtype):
    x = rng.standard_normal((n, t, i)).astype(dtype)
    shape = (n, t) if seq else (n,)
    if head == "softmax":
        y = rng.integers(0, 3, size=shape)
    else:
        y = rng.standard_normal((*shape, 2)).astype(dtype)
    return x, y


# -- 1. exactness: 20 steps with N ranks == one process, float64 --------------------------------------
CASES = [
    # cell, head, clip (thresholds small enough to clip), samples, batch, masked sequence output
    (rnnkit.SimpleRNN, "softmax", {"global_clipnorm": 0.05}, 97, 10, False),   # last batch 7 rows
    (rnnkit.LSTM, "mse", {"clipnorm": 0.02}, 91, 10, True),                    # last batch 1 row
    (rnnkit.GRU, "softmax", {"clipvalue": 0.003}, 95, 10, True),               # last batch 5 rows
]
worst = {}
for k, (cell, head, clip, n, batch, seq) in enumerate(CASES):
    what = f"{cell.__name__}+Dense({head}) {clip}"
    rng = np.random.default_rng(100 + k)
    x, y = data(n, 7, 3, head, seq, rng, "float64")
    lengths = rng.integers(1, 8, size=n) if seq else None
    sw = rng.uniform(0.5, 2.0, size=n)
    x_val, y_val = data(23, 7, 3, head, seq, rng, "float64")
    x_pre, y_pre = data(12, 7, 3, head, seq, np.random.default_rng(7 + RANK), "float64")
    x_pre0, y_pre0 = data(12, 7, 3, head, seq, np.random.default_rng(7), "float64")   # rank 0's
    epochs = 2
    kwargs = dict(epochs=epochs, batch_size=batch, verbose=0, seed=3, lengths=lengths,
                  sample_weight=sw, validation_data=(x_val, y_val))

    ref = make_model(cell, 10, "float64", head, clip, seq)
    ref.fit(x_pre0, y_pre0, epochs=1, batch_size=6, verbose=0, shuffle=False)   # as rank 0 does
    h_ref = ref.fit(x, y, **kwargs)
    steps = ref.optimizer.iterations
    assert steps == 2 + epochs * -(-n // batch) == 22, steps    # 2 pre-training steps + 20 steps

    # rank 0 builds the reference's model and pre-trains it alike; the other ranks start elsewhere
    # (other seeds, other pre-training data, so other optimizer slots): the broadcast must fix that
    model = make_model(cell, 10 if RANK == 0 else 50 + RANK, "float64", head, clip, seq)
    model.fit(x_pre, y_pre, epochs=1, batch_size=6 if RANK == 0 else 4, verbose=0, shuffle=False)
    h = model.fit(x, y, distributed="mpi", **kwargs)
    assert model.optimizer.iterations == steps
    worst[what] = assert_same_weights(model, ref, 1e-10, what)
    assert_same_logs(h, h_ref, 1e-10, what)
    for var_d, var_r in zip(model.weights, ref.weights):   # optimizer slots too
        for name, slot in model.optimizer.slots(var_d).items():
            assert rel_diff(slot, ref.optimizer.slots(var_r)[name]) <= 1e-9, (what, name)

    # evaluate and predict: the single-process values, on every rank
    ev_ref = ref.evaluate(x, y, batch_size=batch, verbose=0, lengths=lengths, sample_weight=sw)
    ev = model.evaluate(x, y, batch_size=batch, verbose=0, lengths=lengths, sample_weight=sw,
                        distributed="mpi")
    assert np.allclose(ev, ev_ref, rtol=1e-12, atol=0), (what, ev, ev_ref)
    p_ref = ref.predict(x, batch_size=batch, lengths=lengths)
    p = model.predict(x, batch_size=batch, lengths=lengths, distributed="mpi")
    assert p.shape == p_ref.shape and rel_diff(p, p_ref) <= 1e-12, (what, rel_diff(p, p_ref))
    p_chief = dist.comm.bcast(p if RANK == 0 else None)
    assert np.array_equal(p, p_chief)
check("exactness float64, broadcast, uneven/empty pieces, logs, evaluate, predict")
results["worst_rel_diff_float64"] = worst

# -- 2. float32: rounding level ----------------------------------------------------------------------
rng = np.random.default_rng(5)
x, y = data(97, 7, 3, "softmax", False, rng, "float32")
ref = make_model(rnnkit.LSTM, 20, "float32", "softmax", {"global_clipnorm": 1.0})
ref.fit(x, y, epochs=2, batch_size=10, verbose=0, seed=1)
model = make_model(rnnkit.LSTM, 20, "float32", "softmax", {"global_clipnorm": 1.0})
model.fit(x, y, epochs=2, batch_size=10, verbose=0, seed=1, distributed="mpi")
results["worst_rel_diff_float32"] = assert_same_weights(model, ref, 1e-4, "float32 LSTM")
check("float32 rounding level")

# -- 3. output and files only on rank 0; chief_only callbacks; every rank stops together -----------


class Recorder(rnnkit.callbacks.Callback):
    chief_only = True

    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


class SaveEachEpoch(rnnkit.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.save(os.path.join(OUT_DIR, f"epoch{epoch}-rank{RANK}.npz"))


class StopOnRankOne(rnnkit.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if RANK == 1 and epoch == 1:
            self.model.stop_training = True


x, y = data(40, 5, 3, "softmax", False, np.random.default_rng(9), "float64")
model = make_model(rnnkit.GRU, 30, "float64", "softmax", {})
recorder = Recorder()
out = io.StringIO()
with contextlib.redirect_stdout(out):
    print(f"rank {RANK} before")
    h = model.fit(x, y, epochs=5, batch_size=8, verbose=2, seed=0, distributed="mpi",
                  callbacks=[recorder, SaveEachEpoch(), StopOnRankOne()])
    model.evaluate(x, y, verbose=1, distributed="mpi")
    model.predict(x, verbose=1, distributed="mpi")
    print(f"rank {RANK} after")
text = out.getvalue()
assert text.startswith(f"rank {RANK} before") and text.endswith(f"rank {RANK} after\n"), text
if RANK == 0:
    assert "Epoch 1/5" in text and "loss:" in text, text
else:
    assert text == f"rank {RANK} before\nrank {RANK} after\n", text   # nothing printed in between
assert recorder.epochs == ((2 if RANK == 0 else 0) if SIZE > 1 else 5), recorder.epochs
assert len(h.history["loss"]) == (2 if SIZE > 1 else 5), h.history
dist.comm.Barrier()
saved = sorted(f for f in os.listdir(OUT_DIR) if f.endswith(".npz"))
expected = ["epoch0-rank0.npz", "epoch1-rank0.npz"] if SIZE > 1 else [f"epoch{e}-rank0.npz" for e in range(5)]
assert saved == expected, saved
# straight to mpiexec's output: the test counts these lines (one per run, from rank 0)
model.fit(x, y, epochs=1, batch_size=8, verbose=2, seed=0, distributed="mpi")
model.evaluate(x, y, verbose=1, distributed="mpi")
sys.stdout.flush()
check("rank-0-only output and saving, chief_only, agreed stop")

# EarlyStopping: decided on the reduced logs, the same epoch as one process
x, y = data(50, 5, 3, "mse", False, np.random.default_rng(11), "float64")
x_val, y_val = data(20, 5, 3, "mse", False, np.random.default_rng(12), "float64")
runs = []
for distributed in (None, "mpi"):
    model = make_model(rnnkit.SimpleRNN, 40, "float64", "mse", {})
    model.optimizer.learning_rate = 0.3   # overshoots: val_loss soon stops improving
    stop = rnnkit.callbacks.EarlyStopping(patience=1, restore_best_weights=True)
    h = model.fit(x, y, epochs=30, batch_size=7, verbose=0, seed=2, callbacks=[stop],
                  validation_data=(x_val, y_val), distributed=distributed)
    runs.append((len(h.history["loss"]), model))
assert runs[0][0] == runs[1][0] < 30, (runs[0][0], runs[1][0])
assert_same_weights(runs[1][1], runs[0][1], 1e-10, "EarlyStopping")
check("EarlyStopping")

# -- 4. errors raised on every rank ---------------------------------------------------------------
model = make_model(rnnkit.GRU, 30, "float64", "softmax", {})
x, y = data(40, 5, 3, "softmax", False, np.random.default_rng(9), "float64")
try:
    model.fit(x, y, epochs=1, batch_size=8 + (RANK % 2), verbose=0, distributed="mpi")
except ValueError as exc:
    assert SIZE > 1 and "batch_size" in str(exc) and "rank 1 differs from rank 0" in str(exc), exc
else:
    assert SIZE == 1
stateful = rnnkit.Sequential([rnnkit.LSTM(4, stateful=True), rnnkit.Dense(1)])
stateful.compile(optimizer="adam", loss="mse")
try:
    stateful.fit(x, np.zeros((40, 1)), batch_size=8, verbose=0, distributed="mpi")
except ValueError as exc:
    assert "stateful" in str(exc), exc
else:
    raise AssertionError("a stateful layer was accepted")
assert sys.stdout is STDOUT   # restored after the errors


# seed=None: rank 0 draws the shuffling seed and every rank uses it
from rnnkit._data import prepare_data as _prepare_data  # noqa: E402

dist.begin(model, "fit")
try:
    seed = dist.prepare_fit(model, _prepare_data(x, y, None, None, None), None, [], None, 8, 1, True)[3]
finally:
    dist.end(model)
assert isinstance(seed, int) and len(set(dist.comm.allgather(seed))) == 1, seed


class Diverge(rnnkit.callbacks.Callback):   # as if the MPI library's sums differed on the last rank
    def on_train_end(self, logs=None):
        if RANK == SIZE - 1 and SIZE > 1:
            w = self.model.get_weights()
            w[0][0, 0] += 1.0
            self.model.set_weights(w)


with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, distributed="mpi", callbacks=[Diverge()])
if SIZE > 1:
    assert [str(c.message) for c in caught if "differ from rank 0's" in str(c.message)], caught
mine = np.concatenate([w.reshape(-1) for w in model.get_weights()])
assert np.array_equal(mine, dist.comm.bcast(mine if RANK == 0 else None))   # rank 0's everywhere
print_check = io.StringIO()
with contextlib.redirect_stdout(print_check):
    print("still printing")
assert print_check.getvalue() == "still printing\n"
check("errors")

if RANK == 0:
    with open(os.path.join(OUT_DIR, "result.json"), "w") as f:
        json.dump(results, f)
