"""rnnkit.interop.to_onnx (docs/INTEROP.md §3, docs/SPEC.md §17): every cell and flag, Bidirectional
merges, stacks and Embedding front ends, with and without the ``lengths`` input, checked with
``onnx.checker`` and run in ONNX Runtime at batch and time sizes other than the export's (the model
is exported with symbolic axes; tests run B = 5, T = 7 and B = 2, T = 11). float32 tolerance
(docs/SPEC.md §14.7): |rnnkit - ORT| <= 1e-5 * max(1, max |rnnkit|)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import rnnkit  # noqa: E402
from rnnkit.interop import to_onnx  # noqa: E402

pytestmark = pytest.mark.onnx

I = 3
SIZES = [(5, 7), (2, 11)]
LENGTHS = {5: np.array([7, 0, 3, 1, 5], np.int32), 2: np.array([11, 4], np.int32)}


def session(onnx_model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def randomize(model, seed=0):
    """Nonzero weights everywhere (biases too), scale ~0.5, so every array matters."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.standard_normal(w.shape).astype(w.dtype) * 0.5 for w in layer.get_weights()])


def check(layers, *, lengths=False, ids=False, vocab=10, input_shape=None, sizes=SIZES, seed=0, **options):
    model = rnnkit.Sequential(layers)
    model.build(input_shape or ((None, None) if ids else (None, None, I)))
    randomize(model, seed)
    onnx_model = to_onnx(model, lengths=lengths, **options)
    sess = session(onnx_model)
    rng = np.random.default_rng(seed + 1)
    for batch, steps in sizes:
        if ids:
            x = rng.integers(0, vocab, (batch, steps))
        else:
            x = rng.standard_normal((batch, steps, I)).astype(np.float32)
        feeds = {"x": x}
        kwargs = {}
        if lengths:
            feeds["lengths"] = kwargs["lengths"] = np.minimum(LENGTHS[batch], steps).astype(np.int32)
        want = model.predict(x, **kwargs)
        (got,) = sess.run(None, feeds)
        assert got.shape == want.shape
        scale = max(1.0, float(np.abs(want).max()))
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)
    return onnx_model


CELLS = [
    ("simple_rnn", {"activation": "tanh"}),
    ("simple_rnn", {"activation": "relu"}),
    ("simple_rnn", {"activation": "sigmoid"}),
    ("simple_rnn", {"activation": "linear"}),
    ("lstm", {}),
    ("lstm", {"recurrent_activation": "hard_sigmoid", "use_bias": False}),
    ("gru", {"reset_after": True}),
    ("gru", {"reset_after": False}),
    ("gru", {"reset_after": True, "recurrent_activation": "hard_sigmoid", "activation": "relu"}),
]
CLASSES = {"simple_rnn": rnnkit.SimpleRNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}


def cell_id(param):
    cell, kwargs = param
    return cell + "".join(f"-{k}={v}" for k, v in kwargs.items())


@pytest.mark.parametrize("lengths", [False, True], ids=["all-steps", "lengths"])
@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["fwd", "go_backwards"])
@pytest.mark.parametrize("cell", CELLS, ids=[cell_id(c) for c in CELLS])
def test_each_cell(cell, go_backwards, return_sequences, lengths):
    name, kwargs = cell
    layer = CLASSES[name](4, return_sequences=return_sequences, go_backwards=go_backwards, **kwargs)
    check([layer], lengths=lengths)


@pytest.mark.parametrize("lengths", [False, True], ids=["all-steps", "lengths"])
@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_bidirectional(cell, merge_mode, return_sequences, lengths):
    layer = rnnkit.Bidirectional(CLASSES[cell](4, return_sequences=return_sequences), merge_mode=merge_mode)
    model = check([layer], lengths=lengths)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count({"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell]) == 1  # one bidirectional op


@pytest.mark.parametrize("lengths", [False, True], ids=["all-steps", "lengths"])
def test_bidirectional_with_unlike_directions(lengths):
    """Directions of different configuration export as two operators (forward, reverse)."""
    forward = rnnkit.GRU(4, return_sequences=True, activation="relu")
    backward = rnnkit.GRU(4, return_sequences=True, go_backwards=True, reset_after=False)
    layer = rnnkit.Bidirectional(forward, merge_mode="concat", backward_layer=backward)
    model = check([layer, rnnkit.Dense(2)], lengths=lengths)
    assert [n.op_type for n in model.graph.node].count("GRU") == 2


@pytest.mark.parametrize("lengths", [False, True], ids=["all-steps", "lengths"])
def test_stack(lengths):
    layers = [rnnkit.LSTM(6, return_sequences=True),
              rnnkit.Bidirectional(rnnkit.GRU(4, return_sequences=True, reset_after=False), merge_mode="ave"),
              rnnkit.SimpleRNN(5, return_sequences=True, go_backwards=True),
              rnnkit.Dropout(0.3),
              rnnkit.Dense(3, activation="tanh"),
              rnnkit.GRU(2),
              rnnkit.Dense(4, activation="softmax")]
    model = check(layers, lengths=lengths)
    ops = [n.op_type for n in model.graph.node]
    # the sequence stays time-major from the first recurrent operator on: one Transpose in, none
    # out (the last GRU returns (B, H)), none around the Bidirectional's merge or the Dense layer
    assert ops[0] == "Transpose" and ops.count("Transpose") == 1


@pytest.mark.parametrize("lengths", [False, True], ids=["all-steps", "lengths"])
@pytest.mark.parametrize("second", ["gru", "bidirectional-lstm"])
def test_embedding_front_end(second, lengths):
    rnn = (rnnkit.GRU(4, return_sequences=True) if second == "gru"
           else rnnkit.Bidirectional(rnnkit.LSTM(4, return_sequences=True)))
    check([rnnkit.Embedding(10, 5), rnn, rnnkit.Dense(2, activation="sigmoid")], ids=True, lengths=lengths)


def test_dense_and_flatten_with_fixed_time():
    layers = [rnnkit.SimpleRNN(4, return_sequences=True), rnnkit.Flatten(),
              rnnkit.Dense(3, activation="hard_sigmoid"), rnnkit.Dense(2, use_bias=False)]
    model = check(layers, input_shape=(None, 6, I), sizes=[(5, 6), (1, 6)], dynamic_time=False)
    dims = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 6, I]


def test_fixed_batch_and_file(tmp_path):
    model = rnnkit.Sequential([rnnkit.LSTM(4)])
    model.build((None, None, I))
    path = tmp_path / "m.onnx"
    to_onnx(model, path, dynamic_batch=False, batch_size=2, opset=14)
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded.opset_import[0].version == 14
    dims = [d.dim_value or d.dim_param for d in loaded.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, "time", I]
    x = np.random.default_rng(0).standard_normal((2, 9, I)).astype(np.float32)
    (got,) = session(loaded).run(None, {"x": x})
    np.testing.assert_allclose(got, model.predict(x), rtol=0, atol=1e-5)


def test_go_backwards_output_order_is_processing_order():
    """Explicitly: output step 0 of a go_backwards layer belongs to the last input step (§8)."""
    layer = rnnkit.SimpleRNN(2, return_sequences=True, go_backwards=True)
    model = rnnkit.Sequential([layer])
    model.build((None, None, 1))
    x = np.zeros((1, 4, 1), np.float32)
    x[0, -1, 0] = 1.0  # only the last input step is nonzero: it is processed first
    (got,) = session(to_onnx(model)).run(None, {"x": x})
    want = model.predict(x)
    assert np.abs(want[0, 0]).max() > 0
    np.testing.assert_allclose(got, want, atol=1e-6)


# -- refusals -----------------------------------------------------------------------------------

def built(layers, shape=(None, None, I)):
    model = rnnkit.Sequential(layers)
    model.build(shape)
    return model


@pytest.mark.parametrize("make, match", [
    (lambda: built([rnnkit.Masking(), rnnkit.LSTM(2)]), r"'masking.*' \(Masking\).*lengths=True"),
    (lambda: built([rnnkit.Embedding(5, 2, mask_zero=True, name="emb"), rnnkit.LSTM(2)], (None, None)),
     r"'emb' \(Embedding\).*mask_zero"),
    (lambda: built([rnnkit.GRU(2, stateful=True, name="g")]), r"'g' \(GRU\).*stateful"),
    (lambda: [rnnkit.Bidirectional(rnnkit.LSTM(2, return_sequences=True, name="l"), merge_mode=None,
                                   name="bi")],
     r"'bi' \(Bidirectional\).*merge_mode=None"),
])
def test_refusals_name_the_layer(make, match):
    model = make()
    if isinstance(model, list):
        model[0].build(I)
    with pytest.raises(ValueError, match=match):
        to_onnx(model)


def test_unknown_layer_lists_supported():
    from rnnkit.layers.base import Layer

    class Custom(Layer):
        pass

    layer = Custom(name="custom")
    layer.built = True
    model = built([rnnkit.LSTM(2, return_sequences=True), rnnkit.Dense(2)])
    model._layers.append(layer)
    with pytest.raises(ValueError, match=r"'custom' \(Custom\).*supported layers: SimpleRNN, LSTM"):
        to_onnx(model)


def test_unbuilt_and_bad_opset():
    with pytest.raises(ValueError, match="not built"):
        to_onnx(rnnkit.Sequential([rnnkit.LSTM(2)]))
    with pytest.raises(ValueError, match="opset must be at least 14"):
        to_onnx(built([rnnkit.LSTM(2)]), opset=12)
    with pytest.raises(TypeError, match="rnnkit.Sequential"):
        to_onnx(object())


# -- the benchmark's ONNX Runtime column times the exported model --------------------------------

@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_bench_column_runs_the_exported_model(cell):
    from rnnkit.bench import make_problem
    from rnnkit.bench import ort_worker

    shape = (3, 5, 4, 6)
    problem = make_problem(cell, shape, "float32", d_outputs=False)
    model = ort_worker.exported_model(cell, problem)
    assert model.producer_name == "rnnkit.interop"
    run = ort_worker.make_ort_call(cell, shape, "fwd", "float32", threads=1)
    (got,) = run()
    reference = rnnkit.Sequential([CLASSES[cell](6, return_sequences=True)])
    reference.build((None, None, 4))
    reference.set_weights([problem["kernel"], problem["recurrent_kernel"], problem["bias"]])
    np.testing.assert_allclose(got, reference.predict(problem["x"]), rtol=1e-5, atol=1e-5)
