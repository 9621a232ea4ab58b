"""Learning-rate schedules and callbacks: Keras 3's documented formulas and decisions, on hand-made
logs; with keras installed (torch backend), the same schedule values and callback decisions from
Keras's own classes fed the same logs."""

from __future__ import annotations

import csv
import math
import os
import warnings

import numpy as np
import pytest

import rnnkit
from rnnkit import callbacks, optimizers
from rnnkit.optimizers import schedules


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _value(t):
    """A Keras (torch) scalar as a float (keras.ops.convert_to_numpy warns under NumPy 2)."""
    return float(t.item() if hasattr(t, "item") else t)


STEPS = [0, 1, 2, 5, 9, 10, 11, 15, 20, 99, 100, 101, 250, 1000]

SCHEDULES = {
    "exp": (lambda m: m.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5),
            lambda s: 0.1 * 0.5 ** (s / 10)),
    "exp_stair": (lambda m: m.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True),
                  lambda s: 0.1 * 0.5 ** math.floor(s / 10)),
    "inv": (lambda m: m.InverseTimeDecay(0.2, decay_steps=5, decay_rate=0.3),
            lambda s: 0.2 / (1 + 0.3 * s / 5)),
    "inv_stair": (lambda m: m.InverseTimeDecay(0.2, decay_steps=5, decay_rate=0.3, staircase=True),
                  lambda s: 0.2 / (1 + 0.3 * math.floor(s / 5))),
    "piecewise": (lambda m: m.PiecewiseConstantDecay([10, 100], [1.0, 0.5, 0.1]),
                  lambda s: 1.0 if s <= 10 else 0.5 if s <= 100 else 0.1),
    "cosine": (lambda m: m.CosineDecay(0.1, decay_steps=100, alpha=0.1),
               lambda s: 0.1 * (0.9 * 0.5 * (1 + math.cos(math.pi * min(s, 100) / 100)) + 0.1)),
    "cosine_warmup": (lambda m: m.CosineDecay(0.0, decay_steps=100, warmup_target=0.2, warmup_steps=10),
                      lambda s: 0.2 * s / 10 if s < 10 else
                      0.2 * 0.5 * (1 + math.cos(math.pi * (min(s, 110) - 10) / 100))),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_formulas(name):
    make, formula = SCHEDULES[name]
    schedule = make(schedules)
    for s in STEPS:
        assert schedule(s) == pytest.approx(formula(s), rel=1e-12, abs=1e-15), s
    clone = schedules.deserialize(schedules.serialize(schedule))
    assert [clone(s) for s in STEPS] == [schedule(s) for s in STEPS]


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_values_match_keras(name):
    keras = _keras()
    make, _ = SCHEDULES[name]
    ours, theirs = make(schedules), make(keras.optimizers.schedules)
    for s in STEPS:
        np.testing.assert_allclose(ours(s), _value(theirs(s)),
                                   rtol=2e-6, atol=1e-9, err_msg=f"step {s}")


def test_schedule_drives_the_optimizer_step_by_step():
    schedule = schedules.ExponentialDecay(0.5, decay_steps=2, decay_rate=0.1)
    opt = optimizers.SGD(learning_rate=schedule)
    var = np.zeros(1)
    for step in range(4):
        assert opt.learning_rate == pytest.approx(schedule(step))
        before = var.copy()
        opt.apply([np.ones(1)], [var])
        np.testing.assert_allclose(before - var, schedule(step))   # SGD: var -= lr(iterations) * g
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1
    config = optimizers.serialize(opt)
    again = optimizers.deserialize(config)
    assert again.schedule == schedule
    # accepted wherever a learning rate is: compile, save and load
    model = rnnkit.Sequential([rnnkit.Input((3, 2)), rnnkit.SimpleRNN(2), rnnkit.Dense(1)])
    model.compile(optimizers.Adam(schedules.CosineDecay(1e-2, 50, warmup_target=2e-2, warmup_steps=5)),
                  "mse")
    x = np.random.default_rng(0).normal(size=(8, 3, 2))
    model.fit(x, x[:, 0, :1], epochs=2, batch_size=4, verbose=0)
    assert model.optimizer.iterations == 4


def test_schedule_bad_arguments():
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="1 less"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0])
    with pytest.raises(TypeError, match="initial_learning_rate"):
        schedules.CosineDecay("fast", 10)
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.CosineDecay(0.1, -5)


# ---------------------------------------------------------------------------------------------
# callbacks on hand-made logs
# ---------------------------------------------------------------------------------------------


class FakeModel:
    """What callbacks touch: weights, optimizer, stop_training, save / save_weights."""

    def __init__(self, lr=0.1):
        self.optimizer = optimizers.SGD(learning_rate=lr)
        self.stop_training = False
        self.weights = [np.zeros(2)]
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]

    def save(self, path):
        self.saved.append(path)

    save_weights = save


def _run_epochs(cb, model, values, key="val_loss", extra=None):
    """Feed ``values`` as the epoch logs; returns the epochs at whose end training was stopped and
    the logs after each epoch (callbacks may add to them)."""
    cb.set_model(model)
    cb.on_train_begin({})
    stops, seen = [], []
    for epoch, v in enumerate(values):
        model.weights = [np.full(2, float(epoch))]
        cb.on_epoch_begin(epoch, {})
        logs = {key: v, **(extra or {})}
        cb.on_epoch_end(epoch, logs)
        seen.append(logs)
        if model.stop_training:
            stops.append(epoch)
            break
    cb.on_train_end({})
    return stops, seen


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


LOSSES = [1.0, 0.8, 0.81, 0.79, 0.795, 0.9, 0.7, 0.71, 0.72, 0.73, 0.74]


@pytest.mark.parametrize("kwargs, stop_at, best_epoch", [
    ({"patience": 0}, 2, 1),
    ({"patience": 2}, 5, 3),
    ({"patience": 2, "min_delta": 0.05}, 3, 1),
    ({"patience": 3, "start_from_epoch": 2}, 9, 6),
    ({"patience": 2, "baseline": 0.75}, 2, 1),
    ({"patience": 1, "mode": "max"}, 1, 0),
])
def test_early_stopping_decisions(kwargs, stop_at, best_epoch):
    model = FakeModel()
    stop = callbacks.EarlyStopping(restore_best_weights=True, **kwargs)
    stops, _ = _run_epochs(stop, model, LOSSES)
    assert stops == [stop_at] and stop.stopped_epoch == stop_at and stop.best_epoch == best_epoch
    np.testing.assert_array_equal(model.weights[0], np.full(2, float(best_epoch)))  # restored


def test_early_stopping_restores_without_stopping_and_refuses_unknown_keys():
    model = FakeModel()
    stop = callbacks.EarlyStopping(monitor="loss", patience=50, restore_best_weights=True)
    stops, _ = _run_epochs(stop, model, LOSSES, key="loss")
    assert stops == [] and stop.best_epoch == 6
    np.testing.assert_array_equal(model.weights[0], np.full(2, 6.0))   # Keras 3: restored at the end
    with pytest.raises(ValueError, match="maximized or minimized"):
        _run_epochs(callbacks.EarlyStopping(monitor="val_f1"), FakeModel(), [1.0], key="val_f1")
    assert callbacks.EarlyStopping(monitor="val_f1", mode="max").mode == "max"
    assert callbacks.EarlyStopping(monitor="val_mae").mode == "min"


def test_reduce_lr_on_plateau_decisions():
    model = FakeModel(lr=0.1)
    cb = callbacks.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=1, min_lr=0.02, min_delta=0.0)
    _, logs = _run_epochs(cb, model, LOSSES)
    lrs = [entry["learning_rate"] for entry in logs]   # the rate before each epoch end's decision
    # e2: no improvement for 1 epoch -> 0.05 (cooldown 1); e3 improves; e4 -> 0.025; e5 (cooldown
    # over) -> 0.02 = min_lr; the rate never goes below min_lr
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.02, 0.02, 0.02, 0.02, 0.02])
    assert model.optimizer.learning_rate == pytest.approx(0.02)
    with pytest.raises(ValueError, match="factor"):
        callbacks.ReduceLROnPlateau(factor=1.0)


def test_learning_rate_scheduler_csv_logger_lambda_and_nan(tmp_path, capsys):
    model = FakeModel(lr=0.1)
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch >= 2 else lr)
    _, logs = _run_epochs(sched, model, [1.0, 0.9, 0.8, 0.7])
    assert [entry["learning_rate"] for entry in logs] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    one_arg = callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))
    _run_epochs(one_arg, model, [1.0, 0.9])
    assert model.optimizer.learning_rate == pytest.approx(0.02)
    with pytest.raises(ValueError, match="float"):
        _run_epochs(callbacks.LearningRateScheduler(lambda epoch, lr: "fast"), model, [1.0])

    path = tmp_path / "log.csv"
    logger = callbacks.CSVLogger(path)
    _run_epochs(logger, FakeModel(), [0.5, 0.25], key="loss", extra={"accuracy": 0.75})
    rows = _read_csv(path)
    assert rows == [["epoch", "accuracy", "loss", "val_accuracy", "val_loss"],
                    ["0", "0.75", "0.5", "NA", "NA"], ["1", "0.75", "0.25", "NA", "NA"]]
    _run_epochs(callbacks.CSVLogger(path, separator=";", append=True), FakeModel(), [0.125], key="loss")
    with open(path) as f:   # the columns come from this run's first epoch (Keras)
        assert f.read().splitlines()[-1] == "0;0.125;NA"

    events = []
    lam = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: events.append((epoch, logs["loss"])),
                                   on_train_begin=lambda logs: events.append("begin"))
    _run_epochs(lam, FakeModel(), [3.0, 2.0], key="loss")
    assert events == ["begin", (0, 3.0), (1, 2.0)]
    with pytest.raises(TypeError, match="unknown hook"):
        callbacks.LambdaCallback(on_epoch_finished=print)

    model = FakeModel()
    nan = callbacks.TerminateOnNaN()
    nan.set_model(model)
    nan.on_train_batch_end(0, {"loss": 1.0})
    assert not model.stop_training
    nan.on_train_batch_end(1, {"loss": float("nan")})
    assert model.stop_training and "Batch 1: Invalid loss" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="NaN or Inf"):
        callbacks.TerminateOnNaN(raise_error=True).on_train_batch_end(3, {"loss": float("inf")})


def test_model_checkpoint_decisions(tmp_path):
    model = FakeModel()
    best = callbacks.ModelCheckpoint(str(tmp_path / "m{epoch:02d}-{val_loss:.2f}.npz"),
                                     save_best_only=True)
    _run_epochs(best, model, LOSSES)
    saved = [os.path.basename(p) for p in model.saved]
    assert saved == ["m01-1.00.npz", "m02-0.80.npz", "m04-0.79.npz", "m07-0.70.npz"]
    model = FakeModel()
    every = callbacks.ModelCheckpoint(tmp_path / "w.npz", save_weights_only=True, save_freq="epoch")
    _run_epochs(every, model, [1.0, 2.0, 3.0])
    assert len(model.saved) == 3
    model = FakeModel()
    acc = callbacks.ModelCheckpoint(tmp_path / "a.npz", monitor="val_accuracy", save_best_only=True,
                                    initial_value_threshold=0.5)
    _run_epochs(acc, model, [0.4, 0.6, 0.55, 0.7], key="val_accuracy")
    assert len(model.saved) == 2 and acc.best == 0.7
    with pytest.raises(ValueError, match="\\.npz"):
        callbacks.ModelCheckpoint(tmp_path / "x.keras")
    with pytest.raises(ValueError, match="save_freq"):
        callbacks.ModelCheckpoint(tmp_path / "x.npz", save_freq="sometimes")


def test_callbacks_in_fit(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5, 2))
    y = x.sum(axis=(1, 2))[:, None]
    model = rnnkit.Sequential([rnnkit.Input((5, 2)), rnnkit.GRU(4, seed=0), rnnkit.Dense(1, seed=1)])
    model.compile(optimizers.Adam(1e-2), "mse")
    path = tmp_path / "best.npz"
    cbs = [callbacks.ModelCheckpoint(path, save_best_only=True),
           callbacks.ReduceLROnPlateau(patience=1, factor=0.5),
           callbacks.CSVLogger(tmp_path / "train.csv")]
    history = model.fit(x, y, epochs=4, batch_size=10, validation_split=0.25, verbose=0, callbacks=cbs)
    assert "learning_rate" in history.history   # History runs last, as in Keras
    assert len(_read_csv(tmp_path / "train.csv")) == 5
    best = rnnkit.load_model(path)
    assert best.evaluate(x[30:], y[30:], verbose=0) == pytest.approx(min(history.history["val_loss"]),
                                                                      rel=1e-5)
    model.save_weights(tmp_path / "w.npz")
    other = rnnkit.Sequential([rnnkit.Input((5, 2)), rnnkit.GRU(4), rnnkit.Dense(1)])
    other.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(other.predict(x), model.predict(x))
    # a batch hook stopping training ends the epoch after that batch (Keras 3)
    seen = []
    stopper = callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: (seen.append(batch),
                                                setattr(model, "stop_training", batch == 1)))
    history = model.fit(x, y, epochs=3, batch_size=10, verbose=0, callbacks=[stopper])
    assert seen == [0, 1] and len(history.history["loss"]) == 1


# ---------------------------------------------------------------------------------------------
# Keras twins: Keras's own callbacks fed the same logs
# ---------------------------------------------------------------------------------------------


def _keras_model(keras, lr=0.1):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    return model


def _keras_run(keras, cb, model, values, key="val_loss"):
    with warnings.catch_warnings():
        # keras.ops.convert_to_numpy (called by Keras's callbacks) warns under NumPy 2
        warnings.simplefilter("ignore", DeprecationWarning)
        return _keras_epochs(keras, cb, model, values, key)


def _keras_epochs(keras, cb, model, values, key):
    cb.set_model(model)
    cb.on_train_begin({})
    stops, lrs = [], []
    for epoch, v in enumerate(values):
        cb.on_epoch_begin(epoch, {})
        logs = {key: v}
        cb.on_epoch_end(epoch, logs)
        lrs.append(_value(model.optimizer.learning_rate))
        if model.stop_training:
            stops.append(epoch)
            break
    return stops, lrs


@pytest.mark.parametrize("kwargs", [{"patience": 0}, {"patience": 2}, {"patience": 2, "min_delta": 0.05},
                                    {"patience": 3, "start_from_epoch": 2},
                                    {"patience": 2, "baseline": 0.75}, {"patience": 1, "mode": "max"}])
def test_early_stopping_matches_keras(kwargs):
    keras = _keras()
    theirs = keras.callbacks.EarlyStopping(**kwargs)
    k_stops, _ = _keras_run(keras, theirs, _keras_model(keras), LOSSES)
    ours = callbacks.EarlyStopping(**kwargs)
    stops, _ = _run_epochs(ours, FakeModel(), LOSSES)
    assert stops == k_stops and ours.wait == theirs.wait and ours.best == pytest.approx(theirs.best)


@pytest.mark.parametrize("kwargs", [{"factor": 0.5, "patience": 1, "cooldown": 1, "min_lr": 0.02,
                                     "min_delta": 0.0},
                                    {"factor": 0.2, "patience": 2},
                                    {"patience": 0, "min_delta": 0.05, "mode": "min"}])
def test_reduce_lr_matches_keras(kwargs):
    keras = _keras()
    _, k_lrs = _keras_run(keras, keras.callbacks.ReduceLROnPlateau(**kwargs), _keras_model(keras), LOSSES)
    model = FakeModel()
    cb = callbacks.ReduceLROnPlateau(**kwargs)
    cb.set_model(model)
    cb.on_train_begin({})
    lrs = []
    for epoch, v in enumerate(LOSSES):
        cb.on_epoch_end(epoch, {"val_loss": v})
        lrs.append(model.optimizer.learning_rate)
    np.testing.assert_allclose(lrs, k_lrs, rtol=1e-6)


def test_model_checkpoint_and_scheduler_match_keras(tmp_path):
    keras = _keras()
    saved = []
    k_model = _keras_model(keras)
    k_model.save = lambda path, overwrite=True: saved.append(os.path.basename(path))
    k_cb = keras.callbacks.ModelCheckpoint(str(tmp_path / "m{epoch:02d}-{val_loss:.2f}.keras"),
                                           save_best_only=True)
    _keras_run(keras, k_cb, k_model, LOSSES)
    model = FakeModel()
    _run_epochs(callbacks.ModelCheckpoint(str(tmp_path / "m{epoch:02d}-{val_loss:.2f}.npz"),
                                          save_best_only=True), model, LOSSES)
    assert [os.path.basename(p)[:-4] for p in model.saved] == [s[:-6] for s in saved]

    fn = lambda epoch, lr: lr if epoch < 2 else lr * 0.9  # noqa: E731
    _, k_lrs = _keras_run(keras, keras.callbacks.LearningRateScheduler(fn), _keras_model(keras), [1.0] * 5)
    _, logs = _run_epochs(callbacks.LearningRateScheduler(fn), FakeModel(), [1.0] * 5)
    np.testing.assert_allclose([entry["learning_rate"] for entry in logs], k_lrs, rtol=1e-6)
