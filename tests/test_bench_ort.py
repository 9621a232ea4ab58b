"""The ONNX model of the benchmark's ONNX Runtime column runs the same math as rnnkit: rnnkit's
weights converted by ``rnnkit.bench.ort_worker.onnx_weights`` give, in ONNX Runtime, rnnkit's layer outputs
and final states (float32, rtol = atol = 1e-5). Skipped when onnx or onnxruntime is not installed
(CI installs both)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import rnnkit  # noqa: E402
from rnnkit.bench import ort_worker as _bench_ort  # noqa: E402

pytestmark = pytest.mark.onnx

B, T, I, H = 3, 7, 5, 6
TOL = dict(rtol=1e-5, atol=1e-5)

LAYERS = {
    "simple_rnn": lambda **kw: rnnkit.SimpleRNN(H, activation="tanh", **kw),
    "lstm": lambda **kw: rnnkit.LSTM(H, **kw),
    "gru": lambda **kw: rnnkit.GRU(H, reset_after=True, **kw),
    "gru_reset_before": lambda **kw: rnnkit.GRU(H, reset_after=False, **kw),
}


def _layer_and_data(name, seed=0):
    rng = np.random.default_rng(seed)
    layer = LAYERS[name](return_sequences=True, return_state=True, seed=seed)
    layer.build(I)
    # non-zero biases, so that a mistake in the bias layout shows
    kernel, recurrent_kernel, bias = layer.get_weights()
    layer.set_weights([kernel, recurrent_kernel, rng.standard_normal(bias.shape).astype(np.float32) * 0.5])
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    states = [rng.standard_normal((B, H)).astype(np.float32) * 0.5 for _ in layer.state_names]
    return layer, x, states


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("with_states", [False, True], ids=["zero-states", "initial-states"])
def test_onnx_model_matches_rnnkit_layer(name, with_states):
    layer, x, states = _layer_and_data(name)
    cell = layer.cell
    reset_after = getattr(layer, "reset_after", True)
    expected = layer(x, initial_state=states if with_states else None)

    weights = _bench_ort.onnx_weights(cell, *layer.get_weights(), reset_after=reset_after)
    model = _bench_ort.onnx_model(cell, weights, reset_after=reset_after, initial_states=with_states)
    session = _bench_ort.make_session(model, threads=1)
    feeds = {"x": x}
    if with_states:
        feeds.update({name: s[None] for name, s in zip(("h0", "c0"), states)})
    got = session.run(None, feeds)

    assert len(got) == len(expected)
    assert got[0].shape == (B, T, H)
    np.testing.assert_allclose(got[0], expected[0], **TOL)
    for got_state, expected_state in zip(got[1:], expected[1:]):
        assert got_state.shape == (1, B, H)
        np.testing.assert_allclose(got_state[0], expected_state, **TOL)


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru"])
def test_step_model_carries_the_state_like_the_whole_sequence(name):
    """The T = 1 model of the streaming column, called step by step with the state carried, gives
    rnnkit's whole-sequence outputs."""
    layer, x, states = _layer_and_data(name, seed=1)
    expected = layer(x, initial_state=states)
    weights = _bench_ort.onnx_weights(layer.cell, *layer.get_weights())
    session = _bench_ort.make_session(_bench_ort.onnx_model(layer.cell, weights, step=True), threads=1)
    carried = [s[None] for s in states]
    outputs = []
    for t in range(T):
        feeds = {"x": np.ascontiguousarray(x[:, t])[None]}
        feeds.update(zip(("h0", "c0"), carried))
        carried = session.run(None, feeds)
        outputs.append(carried[0][0])
    np.testing.assert_allclose(np.stack(outputs, axis=1), expected[0], **TOL)
    for got_state, expected_state in zip(carried, expected[1:]):
        np.testing.assert_allclose(got_state[0], expected_state, **TOL)


def test_lstm_gate_order_is_converted():
    """rnnkit's LSTM blocks i, f, c, o become ONNX's i, o, f, c; W is kernel transposed."""
    kernel = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 12)  # I = 2, H = 3
    recurrent_kernel = np.arange(3 * 12, dtype=np.float32).reshape(3, 12)
    bias = np.arange(12, dtype=np.float32)
    w, r, b = _bench_ort.onnx_weights("lstm", kernel, recurrent_kernel, bias)
    assert w.shape == (1, 12, 2) and r.shape == (1, 12, 3) and b.shape == (1, 24)
    i, f, c, o = np.split(kernel, 4, axis=1)
    np.testing.assert_array_equal(w[0], np.concatenate([i, o, f, c], axis=1).T)
    np.testing.assert_array_equal(b[0, :12], [0, 1, 2, 9, 10, 11, 3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(b[0, 12:], 0)


def test_converter_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="reset_after=True: expected bias"):
        _bench_ort.onnx_weights("gru", np.zeros((2, 9)), np.zeros((3, 9)), np.zeros(9))
    with pytest.raises(ValueError, match="expected kernel"):
        _bench_ort.onnx_weights("lstm", np.zeros((2, 9)), np.zeros((3, 9)))
