"""Keras 3 scripts ported by changing imports: the same model built with keras (torch backend) and
with rnnkit, the same weights -> the same predictions (float32: rtol 1e-5 relative-norm, SPEC §14.7)
and, trained with SGD on the same batches, the same losses and weights. Skipped without keras."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import rnnkit

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

# keras.ops.convert_to_numpy (get_weights, predict) warns under NumPy 2: Keras's business, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def _build(lib, units=6):
    """One script, two libraries: an encoder-decoder with merges, RepeatVector and TimeDistributed."""
    L = lib.layers
    enc_in = lib.Input((7, 3), name="enc_in")
    dec_in = lib.Input((5, 2), name="dec_in")
    enc_seq, h, c = L.LSTM(units, return_sequences=True, return_state=True, name="encoder")(enc_in)
    dec_seq, _, _ = L.LSTM(units, return_sequences=True, return_state=True, name="decoder")(
        dec_in, initial_state=[h, c])
    summary = L.GRU(units, name="summary")(enc_seq)
    context = L.RepeatVector(5, name="repeat")(L.Add(name="add")([summary, h]))
    merged = L.Concatenate(name="concat")([dec_seq, context])
    probs = L.TimeDistributed(L.Dense(4, activation="softmax"), name="probs")(merged)
    value = L.Dense(1, name="value")(L.Average(name="avg")([summary, L.Multiply(name="mul")([h, c])]))
    return lib.Model([enc_in, dec_in], [probs, value])


def _copy_weights(src, dst):
    for layer in src.layers:
        weights = layer.get_weights()
        if weights:
            dst.get_layer(layer.name).set_weights(weights)


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return ([rng.normal(size=(n, 7, 3)).astype("float32"), rng.normal(size=(n, 5, 2)).astype("float32")],
            [rng.integers(0, 4, size=(n, 5)), rng.normal(size=(n, 1)).astype("float32")])


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # keras/torch deprecation notes under NumPy 2
        return fn(*args, **kwargs)


def test_functional_encoder_decoder_predicts_like_keras():
    k_model = _build(keras)
    r_model = _build(rnnkit)
    _copy_weights(k_model, r_model)
    x, _ = _data()
    k_out = _quiet(k_model.predict, x, verbose=0)
    r_out = r_model.predict(x)
    for k, r in zip(k_out, r_out):
        assert r.shape == k.shape and _rel(r, k) < 1e-5
    assert r_model.count_params() == k_model.count_params()


def test_functional_training_follows_keras():
    k_model = _build(keras)
    r_model = _build(rnnkit)
    _copy_weights(k_model, r_model)
    x, y = _data()
    losses = ["sparse_categorical_crossentropy", "mse"]
    _quiet(k_model.compile, optimizer=keras.optimizers.SGD(0.1), loss=losses, loss_weights=[1.0, 0.5])
    r_model.compile(optimizer=rnnkit.optimizers.SGD(0.1), loss=losses, loss_weights=[1.0, 0.5])
    k_hist = _quiet(k_model.fit, x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    r_hist = r_model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_allclose(r_hist.history["loss"], k_hist.history["loss"], rtol=1e-4)
    for layer in k_model.layers:
        for kw, rw in zip(layer.get_weights(), r_model.get_layer(layer.name).get_weights()
                          if layer.get_weights() else []):
            assert _rel(rw, kw) < 1e-4, layer.name


def test_sequential_with_input_and_schedule_follows_keras():
    def build(lib):
        return lib.Sequential([lib.Input((6, 3)), lib.layers.GRU(5, return_sequences=True, name="g"),
                               lib.layers.SimpleRNN(4, name="s"), lib.layers.Dense(1, name="d")])

    k_model, r_model = build(keras), build(rnnkit)
    _copy_weights(k_model, r_model)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(24, 6, 3)).astype("float32")
    y = x.sum(axis=(1, 2))[:, None]
    assert _rel(r_model.predict(x), _quiet(k_model.predict, x, verbose=0)) < 1e-5
    k_sched = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5)
    r_sched = rnnkit.optimizers.schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5)
    _quiet(k_model.compile, optimizer=keras.optimizers.Adam(k_sched), loss="mse")
    r_model.compile(optimizer=rnnkit.optimizers.Adam(r_sched), loss="mse")
    k_hist = _quiet(k_model.fit, x, y, epochs=3, batch_size=6, shuffle=False, verbose=0)
    r_hist = r_model.fit(x, y, epochs=3, batch_size=6, shuffle=False, verbose=0)
    np.testing.assert_allclose(r_hist.history["loss"], k_hist.history["loss"], rtol=1e-4)
