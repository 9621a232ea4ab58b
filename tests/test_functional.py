"""Functional models (rnnkit.Model(inputs, outputs)), rnnkit.Input and input_shape=: graphs with
several inputs and outputs, shared layers, initial_state from another layer's states, merge layers,
RepeatVector and TimeDistributed. Gradients against central finite differences in float64
(docs/SPEC.md §14.2: step 1e-6, rtol 1e-6, atol 1e-8); sub-models sharing weights; save/load."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit import (GRU, LSTM, Add, Average, Bidirectional, Concatenate, Dense, Embedding, Input, Model,
                    Multiply, RepeatVector, Sequential, SimpleRNN, TimeDistributed)

F64 = "float64"


def _outputs(model, xs, training):
    y = model._forward(xs, None, training=training)[0]
    return y if isinstance(y, list) else [y]


def _check_gradients(model, xs, seed=0, max_per_weight=12):
    """model.weights' gradients of sum_o <c_o, y_o> (random cotangents c) vs finite differences."""
    rng = np.random.default_rng(seed)
    outs = _outputs(model, xs, True)
    cots = [rng.normal(size=o.shape) for o in outs]
    multi = model._multi_output
    model._backward(cots if multi else cots[0], [False] * len(cots) if multi else False)
    analytic = [g.copy() for layer in model.layers for g in layer.grads]
    base = model.get_weights()
    assert len(analytic) == len(base)

    def objective(weights):
        model.set_weights(weights)
        return sum(float(np.sum(c * o)) for c, o in zip(cots, _outputs(model, xs, False)))

    eps = 1e-6
    for k, w in enumerate(base):
        flat = np.arange(w.size)
        picks = flat if w.size <= max_per_weight else rng.choice(flat, max_per_weight, replace=False)
        for idx in picks:
            plus = [a.copy() for a in base]
            minus = [a.copy() for a in base]
            plus[k].flat[idx] += eps
            minus[k].flat[idx] -= eps
            numeric = (objective(plus) - objective(minus)) / (2 * eps)
            np.testing.assert_allclose(analytic[k].flat[idx], numeric, rtol=1e-6, atol=1e-8,
                                       err_msg=f"weight {k} (shape {w.shape}) entry {idx}")
    model.set_weights(base)


def _seq(rng, *shape):
    return rng.normal(size=shape)


def test_gradients_multi_input_merge_layers():
    rng = np.random.default_rng(1)
    a, b = Input((5, 3)), Input((5, 2))
    ha = LSTM(4, return_sequences=True, dtype=F64, seed=1)(a)
    hb = GRU(4, return_sequences=True, dtype=F64, seed=2)(b)
    added = Add()([ha, hb])
    mult = Multiply()([ha, hb, added])
    avg = Average()([mult, hb])
    cat = Concatenate()([avg, ha])
    out = Dense(3, activation="tanh", dtype=F64, seed=3)(cat)
    model = Model([a, b], out)
    _check_gradients(model, [_seq(rng, 4, 5, 3), _seq(rng, 4, 5, 2)])


def test_gradients_multi_output_shared_layers():
    rng = np.random.default_rng(2)
    a, b = Input((6, 3)), Input((4, 3))
    shared = SimpleRNN(5, return_sequences=True, dtype=F64, seed=4)    # called on both inputs
    head = Dense(2, dtype=F64, seed=5, name="head")                       # called on both branches
    ya, yb = shared(a), shared(b)
    last = GRU(3, dtype=F64, seed=6, reset_after=False)(ya)
    out3 = Dense(1, activation="sigmoid", dtype=F64, seed=7, name="prob")(Concatenate()([last, last]))
    model = Model([a, b], [head(ya), head(yb), out3])
    assert model.output_names == ["head", "head_1", "prob"]
    assert len(model.layers) == 5
    _check_gradients(model, [_seq(rng, 3, 6, 3), _seq(rng, 3, 4, 3)])


def test_gradients_encoder_decoder_initial_state_repeat_time_distributed():
    rng = np.random.default_rng(3)
    enc_in, dec_in = Input((None, 3)), Input((None, 2))
    enc_out, h, c = LSTM(4, return_state=True, dtype=F64, seed=8)(enc_in)
    dec_seq, _, _ = LSTM(4, return_sequences=True, return_state=True, dtype=F64, seed=9)(
        dec_in, initial_state=[h, c])
    repeated = RepeatVector(5)(enc_out)
    merged = Concatenate()([dec_seq, repeated])
    out = TimeDistributed(Dense(3, activation="softmax", dtype=F64, seed=10))(merged)
    model = Model([enc_in, dec_in], out)
    _check_gradients(model, [_seq(rng, 3, 7, 3), _seq(rng, 3, 5, 2)])


def test_gradients_bidirectional_states_and_unused_outputs():
    rng = np.random.default_rng(4)
    x = Input((6, 2))
    y, hf, hb = Bidirectional(GRU(3, return_sequences=True, return_state=True, dtype=F64, seed=11))(x)
    s = SimpleRNN(3, dtype=F64, seed=12)(y, initial_state=[Add()([hf, hb])])
    unused = Dense(2, dtype=F64, seed=13)(y)   # a branch that reaches no output
    del unused
    model = Model(x, s)
    _check_gradients(model, [_seq(rng, 2, 6, 2)])


def test_fit_matches_sequential_and_logs_per_output():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 8, 3)).astype("float32")
    y = rng.integers(0, 3, size=64)
    seq = Sequential([Input((8, 3)), LSTM(6, seed=0), Dense(3, activation="softmax", seed=1)])
    inp = Input((8, 3))
    fun = Model(inp, Dense(3, activation="softmax", seed=1)(LSTM(6, seed=0)(inp)))
    for m in (seq, fun):
        m.compile(rnnkit.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    h1 = seq.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0, validation_split=0.25)
    h2 = fun.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0, validation_split=0.25)
    assert h1.history == h2.history
    np.testing.assert_array_equal(seq.predict(x), fun.predict(x))

    a = Input((8, 3))
    hidden = LSTM(6, seed=0)(a)
    two = Model(a, [Dense(3, activation="softmax", seed=1, name="cls")(hidden),
                    Dense(1, seed=2, name="reg")(hidden)])
    two.compile("adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                loss_weights=[1.0, 0.5], metrics={"cls": ["accuracy"], "reg": ["mae"]})
    hist = two.fit(x, {"cls": y, "reg": x[:, -1, :1]}, epochs=2, batch_size=16, verbose=0)
    assert list(hist.history) == ["loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"]
    logs = hist.history
    np.testing.assert_allclose(logs["loss"][-1], logs["cls_loss"][-1] + 0.5 * logs["reg_loss"][-1],
                               rtol=1e-6)
    out = two.evaluate(x, [y, x[:, -1, :1]], verbose=0)
    assert len(out) == 5 and two.metrics_names == list(hist.history)
    preds = two.predict(x)
    assert [p.shape for p in preds] == [(64, 3), (64, 1)]


def test_submodels_share_weights_and_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    enc_in, dec_in = Input((None, 3)), Input((None, 3))
    encoder_lstm = LSTM(5, return_state=True, seed=0)
    _, h, c = encoder_lstm(enc_in)
    decoder_lstm = LSTM(5, return_sequences=True, return_state=True, seed=1)
    dense = Dense(3, activation="softmax", seed=2)
    seq, _, _ = decoder_lstm(dec_in, initial_state=[h, c])
    train = Model([enc_in, dec_in], dense(seq))
    encoder = Model(enc_in, [h, c])
    h_in, c_in = Input((5,)), Input((5,))
    step_seq, h2, c2 = decoder_lstm(dec_in, initial_state=[h_in, c_in])
    decoder = Model([dec_in, h_in, c_in], [dense(step_seq), h2, c2])
    train.compile("adam", "sparse_categorical_crossentropy")
    xe, xd = rng.normal(size=(16, 6, 3)), rng.normal(size=(16, 4, 3))
    train.fit([xe, xd], rng.integers(0, 3, size=(16, 4)), epochs=1, verbose=0)
    assert decoder.layers[0] is decoder_lstm and decoder_lstm.weights[0] is train.weights[3]
    # the step-by-step decoder reproduces the training model's outputs
    hh, cc = encoder.predict(xe)
    full = train.predict([xe, xd])
    for t in range(4):
        y_t, hh, cc = decoder.predict([xd[:, t:t + 1], hh, cc])
        np.testing.assert_allclose(y_t[:, 0], full[:, t], rtol=1e-5, atol=1e-6)
    path = tmp_path / "seq2seq.npz"
    train.save(path)
    loaded = rnnkit.load_model(path)
    assert isinstance(loaded, Model) and loaded.compiled
    np.testing.assert_array_equal(loaded.predict([xe, xd]), full)
    decoder.save(tmp_path / "dec.npz")
    loaded_dec = rnnkit.load_model(tmp_path / "dec.npz")
    np.testing.assert_array_equal(loaded_dec.predict([xd, hh, cc])[0], decoder.predict([xd, hh, cc])[0])


def test_input_and_input_shape_build_sequential(capsys):
    for model in (Sequential([Input((10, 8)), LSTM(16), Dense(1)]),
                  Sequential([LSTM(16, input_shape=(10, 8)), Dense(1)]),
                  Sequential([LSTM(16, input_dim=8), Dense(1)])):
        assert model.built and model.count_params() == 4 * (8 * 16 + 16 * 16 + 16) + 17
    assert Input(batch_shape=(4, 10, 8)).shape == (4, 10, 8) == Input((10, 8), batch_size=4).shape
    dense_first = Sequential([Dense(4, input_dim=3), Dense(1)])
    assert dense_first.built and dense_first._build_input_shape == (None, 3)
    emb = Sequential([Embedding(50, 4, input_shape=(7,)), GRU(3)])
    assert emb.built and emb._build_input_shape == (None, 7)
    assert Embedding(50, 4).input_dim == 50
    with pytest.raises(ValueError, match="first element"):
        Sequential([LSTM(2), Input((3, 2))])
    with pytest.raises(TypeError, match="input_shape"):
        LSTM(2, input_shape="wide")
    with pytest.raises(ValueError, match="not both"):
        Dense(2, input_shape=(3,), input_dim=3)
    model = Sequential([Input((10, 8)), LSTM(16), Dense(1)], name="k3")
    assert model(np.zeros((0, 10, 8))).shape == (0, 1)          # a call takes empty batches (§10)
    model.summary()
    assert "Total params: 1,617" in capsys.readouterr().out


def test_bad_graphs_and_data_are_refused(tmp_path):
    a, b = Input((4, 2)), Input((4, 2))
    y = LSTM(3)(a)
    with pytest.raises(ValueError, match="Graph disconnected"):
        Model(b, y)
    with pytest.raises(TypeError, match="outputs\\[0\\]"):
        Model(a, [np.zeros(3)])
    with pytest.raises(ValueError, match="must be an rnnkit.Input"):
        Model(y, y)
    with pytest.raises(ValueError, match="initial_state"):
        LSTM(3)(a, initial_state=[y])
    with pytest.raises(ValueError, match="shape"):
        LSTM(4)(a, initial_state=[y, y])
    with pytest.raises(ValueError, match="incompatible"):
        Add()([LSTM(3)(a), LSTM(2)(b)])
    with pytest.raises(TypeError, match="Model\\(inputs, outputs\\)"):
        Model()
    m = Model([a, b], Add()([LSTM(3, name="p")(a), LSTM(3, name="q")(b)]))
    with pytest.raises(ValueError, match="2 inputs"):
        m.predict(np.zeros((2, 4, 2)))
    with pytest.raises(ValueError, match="keys"):
        m.predict({"nope": np.zeros((2, 4, 2))})
    np.testing.assert_array_equal(m.predict({a.name: np.ones((2, 4, 2)), b.name: np.ones((2, 4, 2))}),
                                  m.predict([np.ones((2, 4, 2))] * 2))
    with pytest.raises(ValueError, match="\\.npz"):
        m.save(tmp_path / "model.keras")
    with pytest.raises(ValueError, match="\\.npz"):
        Sequential([Input((3, 2)), LSTM(2)]).save(tmp_path / "model.keras")
    assert not (tmp_path / "model.keras").exists()
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(a)


def test_masks_follow_the_graph():
    rng = np.random.default_rng(7)
    ids = Input((6,), dtype="int32")
    emb = Embedding(20, 4, mask_zero=True, seed=0)(ids)
    out = Dense(1, seed=2)(LSTM(3, return_sequences=True, seed=1)(emb))
    model = Model(ids, out)
    seq = Sequential([Embedding(20, 4, mask_zero=True, seed=0), LSTM(3, return_sequences=True, seed=1),
                      Dense(1, seed=2)])
    x = rng.integers(1, 20, size=(8, 6))
    x[:, 4:] = 0
    np.testing.assert_array_equal(model.predict(x), seq.predict(x))
    for m in (model, seq):
        m.compile("sgd", "mse")
    y = rng.normal(size=(8, 6, 1))
    assert model.evaluate(x, y, verbose=0) == seq.evaluate(x, y, verbose=0)


def test_stream_follows_the_graph():
    rng = np.random.default_rng(8)
    a, b = Input((None, 3)), Input((None, 2))
    shared = Dense(3, seed=0)
    ya = LSTM(4, return_sequences=True, seed=1)(a)
    yb = GRU(4, return_sequences=True, seed=2)(shared(b))
    out1 = TimeDistributed(Dense(2, seed=3))(Concatenate()([ya, yb]))
    out2, h = SimpleRNN(3, return_sequences=True, return_state=True, seed=4)(Add()([ya, yb]))
    model = Model([a, b], [out1, out2, h])
    xa, xb = rng.normal(size=(2, 5, 3)).astype("float32"), rng.normal(size=(2, 5, 2)).astype("float32")
    full = model.predict([xa, xb])
    stream = model.stream(batch_size=2)
    for t in range(5):
        y1, y2, h_t = stream.step([xa[:, t], xb[:, t]])
        np.testing.assert_allclose(y1, full[0][:, t], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(y2, full[1][:, t], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_t, full[2], rtol=1e-5, atol=1e-6)   # the state after the last step
    assert len(stream.states) == 3
    stream.reset()
    np.testing.assert_allclose(stream.step([xa[:, 0], xb[:, 0]])[0], full[0][:, 0], rtol=1e-5, atol=1e-6)

    enc, dec = Input((None, 2)), Input((None, 2))
    _, h1 = GRU(3, return_state=True)(enc)
    seq2seq = Model([enc, dec], GRU(3, return_sequences=True)(dec, initial_state=[h1]))
    with pytest.raises(ValueError, match="cannot stream"):
        seq2seq.stream()
    h_in = Input((3,))
    with pytest.raises(ValueError, match="initial_state"):
        Model([dec, h_in], GRU(3, return_sequences=True)(dec, initial_state=[h_in])).stream()
    pooled = Model(enc, Dense(1)(GRU(3)(enc)))
    with pytest.raises(ValueError, match="return_sequences=False"):
        pooled.stream()
    vec = Input((2,))
    with pytest.raises(ValueError, match="RepeatVector"):
        Model(vec, RepeatVector(2)(vec)).stream()


def test_functional_models_pickle_and_copy():
    import copy
    import pickle
    rng = np.random.default_rng(9)
    a, b = Input((5, 2)), Input((5, 2))
    shared = GRU(3, return_sequences=True, seed=0)
    out = Dense(1, seed=1)(Add()([shared(a), shared(b)]))
    model = Model([a, b], out)
    model.compile(rnnkit.optimizers.Adam(1e-2), "mse")
    x = [rng.normal(size=(16, 5, 2)), rng.normal(size=(16, 5, 2))]
    y = rng.normal(size=(16, 5, 1))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(clone.predict(x), model.predict(x))
        assert clone.layers[0] is not shared and clone.history.model is clone
        h1 = clone.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=1).history["loss"]
        h0 = copy.deepcopy(model).fit(x, y, epochs=1, batch_size=8, verbose=0, seed=1).history["loss"]
        assert h1 == h0


def test_every_new_layer_saves_and_loads(tmp_path):
    rng = np.random.default_rng(10)
    a, b = Input((6, 3), name="a"), Input((6, 2), name="b")
    seq, hf, cf, hb, cb = Bidirectional(LSTM(4, return_sequences=True, return_state=True, seed=0))(a)
    other = GRU(4, return_sequences=True, seed=1)(b, initial_state=[Average()([hf, hb])])
    merged = Concatenate()([seq, Multiply()([other, other]), RepeatVector(6)(Add()([cf, cb]))])
    out = TimeDistributed(Dense(2, activation="softmax", seed=2))(merged)
    model = Model([a, b], [out, hf], name="everything")
    model.compile("adam", ["sparse_categorical_crossentropy", "mse"], metrics=[["accuracy"], []])
    x = [rng.normal(size=(8, 6, 3)), rng.normal(size=(8, 6, 2))]
    y = [rng.integers(0, 2, size=(8, 6)), rng.normal(size=(8, 4))]
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "everything.npz"
    model.save(path)
    loaded = rnnkit.load_model(path)
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    for got, want in zip(loaded.predict(x), model.predict(x)):
        np.testing.assert_array_equal(got, want)
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    seq_model = Sequential([Input((5, 3)), GRU(4, return_sequences=True), TimeDistributed(Dense(2))])
    seq_model.save(tmp_path / "td.npz")
    xs = rng.normal(size=(3, 5, 3))
    np.testing.assert_array_equal(rnnkit.load_model(tmp_path / "td.npz").predict(xs), seq_model.predict(xs))


def test_loss_gradients_with_fused_softmax_outputs():
    """The training step's gradients (fused softmax + cross-entropy where allowed, loss weights,
    an output also read by another layer) against finite differences of the compiled loss."""
    from rnnkit._data import Data
    rng = np.random.default_rng(11)
    a = Input((4, 3))
    h = LSTM(3, dtype=F64, seed=0)(a)
    probs = Dense(3, activation="softmax", dtype=F64, seed=1, name="probs")(h)    # also read below
    alone = Dense(2, activation="softmax", dtype=F64, seed=2, name="alone")(h)     # fused
    value = Dense(1, dtype=F64, seed=3, name="value")(Concatenate()([probs, h]))
    model = Model(a, [probs, alone, value])
    model.compile("sgd", ["sparse_categorical_crossentropy", "sparse_categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 0.7, 2.0])
    assert model._fusable == [False, True, True]
    assert [model._uses_fused_softmax(i) for i in range(3)] == [False, True, False]
    batch = Data(rng.normal(size=(5, 4, 3)), [rng.integers(0, 3, 5), rng.integers(0, 2, 5),
                                              rng.normal(size=(5, 1))])
    _, _, _, _, grads, from_logits = model._losses_of_batch(batch, True)
    model._backward(grads, from_logits)
    analytic = [g.copy() for layer in model.layers for g in layer.grads]
    base = model.get_weights()

    def loss(weights):
        model.set_weights(weights)
        return model._losses_of_batch(batch, False)[1]

    for k, w in enumerate(base):
        for idx in range(min(w.size, 6)):
            plus, minus = [x.copy() for x in base], [x.copy() for x in base]
            plus[k].flat[idx] += 1e-6
            minus[k].flat[idx] -= 1e-6
            numeric = (loss(plus) - loss(minus)) / 2e-6
            np.testing.assert_allclose(analytic[k].flat[idx], numeric, rtol=1e-6, atol=1e-8,
                                       err_msg=f"weight {k} entry {idx}")
