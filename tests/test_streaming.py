"""Serving: weights packed once (layer and ops handles), ``layer.step`` and ``model.stream``.

Tolerances: a step chained T times and one call over T steps compute the same sums in different
orders (matrix-vector products vs micro-tiles, projections one step vs all steps at once), so they
agree to rounding: float32 1e-5, float64 1e-12 relative (docs/SPEC.md §14).
Pack invalidation: after every public route that changes a weight, the next inference call must
equal a fresh computation with the new weights (exactly: same code path, same inputs).
"""

from __future__ import annotations

import numpy as np
import pytest


from numerics import assert_rel_close

import rnnkit
from rnnkit import ops
from rnnkit.layers import GRU, LSTM, SimpleRNN

needs_native = pytest.mark.native  # skipped without rnnkit._native; fails under RNNKIT_REQUIRE_NATIVE=1
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


LAYERS = {
    "simple_rnn_tanh": lambda **kw: SimpleRNN(**kw),
    "simple_rnn_relu": lambda **kw: SimpleRNN(activation="relu", **kw),
    "simple_rnn_sigmoid": lambda **kw: SimpleRNN(activation="sigmoid", **kw),
    "simple_rnn_linear": lambda **kw: SimpleRNN(activation="linear", **kw),
    "lstm": lambda **kw: LSTM(**kw),
    "lstm_hard_sigmoid": lambda **kw: LSTM(recurrent_activation="hard_sigmoid", **kw),
    "lstm_relu_tanh": lambda **kw: LSTM(activation="relu", recurrent_activation="tanh", **kw),
    "lstm_linear": lambda **kw: LSTM(activation="linear", **kw),
    "gru": lambda **kw: GRU(**kw),
    "gru_sigmoid_hard_sigmoid": lambda **kw: GRU(activation="sigmoid", recurrent_activation="hard_sigmoid", **kw),
    "gru_reset_before": lambda **kw: GRU(reset_after=False, **kw),
    "gru_reset_before_relu": lambda **kw: GRU(reset_after=False, activation="relu", **kw),
    "gru_no_bias": lambda **kw: GRU(use_bias=False, **kw),
}


def _run_steps(layer, x, states=None, mask=None):
    outs = []
    for t in range(x.shape[1]):
        y, states = layer.step(x[:, t], states, mask=None if mask is None else mask[:, t])
        outs.append(y)
    return np.stack(outs, axis=1), states


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 3, 6])
def test_step_chain_equals_call(backend, name, dtype, batch):
    units, features, steps = 37, 11, 9  # sizes that fill no tile or vector exactly
    layer = LAYERS[name](units=units, return_sequences=True, return_state=True, dtype=dtype, seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((batch, steps, features)).astype(dtype)
    init = [rng.standard_normal((batch, units)).astype(dtype) for _ in layer.state_names]
    out, *final = layer(x, initial_state=init)
    chained, states = _run_steps(layer, x, init)
    assert chained.shape == out.shape and chained.dtype == dtype
    assert_rel_close(chained, out, RTOL[dtype], "outputs")
    for got, want in zip(states, final):
        assert_rel_close(got, want, RTOL[dtype], "states")


@pytest.mark.parametrize("name", ["simple_rnn_tanh", "lstm", "gru", "gru_reset_before"])
def test_step_with_masks_and_zero_states(backend, name):
    layer = LAYERS[name](units=16, return_sequences=True, return_state=True, dtype=np.float64, seed=3)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 7, 5))
    mask = rng.random((4, 7)) < 0.7
    out, *final = layer(x, mask=mask)
    chained, states = _run_steps(layer, x, None, mask)
    assert_rel_close(chained, out, 1e-12, "outputs")   # zero rows at masked steps included
    assert np.all(chained[~mask] == 0)
    for got, want in zip(states, final):
        assert_rel_close(got, want, 1e-12, "states")


def test_step_returns_h_as_output_and_checks_arguments(native):
    layer = LSTM(8)
    y, states = layer.step(np.ones((2, 3), np.float32))
    assert y.shape == (2, 8) and len(states) == 2 and states[0] is y
    with pytest.raises(ValueError, match="x_t must have shape"):
        layer.step(np.ones((2, 1, 3), np.float32))
    with pytest.raises(ValueError, match=r"states\[1\] \(c\) must have shape"):
        layer.step(np.ones((2, 3), np.float32), [np.zeros((2, 8)), np.zeros((3, 8))])
    with pytest.raises(ValueError, match="mask must have shape"):
        layer.step(np.ones((2, 3), np.float32), mask=np.ones(3, bool))


# ------------------------------------------------------------------------------------------------
# the native few-row path against the reference at the serving shapes
# ------------------------------------------------------------------------------------------------

@needs_native
@pytest.mark.parametrize("variant", ["simple_rnn", "lstm", "gru", "gru_reset_before"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 2, 4, 5])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_packed_forward_equals_reference(variant, dtype, batch, go_backwards):
    from rnnkit import reference
    cell = variant.split("_reset")[0]
    extra = {"reset_after": False} if variant == "gru_reset_before" else {}
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
    rng = np.random.default_rng(5)
    units, features, steps = 70, 300, 6   # 300: more than one packed k block; 70: a partial panel
    kernel = (rng.standard_normal((features, gates * units)) / np.sqrt(features)).astype(dtype)
    recurrent = (rng.standard_normal((units, gates * units)) / np.sqrt(units)).astype(dtype)
    bias = rng.standard_normal((2, 3 * units) if cell == "gru" and not extra else (gates * units,)).astype(dtype)
    x = rng.standard_normal((batch, steps, features)).astype(dtype)
    h0 = rng.standard_normal((batch, units)).astype(dtype)
    mask = rng.random((batch, steps)) < 0.8
    pack = ops.pack_weights(cell, kernel, recurrent)
    states = (h0, h0 * 0.5) if cell == "lstm" else (h0,)
    kw = dict(mask=mask, go_backwards=go_backwards, training=False, **extra)
    forward = getattr(ops, cell + "_forward")
    want = getattr(reference, cell + "_forward")(x, kernel, recurrent, bias, *states, mask=mask,
                                                  go_backwards=go_backwards, training=False, **extra)
    previous = rnnkit.get_num_threads()
    for threads in (1, 2):
        rnnkit.set_num_threads(threads)
        try:
            got = forward(x, pack.kernel, pack.recurrent_kernel, bias, *states, pack=pack, **kw)
        finally:
            rnnkit.set_num_threads(previous)
        for g, w in zip(got[:-1], want[:-1]):
            assert_rel_close(g, w, RTOL[dtype], cell)
        if threads == 1:
            first = got
        else:  # results do not depend on the thread count
            for a, b in zip(first[:-1], got[:-1]):
                np.testing.assert_array_equal(a, b)
    assert pack.packed_bytes > 0


def test_ops_pack_copies_and_checks(backend):
    rng = np.random.default_rng(6)
    kernel, recurrent = rng.standard_normal((3, 8)), rng.standard_normal((2, 8))
    pack = ops.pack_weights("lstm", kernel, recurrent)
    assert not pack.kernel.flags.writeable and not pack.recurrent_kernel.flags.writeable
    kernel[...] = 0   # the pack holds copies: changing the source does not reach it
    assert np.all(pack.kernel != 0)
    x = rng.standard_normal((1, 4, 3))
    got = ops.lstm_forward(x, pack.kernel, pack.recurrent_kernel, pack=pack, training=False)
    want = ops.lstm_forward(x, pack.kernel.copy(), pack.recurrent_kernel.copy(), training=False)
    for g, w in zip(got[:-1], want[:-1]):
        assert_rel_close(g, w, 1e-12)
    with pytest.raises(ValueError, match="pack was not made from this kernel"):
        ops.lstm_forward(x, kernel, pack.recurrent_kernel, pack=pack)
    with pytest.raises(ValueError, match="pack holds lstm weights"):
        ops.gru_forward(x, pack.kernel[:, :6], pack.recurrent_kernel[:, :6], pack=pack)
    with pytest.raises(TypeError, match="pack must be a rnnkit.ops.WeightPack"):
        ops.lstm_forward(x, kernel, recurrent, pack="packed")
    with pytest.raises(ValueError, match="cell must be one of"):
        ops.pack_weights("rnn", kernel, recurrent)


@needs_native
def test_native_weight_pack_refuses_writeable_arrays():
    from rnnkit import _native
    kernel, recurrent = np.ones((3, 4), np.float32), np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="kernel must be read-only"):
        _native.WeightPack(kernel, recurrent, 1)
    kernel.flags.writeable = False
    with pytest.raises(ValueError, match="recurrent_kernel must be read-only"):
        _native.WeightPack(kernel, recurrent, 1)
    with pytest.raises(ValueError, match="gates must be"):
        _native.WeightPack(kernel, recurrent, 7)


# ------------------------------------------------------------------------------------------------
# pack invalidation: every public route that changes weights
# ------------------------------------------------------------------------------------------------

def _fresh_output(layer, x):
    """What the layer computes from its current weights without any pack (a new, unpacked layer)."""
    twin = type(layer).from_config(dict(layer.get_config(), name=None))
    twin.build(x.shape[2])
    twin.set_weights(layer.get_weights())
    return twin(x)


def _new_weights(layer, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(w.shape).astype(w.dtype) * 0.3 for w in layer.get_weights()]


ROUTES = ["set_weights", "model_set_weights", "assign_kernel", "assign_recurrent_kernel",
          "assign_bias", "optimizer_apply", "fit", "load_model"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_every_weight_route_reaches_the_next_call(native, route, cls, tmp_path):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 5, 40)).astype(np.float32)
    model = rnnkit.Sequential([cls(48, return_sequences=True, seed=0)])   # big enough to keep a pack
    model.compile(optimizer=rnnkit.optimizers.SGD(0.5), loss="mse")
    model.build((None, 5, 40))
    layer = model.layers[0]
    before = layer(x)
    assert layer._pack is not None   # the inference call made (and keeps) a pack
    new = _new_weights(layer, 8)
    if route == "set_weights":
        layer.set_weights(new)
    elif route == "model_set_weights":
        model.set_weights(new)
    elif route.startswith("assign_"):
        setattr(layer, route[len("assign_"):], new[layer.weight_names.index(route[len("assign_"):])])
    elif route == "optimizer_apply":
        layer(x, training=True)
        layer.backward(np.ones_like(before))
        model.optimizer.apply(layer.grads, layer.weights)
    elif route == "fit":
        model.fit(x, np.ones_like(before), epochs=1, batch_size=1, verbose=0)
    elif route == "load_model":
        layer.set_weights(new)
        model.save(tmp_path / "m.npz")
        model = rnnkit.load_model(tmp_path / "m.npz")
        layer = model.layers[0]
        layer(x)  # packs the loaded weights
    after = layer(x)
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, _fresh_output(layer, x))
    y, _ = layer.step(x[:, 0])
    np.testing.assert_array_equal(y, _fresh_output(layer, x[:, :1])[:, 0])


def test_bidirectional_set_weights_reaches_both_packs(native):
    layer = rnnkit.Bidirectional(LSTM(48, return_sequences=True, seed=1))
    x = np.random.default_rng(10).standard_normal((1, 4, 40)).astype(np.float32)
    before = layer(x)
    assert layer.forward_layer._pack is not None and layer.backward_layer._pack is not None
    new = _new_weights(layer, 11)
    layer.set_weights(new)
    twin = rnnkit.Bidirectional(LSTM(48, return_sequences=True, seed=1))
    twin.build(40)
    twin.set_weights(new)
    after = layer(x)
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, twin(x))


def test_small_layers_keep_no_pack(native):
    small, big = SimpleRNN(4), SimpleRNN(64)
    small(np.ones((1, 3, 2), np.float32))
    big(np.ones((1, 3, 2), np.float32))
    assert small._pack is None and big._pack is not None


def test_weights_are_read_only_outside_the_routes(native):
    layer = LSTM(4)
    layer.build(3)
    for w in layer.weights:
        with pytest.raises(ValueError, match="read-only"):
            w[...] = 0
    assert all(w.flags.writeable for w in layer.get_weights())   # copies are the user's
    layer.weights[0] = np.zeros((3, 16), np.float32)              # a new list: the layer keeps its own
    assert layer.weights[0] is layer.kernel
    with pytest.raises(ValueError, match="must have shape"):
        layer.kernel = np.zeros((2, 16))
    no_bias = LSTM(4, use_bias=False)
    no_bias.build(3)
    assert no_bias.bias is None
    with pytest.raises(ValueError, match="has no bias"):
        no_bias.bias = np.zeros(16)


# ------------------------------------------------------------------------------------------------
# model.stream()
# ------------------------------------------------------------------------------------------------

def _stream_all(model, x, batch_size):
    stream = model.stream(batch_size=batch_size)
    return np.stack([stream.step(x[:, t]) for t in range(x.shape[1])], axis=1), stream


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_equals_predict(backend, dtype):
    model = rnnkit.Sequential([
        rnnkit.Masking(0.0, dtype=dtype),
        rnnkit.LSTM(12, return_sequences=True, seed=1, dtype=dtype),
        rnnkit.Dropout(0.5, dtype=dtype),
        rnnkit.GRU(9, return_sequences=True, seed=2, dtype=dtype),
        rnnkit.SimpleRNN(7, return_sequences=True, seed=3, dtype=dtype),
        rnnkit.Dense(3, activation="softmax", seed=4, dtype=dtype),
    ])
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 8, 5)).astype(dtype)
    x[1, 5:] = 0.0   # masked steps (Masking)
    x[2, 2] = 0.0
    want = model.predict(x)
    got, stream = _stream_all(model, x, 3)
    assert_rel_close(got, want, RTOL[dtype] * 10, "stream vs predict")
    assert [len(s) for s in stream.states] == [2, 1, 1]
    stream.reset()
    assert stream.states == [None, None, None]
    again = np.stack([stream.step(x[:, t]) for t in range(x.shape[1])], axis=1)
    np.testing.assert_array_equal(again, got)


def test_stream_last_state_model_and_embedding(backend):
    model = rnnkit.Sequential([rnnkit.Embedding(20, 6, mask_zero=True, seed=1),
                               rnnkit.LSTM(8, seed=2, dtype="float64")])
    ids = np.array([[3, 5, 7, 0, 0], [1, 2, 3, 4, 5]])
    model.build((None, 5))
    got, _ = _stream_all(model, ids, 2)
    for t in range(1, ids.shape[1] + 1):   # step t = predict on the prefix of length t
        assert_rel_close(got[:, t - 1], model.predict(ids[:, :t]).astype(got.dtype), 1e-5)


def test_stream_refuses_non_causal_models(native):
    cases = {
        "Bidirectional": [rnnkit.Bidirectional(rnnkit.LSTM(4, return_sequences=True))],
        "go_backwards": [rnnkit.GRU(4, go_backwards=True, return_sequences=True)],
        "return_sequences=False": [rnnkit.LSTM(4), rnnkit.Dense(2)],
        "Flatten": [rnnkit.SimpleRNN(4, return_sequences=True), rnnkit.Flatten()],
    }
    for what, layers in cases.items():
        model = rnnkit.Sequential(layers)
        with pytest.raises(ValueError, match=r"layer '.*'") as info:
            model.stream()
        assert what.split("=")[0] in str(info.value) or what == "Flatten" and "Flatten" in str(info.value)
    stream = rnnkit.Sequential([rnnkit.LSTM(4, return_sequences=True)]).stream(batch_size=2)
    with pytest.raises(ValueError, match="batch size 2"):
        stream.step(np.ones((3, 5), np.float32))
