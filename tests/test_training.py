"""The training toolkit: core layers (gradients vs finite differences), ops.dense (native vs
reference), Sequential (fit / evaluate / predict / summary / save), masks, callbacks, datasets and the
``rnnkit`` command.

Gradient checks run in float64 with central differences (step 1e-6) and compare with
``assert_allclose(rtol=1e-6, atol=1e-8)``; native vs reference uses the tolerances of docs/SPEC.md §14.1
(relative norm of the difference ≤ 1e-10 in float64, ≤ 1e-5 in float32).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from _native_required import require_native, skip_or_fail
from numerics import assert_rel_close, numeric_grad

import rnnkit
from rnnkit import callbacks, cli, datasets, ops, optimizers, reference
from rnnkit import _backend
from rnnkit.layers import (GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, Flatten, Masking,
                           SimpleRNN)
from rnnkit.models import Sequential, load_model

DENSE_ACTIVATIONS = ["linear", "relu", "tanh", "sigmoid", "softmax", "hard_sigmoid"]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def check_layer_gradients(layer, x, rng, check_input=True):
    """Compare layer.backward with finite differences of L = sum(layer(x) * R)."""
    y = layer(x, training=True)
    r = rng.normal(size=y.shape)
    dx = layer.backward(r)
    grads = [g.copy() for g in layer.grads]

    def loss():
        return float(np.sum(layer(x, training=False) * r))

    for w, g, name in zip(layer.weights, grads, layer.weight_names):
        np.testing.assert_allclose(g, numeric_grad(loss, w), rtol=1e-6, atol=1e-8, err_msg=name)
    if check_input:
        np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8, err_msg="dx")


def sum_sign_data(n=384, steps=10, seed=0):
    """Sequences of 1 feature; label 1 when their sum is positive."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, 1)).astype(np.float32)
    return x, (x.sum(axis=(1, 2)) > 0).astype(np.int64)


def small_classifier(seed=0):
    model = Sequential([SimpleRNN(16, seed=seed), Dense(2, activation="softmax", seed=seed + 1)])
    model.compile(optimizer=optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


# ---------------------------------------------------------------------------------------------
# reference.dense / ops.dense
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["linear", "relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_reference_dense_matches_finite_differences(activation, use_bias):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 3))
    kernel = rng.normal(size=(3, 4))
    bias = rng.normal(size=4) if use_bias else None
    y, cache = reference.dense_forward(x, kernel, bias, activation)
    r = rng.normal(size=y.shape)
    dx, dk, db = reference.dense_backward(r, cache)

    def loss():
        return float(np.sum(reference.dense_forward(x, kernel, bias, activation, training=False)[0] * r))

    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dk, numeric_grad(loss, kernel), rtol=1e-6, atol=1e-8)
    if use_bias:
        np.testing.assert_allclose(db, numeric_grad(loss, bias), rtol=1e-6, atol=1e-8)
    else:
        assert db is None


def _native_dense_impl():
    require_native()
    impl = _backend._load_native()
    if not hasattr(impl, "dense_forward"):
        skip_or_fail("native module has no dense kernel")
    return impl


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
@pytest.mark.parametrize("activation", ["linear", "relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 5, 3), (65, 33, 17)])
def test_ops_dense_native_matches_reference(dtype, tol, activation, shape):
    _native_dense_impl()
    n, i, u = shape
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, i)).astype(dtype)
    kernel = rng.normal(size=(i, u)).astype(dtype)
    bias = rng.normal(size=u).astype(dtype)
    d_y = rng.normal(size=(n, u)).astype(dtype)
    results = {}
    previous = rnnkit.get_backend()
    try:
        for backend in ("native", "python"):
            rnnkit.set_backend(backend)
            y, cache = ops.dense_forward(x, kernel, bias, activation)
            results[backend] = (y, *ops.dense_backward(d_y, cache))
    finally:
        rnnkit.set_backend(previous)
    for name, got, want in zip(("y", "dx", "d_kernel", "d_bias"), results["native"], results["python"]):
        assert got.dtype == np.dtype(dtype), name
        assert_rel_close(got, want, tol, name)


def test_ops_dense_validates_arguments():
    kernel = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"x must have shape \(rows, 3\), got \(2, 5\)"):
        ops.dense_forward(np.zeros((2, 5)), kernel)
    with pytest.raises(ValueError, match="bias must have shape"):
        ops.dense_forward(np.zeros((2, 3)), kernel, np.zeros(3))
    with pytest.raises(TypeError, match="kernel must be a float32 or float64"):
        ops.dense_forward(np.zeros((2, 3)), np.zeros((3, 4), dtype=int))
    with pytest.raises(ValueError, match="activation must be one of"):
        ops.dense_forward(np.zeros((2, 3)), kernel, activation="softmax")
    y, cache = ops.dense_forward(np.zeros((2, 3)), kernel)
    with pytest.raises(ValueError, match=r"d_y must have shape \(2, 4\)"):
        ops.dense_backward(np.zeros((2, 5)), cache)
    with pytest.raises(ValueError, match="cache is None"):
        ops.dense_backward(np.zeros((2, 4)), None)


def test_ops_dense_empty_batch_and_dtype():
    kernel = np.ones((3, 2), dtype=np.float32)
    y, cache = ops.dense_forward(np.zeros((0, 3)), kernel, np.ones(2, np.float32), "relu")
    assert y.shape == (0, 2) and y.dtype == np.float32
    dx, dk, db = ops.dense_backward(np.zeros((0, 2)), cache)
    assert dx.shape == (0, 3) and not dk.any() and not db.any()
    y, _ = ops.dense_forward(np.ones((2, 3), dtype=np.int64), kernel, training=False)
    assert y.dtype == np.float32 and np.all(y == 3)


# ---------------------------------------------------------------------------------------------
# core layers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", DENSE_ACTIVATIONS)
@pytest.mark.parametrize("input_shape", [(4, 3), (2, 3, 3)])
def test_dense_gradients(activation, input_shape):
    rng = np.random.default_rng(3)
    layer = Dense(5, activation=activation, bias_initializer="random_normal", dtype="float64", seed=4)
    check_layer_gradients(layer, rng.normal(size=input_shape), rng)


def test_dense_without_bias_and_shapes():
    layer = Dense(4, use_bias=False, seed=0)
    y = layer(np.ones((2, 7, 3)), training=True)
    assert y.shape == (2, 7, 4) and y.dtype == np.float32
    assert [w.shape for w in layer.weights] == [(3, 4)] and layer.count_params() == 12
    layer.backward(np.ones_like(y))
    assert [g.shape for g in layer.grads] == [(3, 4)]
    assert layer.compute_output_shape((None, 7, 3)) == (None, 7, 4)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\)"):
        layer(np.ones((2, 5)))


def test_dense_softmax_from_logits_equals_chain_rule():
    rng = np.random.default_rng(5)
    layer = Dense(4, activation="softmax", dtype="float64", seed=1)
    x = rng.normal(size=(6, 3))
    p = layer(x, training=True)
    d_p = rng.normal(size=p.shape)
    dx_chain = layer.backward(d_p)
    grads_chain = layer.grads
    d_logits = p * (d_p - np.sum(d_p * p, axis=-1, keepdims=True))  # softmax Jacobian-vector product
    dx_logits = layer.backward(d_logits, from_logits=True)
    np.testing.assert_allclose(dx_logits, dx_chain, rtol=1e-12, atol=1e-14)
    for a, b in zip(layer.grads, grads_chain):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_embedding_gradient_accumulates_repeated_indices():
    rng = np.random.default_rng(6)
    layer = Embedding(7, 3, dtype="float64", seed=0)
    ids = np.array([[1, 2, 1, 0], [6, 6, 6, 3]])
    y = layer(ids, training=True)
    assert y.shape == (2, 4, 3)
    np.testing.assert_array_equal(y[1, 0], layer.weights[0][6])
    r = rng.normal(size=y.shape)
    assert layer.backward(r) is None

    def loss():
        return float(np.sum(layer(ids) * r))

    np.testing.assert_allclose(layer.grads[0], numeric_grad(loss, layer.weights[0]), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(layer.grads[0][6], r[1, :3].sum(axis=0))
    assert not layer.grads[0][[4, 5]].any()


def test_embedding_checks_indices_and_masks():
    layer = Embedding(5, 2, mask_zero=True)
    layer(np.array([[1, 2, 0]]))
    np.testing.assert_array_equal(layer.compute_mask(None), [[True, True, False]])
    np.testing.assert_array_equal(layer.compute_mask(np.array([[True, False, True]])), [[True, False, False]])
    with pytest.raises(ValueError, match=r"indices in \[0, input_dim\) = \[0, 5\), got 5"):
        layer(np.array([[1, 5]]))
    with pytest.raises(ValueError, match="integer indices"):
        layer(np.array([[0.5]]))
    plain = Embedding(5, 2)
    plain(np.array([[1, 2]]))
    mask = np.array([[True, False]])
    assert plain.compute_mask(mask) is mask  # an incoming mask (lengths=) passes through


def test_flatten_and_masking_gradients():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 3, 4))
    check_layer_gradients(Flatten(), x, rng)
    assert Flatten().compute_output_shape((None, 3, 4)) == (None, 12)
    x[0, 2] = 0.0  # a masked step
    layer = Masking(mask_value=0.0)
    check_layer_gradients(layer, x, rng, check_input=False)
    y = layer(x, training=True)
    np.testing.assert_array_equal(layer.compute_mask(None), [[True, True, False], [True, True, True]])
    d = layer.backward(np.ones_like(y))
    assert not d[0, 2].any() and np.all(d[1] == 1)


def test_dropout_inverted_scaling_and_gradient():
    x = np.ones((200, 50))
    layer = Dropout(0.3, seed=0)
    np.testing.assert_array_equal(layer(x), x)  # inference: identity
    y = layer(x, training=True)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7)
    d = np.random.default_rng(0).normal(size=x.shape)
    np.testing.assert_allclose(layer.backward(d), d * y)  # y = x * scale with x = 1
    y2 = layer(x, training=True)
    assert not np.array_equal(y, y2)  # a new mask per call
    assert np.array_equal(Dropout(0.3, seed=0)(x, training=True), y)  # reproducible with a seed
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="rate must be in"):
            Dropout(bad)


def test_layer_configs_round_trip():
    for layer in (Dense(3, activation="tanh", use_bias=False, seed=2), Embedding(10, 4, mask_zero=True),
                  Flatten(), Dropout(0.25, seed=1), Masking(mask_value=-1.0)):
        config = json.loads(json.dumps(layer.get_config()))
        clone = type(layer).from_config(config)
        assert clone.get_config() == layer.get_config()


# ---------------------------------------------------------------------------------------------
# Sequential: training
# ---------------------------------------------------------------------------------------------


def test_fit_learns_sum_sign_and_is_reproducible():
    x, y = sum_sign_data()
    histories = []
    for _ in range(2):
        model = small_classifier(seed=0)
        histories.append(model.fit(x, y, epochs=8, batch_size=32, seed=0, verbose=0).history)
    h = histories[0]
    assert histories[0] == histories[1]  # same seeds -> identical training
    assert sorted(h) == ["accuracy", "loss"] and len(h["loss"]) == 8
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    x_test, y_test = sum_sign_data(n=500, seed=1)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.9, accuracy
    assert model.predict(x_test).shape == (500, 2)


def test_fused_softmax_gradient_equals_unfused():
    """The softmax + cross-entropy shortcut must give the same update as the chain rule."""
    x, y = sum_sign_data(n=64)
    fused = Sequential([SimpleRNN(8, seed=0, dtype="float64"),
                        Dense(3, activation="softmax", seed=1, dtype="float64")])
    plain = Sequential([SimpleRNN(8, seed=0, dtype="float64"),
                        Dense(3, activation="softmax", seed=1, dtype="float64")])
    fused.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    plain.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    plain._logits_loss = None  # disable the shortcut: loss gradient, then the softmax backward
    assert fused._uses_fused_softmax() and not plain._uses_fused_softmax()
    fused.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    plain.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_validation_split_and_data():
    x, y = sum_sign_data(n=100)
    model = small_classifier()
    h = model.fit(x, y, epochs=2, batch_size=16, validation_split=0.2, verbose=0, seed=0).history
    assert sorted(h) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    # the held-out part is the last 20 samples
    val_loss, val_acc = model.evaluate(x[80:], y[80:], verbose=0)
    np.testing.assert_allclose([h["val_loss"][-1], h["val_accuracy"][-1]], [val_loss, val_acc], rtol=1e-6)
    h = model.fit(x, y, epochs=1, validation_data=(x[:10], y[:10]), verbose=0).history
    assert "val_loss" in h


def test_fit_argument_errors():
    x, y = sum_sign_data(n=20)
    with pytest.raises(RuntimeError, match="compile"):
        Sequential([Dense(1)]).fit(x, y, verbose=0)
    model = small_classifier()
    with pytest.raises(ValueError, match="x and y must have the same number of samples, got 20 and 19"):
        model.fit(x, y[:19], verbose=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        model.fit(x, y, batch_size=0, verbose=0)
    for split in (-0.1, 1.0):
        with pytest.raises(ValueError, match="validation_split must be in"):
            model.fit(x, y, validation_split=split, verbose=0)
    with pytest.raises(ValueError, match="epochs"):
        model.fit(x, y, epochs=-1, verbose=0)
    with pytest.raises(ValueError, match="verbose"):
        model.fit(x, y, verbose=3)
    with pytest.raises(ValueError, match="either mask or lengths"):
        model.fit(x, y, lengths=np.full(20, 3), mask=np.ones((20, 10), bool), verbose=0)
    with pytest.raises(ValueError, match="lengths must be in"):
        model.fit(x, y, lengths=np.full(20, 11), verbose=0)
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile("adam", "mse", metrics=["f1"])


def test_verbose_modes(capsys):
    x, y = sum_sign_data(n=64)
    model = small_classifier()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x)
    assert capsys.readouterr().out == ""

    model.fit(x, y, epochs=2, batch_size=16, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert re.match(r"4/4 - .* - loss: \d\.\d{4} - accuracy: \d\.\d{4}$", lines[1]), lines[1]

    model.fit(x, y, epochs=1, batch_size=16, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/1\n") and out.endswith("\n")
    final = out.split("\r")[-1]
    assert re.match(r"4/4 \[=+\] - .*/step - loss: \d\.\d{4} - accuracy: \d\.\d{4}\s*$", final), final


def test_early_stopping_stops_and_restores():
    x, y = sum_sign_data(n=64)
    seen = []

    class Recorder(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.get_weights())

    model = small_classifier()
    stopper = callbacks.EarlyStopping(monitor="loss", min_delta=100.0, patience=2,
                                      restore_best_weights=True)
    h = model.fit(x, y, epochs=20, batch_size=16, verbose=0, callbacks=[stopper, Recorder()])
    assert len(h.history["loss"]) == 3 and stopper.stopped_epoch == 2 and stopper.best_epoch == 0
    for w, best in zip(model.get_weights(), seen[0]):
        np.testing.assert_array_equal(w, best)

    stopper = callbacks.EarlyStopping(patience=1)  # monitors val_loss
    with pytest.raises(ValueError, match="val_loss"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[stopper])
    assert callbacks.EarlyStopping(monitor="val_accuracy").mode == "max"


# ---------------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------------


def _padded_sequences(n=24, steps=7, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, steps + 1, size=n)
    x = rng.normal(size=(n, steps, 2))
    y = rng.normal(size=(n, steps, 1))
    return x, y, lengths, np.arange(steps) < lengths[:, None]


def _seq2seq(seed=0):
    model = Sequential([SimpleRNN(6, return_sequences=True, seed=seed, dtype="float64"),
                        Dense(1, seed=seed + 1, dtype="float64")])
    model.compile(optimizers.Adam(1e-2), "mse", metrics=["mae"])
    return model


def test_lengths_mask_reaches_the_loss():
    x, y, lengths, valid = _padded_sequences()
    model = _seq2seq()
    loss, mae = model.evaluate(x, y, lengths=lengths, verbose=0, batch_size=10)
    pred = model.predict(x, lengths=lengths)
    err = (pred - y)[valid]
    np.testing.assert_allclose(loss, np.mean(err ** 2), rtol=1e-12)
    np.testing.assert_allclose(mae, np.mean(np.abs(err)), rtol=1e-12)

    # garbage at padded steps changes neither the loss nor training
    x2, y2 = x.copy(), y.copy()
    rng = np.random.default_rng(1)
    x2[~valid] = rng.normal(size=x2[~valid].shape) * 100
    y2[~valid] = rng.normal(size=y2[~valid].shape) * 100
    np.testing.assert_allclose(model.evaluate(x2, y2, lengths=lengths, verbose=0), [loss, mae], rtol=1e-12)
    a, b = _seq2seq(), _seq2seq()
    ha = a.fit(x, y, lengths=lengths, epochs=2, batch_size=8, seed=0, verbose=0).history
    hb = b.fit(x2, y2, mask=valid, epochs=2, batch_size=8, seed=0, verbose=0).history
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-10)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-10, atol=1e-13)


def test_masking_layer_and_embedding_mask_zero_match_lengths():
    x, y, lengths, valid = _padded_sequences(n=10)
    x[~valid] = 0.0
    with_lengths = Sequential([LSTM(5, seed=3, dtype="float64"), Dense(1, seed=4, dtype="float64")])
    with_masking = Sequential([Masking(dtype="float64"), LSTM(5, seed=3, dtype="float64"),
                               Dense(1, seed=4, dtype="float64")])
    np.testing.assert_allclose(with_masking.predict(x), with_lengths.predict(x, lengths=lengths),
                               rtol=1e-12)

    ids = np.array([[3, 1, 4, 1, 5], [9, 2, 6, 0, 0], [5, 3, 0, 0, 0]])
    model = Sequential([Embedding(10, 4, mask_zero=True, seed=0), GRU(3, seed=1)])
    padded = model.predict(ids)
    for i, n in enumerate((5, 3, 2)):
        np.testing.assert_allclose(padded[i], model.predict(ids[i:i + 1, :n])[0], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# summary, save / load
# ---------------------------------------------------------------------------------------------


def test_summary_matches_keras_parameter_counts(capsys):
    V, D = 1000, 64
    model = Sequential([
        Embedding(V, D),                                          # V·D
        LSTM(32, return_sequences=True),                          # 4(D·32 + 32² + 32)
        GRU(16, return_sequences=True),                           # 3(32·16 + 16² + 2·16)
        GRU(8, reset_after=False, return_sequences=True),         # 3(16·8 + 8² + 8)
        Bidirectional(SimpleRNN(4, return_sequences=True)),       # 2(8·4 + 4² + 4)
        SimpleRNN(4),                                             # 8·4 + 4² + 4
        Dense(10),                                                # 4·10 + 10
    ])
    model.build((None, 12))
    model.summary()
    out = capsys.readouterr().out
    expected = {  # in layer order: (parameters by Keras's formula, output shape)
        "Embedding": (V * D, "(None, 12, 64)"),
        "LSTM": (4 * (D * 32 + 32 * 32 + 32), "(None, 12, 32)"),
        "GRU reset_after=True": (3 * (32 * 16 + 16 * 16 + 2 * 16), "(None, 12, 16)"),
        "GRU reset_after=False": (3 * (16 * 8 + 8 * 8 + 8), "(None, 12, 8)"),
        "Bidirectional(SimpleRNN)": (2 * (8 * 4 + 4 * 4 + 4), "(None, 12, 8)"),
        "SimpleRNN": (8 * 4 + 4 * 4 + 4, "(None, 4)"),
        "Dense": (4 * 10 + 10, "(None, 10)"),
    }
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^ (\S+) \((\w+)\)\s+(\(.*?\))\s+([\d,]+)$", line)
        if m:
            rows[m.group(1)] = (int(m.group(4).replace(",", "")), m.group(3))
    got = [rows[layer.name] for layer in model.layers]
    want = list(expected.values())
    assert got == want, out
    total = sum(v[0] for v in want)
    assert f"Total params: {total:,} (" in out and f"Trainable params: {total:,} (" in out
    assert "Non-trainable params: 0 (" in out and "Layer (type)" in out and "Output Shape" in out
    assert model.count_params() == total


def test_summary_teaching_example(capsys):
    model = Sequential([SimpleRNN(4)], name="tiny")
    model.build((None, 3, 2))
    model.summary()
    out = capsys.readouterr().out
    assert 'Model: "tiny"' in out and "Total params: 28 (112.00 B)" in out
    with pytest.raises(ValueError, match="not been built"):
        Sequential([Dense(1)]).summary()


def test_save_load_round_trip(tmp_path):
    x, y = sum_sign_data(n=64)
    model = Sequential([Bidirectional(GRU(4, return_sequences=True, seed=0)), Dropout(0.1, seed=1),
                        LSTM(3, seed=2), Dense(2, activation="softmax", seed=3)])
    model.compile(optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load_model(path)
    assert [type(layer).__name__ for layer in loaded.layers] == ["Bidirectional", "Dropout", "LSTM", "Dense"]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert isinstance(loaded.optimizer, optimizers.Adam) and loaded.metrics_names == ["loss", "accuracy"]
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    loaded.fit(x, y, epochs=1, verbose=0)  # trainable after loading

    unbuilt = Sequential([Dense(2)])
    unbuilt.save(tmp_path / "unbuilt.npz")
    assert not load_model(tmp_path / "unbuilt.npz").built


def test_load_model_rejects_bad_files(tmp_path):
    model = Sequential([SimpleRNN(3, seed=0), Dense(1, seed=1)])
    model.build((None, 5, 2))
    good = tmp_path / "good.npz"
    model.save(good)

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable rnnkit model file"):
        load_model(corrupt)

    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a"):
        load_model(text)

    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="not an rnnkit model file"):
        load_model(other)

    # weights whose shapes do not fit the configuration
    with np.load(good) as archive:
        arrays = {k: archive[k] for k in archive.files}
    config = json.loads(str(arrays["rnnkit_config"]))
    config["model"]["layers"][0]["config"]["units"] = 4
    arrays["rnnkit_config"] = np.array(json.dumps(config))
    mismatched = tmp_path / "mismatched.npz"
    np.savez(mismatched, **arrays)
    with pytest.raises(ValueError, match="must have shape"):
        load_model(mismatched)

    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")


# ---------------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------------


def test_time_series_windows():
    x, y = datasets.time_series(8, n_steps=20, seed=0)
    assert x.shape == y.shape == (8, 20, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # targets: the next value at every step
    x0, y0 = datasets.time_series(starts=[0.0], n_steps=3, dtype="float64")
    np.testing.assert_allclose(x0[0, :, 0], datasets.series_value([0.0, 0.1, 0.2]))
    np.testing.assert_allclose(y0[0, -1, 0], datasets.series_value(0.3))
    np.testing.assert_array_equal(datasets.time_series(4, seed=3)[0], datasets.time_series(4, seed=3)[0])


def test_digits_sequences(monkeypatch):
    pytest.importorskip("sklearn")
    (x_train, y_train), (x_test, y_test) = datasets.load_digits_sequences(test_fraction=0.25, seed=1)
    assert x_train.shape[1:] == (8, 8) and len(x_train) + len(x_test) == 1797
    assert len(x_test) == round(1797 * 0.25)
    assert x_train.min() >= 0 and x_train.max() == 1 and set(np.unique(y_train)) == set(range(10))
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r'pip install "rnnkit\[demo\]"'):
        datasets.load_digits_sequences()


# ---------------------------------------------------------------------------------------------
# the rnnkit command
# ---------------------------------------------------------------------------------------------


def test_cli_without_arguments_prints_help(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "usage: rnnkit" in out and "demo" in out and "bench" in out


def test_python_m_rnnkit_runs_the_cli():
    src = os.path.dirname(os.path.dirname(os.path.abspath(rnnkit.__file__)))
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "rnnkit"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: rnnkit" in done.stdout


def test_cli_forwards_bench(monkeypatch):
    seen = []
    from rnnkit import bench
    monkeypatch.setattr(bench, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["bench", "--sizes", "seed-tiny", "--help"]) == 0
    assert seen == [["--sizes", "seed-tiny", "--help"]]


def test_cli_quick_demo(tmp_path, capsys):
    plot = tmp_path / "forecast.png"
    assert cli.main(["demo", "--quick", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "MSE on 1000 unseen windows" in out and "quick run" in out
    if importlib.util.find_spec("matplotlib") is not None:  # the demo extra: the plot must be made
        assert "plot saved" in out and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "plot skipped" in out


@pytest.mark.slow
def test_demo_configurations_reach_their_targets():
    """The full demo configuration: forecaster MSE <= 0.1 and digits test accuracy >= 95%."""
    mse, _ = cli.demo_time_series(cli.TS_STEPS, seed=0, plot=None, say=lambda *a: None, verbose=0)
    assert mse <= cli.TS_TARGET_MSE, mse
    pytest.importorskip("sklearn")
    accuracy, _ = cli.demo_digits(cli.DIGITS_EPOCHS, seed=0, say=lambda *a: None, verbose=0)
    assert accuracy >= cli.DIGITS_TARGET_ACCURACY, accuracy
