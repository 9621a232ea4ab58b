"""rnnkit.interop.from_keras / to_keras (docs/INTEROP.md §1, docs/SPEC.md §15).

Models of every supported layer type are built in Keras 3 (torch backend, CPU, fixed seed, every
weight set to random nonzero values), saved as ``.keras`` and ``.weights.h5`` and loaded by
``from_keras`` — from the files with Keras made unimportable — and from the Keras objects; rnnkit's
predictions equal Keras's (float32: 1e-5 relative to the output scale) at a batch and time length
the models were not built for. ``to_keras`` takes them back. Corrupt, foreign and unsupported files
raise ValueError naming the path / layer."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
pytest.importorskip("h5py")
keras = pytest.importorskip("keras")

import rnnkit  # noqa: E402
from rnnkit.interop import from_keras, to_keras  # noqa: E402

K = keras.layers
I = 3
# Keras 3 under NumPy 2 warns about its own array conversions (Variable.__array__ without ``copy``)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([rng.standard_normal(w.shape).astype(w.dtype) * 0.5 for w in weights])


def seq_input(steps=None):
    return keras.Input((steps, I))


# name -> (builder, input kind, time steps the model takes (None: any)); inputs are random normal
# features, or ids in [0, 12) for "ids"; "padded" inputs have trailing zeros (masks) and the model
# returns only the last state, where Keras and rnnkit agree (docs/SPEC.md §15).
def _models():
    models = {}
    models["stack"] = (lambda: keras.Sequential([
        seq_input(), K.SimpleRNN(4, activation="relu", return_sequences=True),
        K.Bidirectional(K.LSTM(5, return_sequences=True), merge_mode="sum"),
        K.GRU(3, reset_after=False, return_sequences=True, go_backwards=True),
        K.GRU(2, return_sequences=True), K.Dropout(0.2), K.Dense(2, activation="softmax")]), "x", None)
    for cell in ("SimpleRNN", "LSTM", "GRU"):
        for merge in ("concat", "sum", "mul", "ave"):
            models[f"bidirectional-{cell}-{merge}"] = (
                lambda cell=cell, merge=merge: keras.Sequential([
                    seq_input(6), K.Bidirectional(getattr(K, cell)(3, return_sequences=True), merge_mode=merge),
                    K.Flatten(), K.Dense(2, activation="tanh")]), "x", 6)
    models["lstm-flags"] = (lambda: keras.Sequential([
        seq_input(), K.LSTM(4, go_backwards=True, recurrent_activation="hard_sigmoid", use_bias=False,
                            unit_forget_bias=False, return_sequences=True),
        K.Dense(3, activation="sigmoid", use_bias=False)]), "x", None)
    models["gru-variants"] = (lambda: keras.Sequential([
        seq_input(), K.GRU(4, reset_after=True, activation="relu", return_sequences=True),
        K.GRU(3, reset_after=False, recurrent_activation="hard_sigmoid", go_backwards=True),
        K.Dense(2)]), "x", None)
    models["embedding"] = (lambda: keras.Sequential([
        keras.Input((None,), dtype="int32"), K.Embedding(12, 4),
        K.Bidirectional(K.GRU(3)), K.Dense(1)]), "ids", None)
    models["masking"] = (lambda: keras.Sequential([
        seq_input(), K.Masking(0.0), K.LSTM(4, return_sequences=True), K.SimpleRNN(3, go_backwards=True),
        K.Dense(2)]), "padded", None)

    def functional():
        inp = keras.Input((None,), dtype="int32")
        h = K.Embedding(12, 4, mask_zero=True)(inp)
        h = K.LSTM(4, return_sequences=True)(h)
        h = K.GRU(3)(h)
        return keras.Model(inp, K.Dense(2)(h))
    models["functional-mask-zero"] = (functional, "padded-ids", None)
    return models


MODELS = _models()


def make_input(kind, batch, steps, seed):
    rng = np.random.default_rng(seed)
    if kind in ("ids", "padded-ids"):
        x = rng.integers(1, 12, (batch, steps))
    else:
        x = rng.standard_normal((batch, steps, I)).astype(np.float32)
    if kind.startswith("padded"):
        lengths = rng.integers(1, steps + 1, batch)
        for b, n in enumerate(lengths):
            x[b, n:] = 0
    return x


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each model built in Keras, saved both ways, with its Keras predictions on two input sizes."""
    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("keras_models")
    out = {}
    for i, (name, (build, kind, steps)) in enumerate(MODELS.items()):
        model = build()
        randomize(model, i)
        inputs = [make_input(kind, 4, steps or 9, 100 + i), make_input(kind, 2, steps or 5, 200 + i)]
        predictions = [np.asarray(model.predict(x, verbose=0)) for x in inputs]
        keras_path, weights_path = root / f"{name}.keras", root / f"{name}.weights.h5"
        model.save(keras_path)
        model.save_weights(weights_path)
        out[name] = dict(model=model, keras=keras_path, weights=weights_path, inputs=inputs,
                         predictions=predictions)
    return out


def assert_same(rnnkit_model, entry):
    for x, want in zip(entry["inputs"], entry["predictions"]):
        got = rnnkit_model.predict(x)
        assert got.shape == want.shape
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)


@pytest.fixture
def no_keras(monkeypatch):
    """Make ``import keras`` fail while the test runs (the file routes must not need it)."""
    monkeypatch.setitem(sys.modules, "keras", None)


@pytest.mark.parametrize("name", list(MODELS))
def test_keras_file(saved, name, no_keras):
    assert_same(from_keras(saved[name]["keras"]), saved[name])


@pytest.mark.parametrize("name", list(MODELS))
def test_weights_file_into_rnnkit_model(saved, name, no_keras):
    # an rnnkit model of the same architecture with other (zero) weights
    fresh = copy.deepcopy(from_keras(saved[name]["keras"]))
    for layer in fresh.layers:
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    loaded = from_keras(saved[name]["weights"], model=fresh)
    assert loaded is fresh
    assert_same(loaded, saved[name])


@pytest.mark.parametrize("name", list(MODELS))
def test_keras_object_and_back(saved, name):
    entry = saved[name]
    model = from_keras(entry["model"])
    assert_same(model, entry)
    back = to_keras(model)
    for x, want in zip(entry["inputs"], entry["predictions"]):
        got = np.asarray(back.predict(x, verbose=0))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, float(np.abs(want).max())))
    # and rnnkit -> Keras -> rnnkit is the identity on the weights
    again = from_keras(back)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_flags_carried_over(saved):
    model = from_keras(saved["lstm-flags"]["keras"])
    lstm = model.layers[0]
    assert isinstance(lstm, rnnkit.LSTM)
    assert (lstm.go_backwards, lstm.use_bias, lstm.unit_forget_bias, lstm.recurrent_activation,
            lstm.return_sequences) == (True, False, False, "hard_sigmoid", True)
    gru = from_keras(saved["gru-variants"]["keras"]).layers
    assert (gru[0].reset_after, gru[0].activation, gru[1].reset_after, gru[1].go_backwards) == (True, "relu", False, True)
    assert [type(layer).__name__ for layer in from_keras(saved["masking"]["keras"]).layers] == \
        ["Masking", "LSTM", "SimpleRNN", "Dense"]


def test_file_route_imports_no_keras(saved):
    """In a fresh process: loading a .keras file and predicting never imports keras (or torch)."""
    entry = saved["stack"]
    code = ("import sys, numpy as np\n"
            "from rnnkit.interop import from_keras\n"
            f"m = from_keras({str(entry['keras'])!r})\n"
            "m.predict(np.zeros((1, 3, 3), np.float32))\n"
            "print(sorted(k for k in ('keras', 'torch', 'tensorflow') if k in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_recurrent_dropout_warns(tmp_path):
    model = keras.Sequential([seq_input(), K.LSTM(2, dropout=0.1, name="lstm_d")])
    with pytest.warns(UserWarning, match=r"'lstm_d' \(LSTM\): dropout=0.1 is not carried over"):
        from_keras(model)


# -- errors ------------------------------------------------------------------------------------------

def test_unsupported_layer_names_it_and_lists_supported(tmp_path):
    model = keras.Sequential([seq_input(), K.Conv1D(2, 2, name="conv"), K.LSTM(2)])
    path = tmp_path / "conv.keras"
    model.save(path)
    for source in (model, path):
        with pytest.raises(ValueError, match=r"'conv' \(Conv1D\).*supported layers: InputLayer, SimpleRNN"):
            from_keras(source)


def test_non_chain_functional_model():
    a = keras.Input((None, I))
    h1, h2 = K.LSTM(2)(a), K.GRU(2)(a)
    model = keras.Model(a, K.Add()([h1, h2]))
    with pytest.raises(ValueError, match="plain chain"):
        from_keras(model)


def test_return_state_and_merge_none_refused():
    model = keras.Sequential([seq_input(), K.Bidirectional(K.LSTM(2), merge_mode=None, name="bi")])
    with pytest.raises(ValueError, match=r"'bi' \(Bidirectional\).*merge_mode=None"):
        from_keras(model)


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_corrupt_files(saved, tmp_path, no_keras):
    good = saved["stack"]["keras"]
    with zipfile.ZipFile(good) as z:
        config, weights = z.read("config.json"), z.read("model.weights.h5")
    cases = {
        "not-zip.keras": (lambda p: p.write_bytes(b"definitely not a zip file"), "not a zip archive"),
        "no-weights.keras": (lambda p: _zip(p, {"config.json": config}), r"missing model\.weights\.h5"),
        "bad-json.keras": (lambda p: _zip(p, {"config.json": b"{oops", "model.weights.h5": weights}),
                           "config.json is not valid JSON"),
        "bad-h5.keras": (lambda p: _zip(p, {"config.json": config, "model.weights.h5": weights[:200]}),
                         "not a readable HDF5"),
        "keras2.keras": (lambda p: _zip(p, {"config.json": config, "model.weights.h5": weights,
                                            "metadata.json": json.dumps({"keras_version": "2.15.0"})}),
                         "Keras 2.15.0"),
        "wrong-config.keras": (lambda p: _zip(p, {"config.json": json.dumps({"class_name": "Sequential",
                                                                             "config": {}}),
                                                  "model.weights.h5": weights}), "no layer list"),
    }
    for name, (write, match) in cases.items():
        path = tmp_path / name
        write(path)
        with pytest.raises(ValueError, match=match) as info:
            from_keras(path)
        assert name in str(info.value)
    with pytest.raises(FileNotFoundError):
        from_keras(tmp_path / "missing.keras")


def test_weights_file_errors(saved, tmp_path, no_keras):
    weights = saved["stack"]["weights"]
    with pytest.raises(ValueError, match="pass model="):
        from_keras(weights)
    other = rnnkit.Sequential([rnnkit.LSTM(7)])
    with pytest.raises(ValueError, match="no weights for layer"):
        from_keras(weights, model=other)
    wrong = rnnkit.Sequential([rnnkit.SimpleRNN(5, return_sequences=True)])   # 4 units in the file
    with pytest.raises(ValueError, match="weights of layer .* do not fit"):
        from_keras(weights, model=wrong)
    garbage = tmp_path / "x.weights.h5"
    garbage.write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match="x.weights.h5.*not a readable HDF5"):
        from_keras(garbage, model=wrong)
