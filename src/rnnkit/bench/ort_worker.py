"""ONNX Runtime side of ``rnnkit.bench``, run in its own process (like ``rnnkit.bench.torch_worker``) so that
ONNX Runtime's spinning thread pool never runs next to rnnkit's timings::

    python -m rnnkit.bench.ort_worker '{"dtype": "float32", "threads": 2, "timing": {...},
                                  "jobs": [{"cell": "lstm", "mode": "fwd", "shape": [B, T, I, H]}, ...]}'

Prints one JSON line on stdout: ``{"onnxruntime_version", "onnx_version", "threads", "results"}`` with,
per job in order, the timing summary of ``rnnkit.bench.summarize`` or ``{"error": message}``.

Modes (inference only: ONNX Runtime does not train):

- ``fwd``: the whole sequence, x (B, T, I) -> outputs (B, T, H) and the final state(s).
- ``step``: streaming, one time step per ``session.run`` on a T = 1 model whose ``initial_h``
  (and ``initial_c``) inputs carry the state returned by the previous call; one sample = one step.

Models are ONNX's own ``RNN`` (tanh) / ``LSTM`` / ``GRU`` operators (``linear_before_reset=1``, i.e.
Keras's ``reset_after=True`` and PyTorch's GRU) with the weights of ``rnnkit.bench.make_problem``, so
that ONNX Runtime runs the same math as rnnkit. The ``fwd`` model is the problem's rnnkit layer
exported by ``rnnkit.interop.to_onnx`` (:func:`exported_model`: what a user deploys); the ``step``
model, whose state inputs ``to_onnx`` does not export, is built here by :func:`onnx_model` at opset
14 with :func:`onnx_weights` (rnnkit.interop's conversion). ONNX's layout is time-major (T, B, I): ONNX Runtime's CPU kernels reject
``layout=1`` ("Batchwise recurrent operations (layout == 1) are not supported", 1.32), so the
whole-sequence model transposes x to (T, B, I) and Y back to (B, T, H) inside the graph; the T = 1
step model needs no transpose (x_t (B, I) is fed as (1, B, I), a NumPy view). ONNX Runtime's CPU RNN
kernels are float32 only (float64 raises NOT_IMPLEMENTED), so the harness asks for float32 only.
Sessions: ``intra_op_num_threads = threads``, ``inter_op_num_threads = 1``, sequential execution,
``ORT_ENABLE_ALL`` graph optimisations, CPU execution provider.
"""

from __future__ import annotations

import json
import sys

import numpy as np

# the weight conversion is rnnkit.interop's (docs/SPEC.md §17), shared with to_onnx
from rnnkit.interop.onnx import GATES, LSTM_TO_ONNX, ONNX_OPS, onnx_weights  # noqa: F401

ONNX_ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid"}
OPSET = 14  # the opset that added `layout` to RNN/LSTM/GRU; ONNX Runtime 1.16+ runs it
IR_VERSION = 8  # onnx 1.10+ and every onnxruntime >= 1.10 read it


def exported_model(cell: str, problem):
    """The whole-sequence model of the ``fwd`` column: the rnnkit layer of ``problem`` (its weights,
    ``return_sequences=True``) in a Sequential exported by ``rnnkit.interop.to_onnx`` — the same file
    a user gets, so the column times the exported model. Input ``x`` (B, T, I), output ``y`` (B, T, H)."""
    import rnnkit
    from rnnkit.interop import to_onnx

    kernel, recurrent_kernel, bias = problem["kernel"], problem["recurrent_kernel"], problem["bias"]
    layer_class = {"simple_rnn": rnnkit.SimpleRNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}[cell]
    layer = layer_class(recurrent_kernel.shape[0], use_bias=bias is not None, return_sequences=True,
                        dtype=kernel.dtype.name)
    layer.build(kernel.shape[0])
    layer.set_weights([kernel, recurrent_kernel] + ([] if bias is None else [bias]))
    return to_onnx(rnnkit.Sequential([layer]))


def onnx_model(cell: str, weights, *, activation: str = "tanh", reset_after: bool = True,
               initial_states: bool = False, step: bool = False):
    """An ONNX model (``onnx.ModelProto``) running one layer of ``cell`` with ``weights = (W, R, B)``
    from :func:`onnx_weights` stored as initializers (float32 or float64, as W).

    Whole sequence (``step=False``): input ``x`` (B, T, I), batch-first like rnnkit; outputs ``y``
    (B, T, H) and ``h`` (1, B, H) (LSTM also ``c``). ``initial_states=True`` adds the inputs ``h0``
    (1, B, H) (LSTM also ``c0``); without them ONNX starts from zeros.
    Streaming step (``step=True``): inputs ``x`` (1, B, I) (one time step, time-major), ``h0`` (and
    ``c0``); outputs ``h`` (and ``c``), each (1, B, H): y_t is h.
    B and T are symbolic. ``activation`` applies to SimpleRNN only (tanh, relu, sigmoid);
    LSTM and GRU use ONNX's defaults (sigmoid gates, tanh), as rnnkit's defaults.
    """
    from onnx import TensorProto, helper, numpy_helper

    w, r, b = weights
    units = r.shape[-1]
    features = w.shape[-1]
    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}[w.dtype]
    is_lstm = cell == "lstm"
    initial_states = initial_states or step
    nodes, inputs = [], []
    x_shape = [1, "B", features] if step else ["B", "T", features]
    inputs.append(helper.make_tensor_value_info("x", elem, x_shape))
    if step:
        x_name = "x"
    else:
        nodes.append(helper.make_node("Transpose", ["x"], ["x_tbi"], perm=[1, 0, 2]))
        x_name = "x_tbi"
    op_inputs = [x_name, "W", "R", "B", ""]  # "" = sequence_lens (all steps)
    if initial_states:
        op_inputs.append("h0")
        inputs.append(helper.make_tensor_value_info("h0", elem, [1, "B", units]))
        if is_lstm:
            op_inputs.append("c0")
            inputs.append(helper.make_tensor_value_info("c0", elem, [1, "B", units]))
    else:
        op_inputs = op_inputs[:4]
    attributes = {"hidden_size": units}
    if cell == "simple_rnn":
        if activation not in ONNX_ACTIVATIONS:
            raise ValueError(f"simple_rnn activation {activation!r} has no ONNX RNN equivalent here; "
                             f"choose from {', '.join(ONNX_ACTIVATIONS)}")
        attributes["activations"] = [ONNX_ACTIVATIONS[activation]]
    if cell == "gru":
        attributes["linear_before_reset"] = 1 if reset_after else 0
    state_outputs = ["h", "c"] if is_lstm else ["h"]
    y_name = "" if step else "y_tbh"  # the step model needs only the state (y_t is h)
    nodes.append(helper.make_node(ONNX_OPS[cell], op_inputs, [y_name, *state_outputs], **attributes))
    outputs = []
    if not step:
        # Y (T, 1, B, H) -> (B, T, 1, H) -> (B, T, H)
        nodes.append(helper.make_node("Transpose", ["y_tbh"], ["y_bt1h"], perm=[2, 0, 1, 3]))
        nodes.append(helper.make_node("Squeeze", ["y_bt1h", "squeeze_axes"], ["y"]))
        outputs.append(helper.make_tensor_value_info("y", elem, ["B", "T", units]))
    outputs += [helper.make_tensor_value_info(name, elem, [1, "B", units]) for name in state_outputs]
    initializers = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"),
                    numpy_helper.from_array(b, "B")]
    if not step:
        initializers.append(numpy_helper.from_array(np.array([2], np.int64), "squeeze_axes"))
    graph = helper.make_graph(nodes, f"rnnkit_{cell}", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rnnkit.bench")
    model.ir_version = IR_VERSION
    return model


def make_session(model, threads: int):
    """An ``onnxruntime.InferenceSession`` on the CPU with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only (a failed job is reported in the JSON anyway)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def make_ort_call(cell: str, shape, mode: str, dtype: str, threads: int):
    """Return a no-argument function running one ``mode`` call (``fwd``: the whole sequence;
    ``step``: one step, the state carried from the previous call) of ONNX Runtime on the weights and
    inputs of ``rnnkit.bench.make_problem(cell, shape, dtype)``."""
    from rnnkit.bench import make_problem

    problem = make_problem(cell, tuple(shape), dtype, d_outputs=False)
    x = problem["x"]
    if mode == "fwd":
        session = make_session(exported_model(cell, problem), threads)
        feeds = {"x": x}

        def run():
            return session.run(None, feeds)
        return run
    if mode != "step":
        raise ValueError(f"onnxruntime runs inference only: mode 'fwd' or 'step', got {mode!r}")
    weights = onnx_weights(cell, problem["kernel"], problem["recurrent_kernel"], problem["bias"])
    session = make_session(onnx_model(cell, weights, step=True), threads)
    batch, steps, _, units = shape
    x_steps = [np.ascontiguousarray(x[:, t])[None] for t in range(steps)]  # (1, B, I) each
    state_names = ("h0", "c0") if cell == "lstm" else ("h0",)
    zeros = np.zeros((1, batch, units), x.dtype)
    carried = {"t": 0, "states": [zeros] * len(state_names)}

    def run():
        t = carried["t"]
        feeds = {"x": x_steps[t]}
        feeds.update(zip(state_names, carried["states"]))
        states = session.run(None, feeds)
        carried["states"] = states
        carried["t"] = t + 1 if t + 1 < steps else 0
        return states[0]
    return run


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m rnnkit.bench.ort_worker JSON_REQUEST", file=sys.stderr)
        return 2
    request = json.loads(argv[0])
    import onnx
    import onnxruntime

    from rnnkit.bench import summarize, time_call

    threads = int(request["threads"])
    timing = request.get("timing", {})
    results = []
    for job in request["jobs"]:
        try:
            run = make_ort_call(job["cell"], job["shape"], job["mode"], request["dtype"], threads)
            results.append(summarize(time_call(run, **timing)))
        except Exception as exc:  # report per job; one failing model should not hide the others
            results.append({"error": f"{type(exc).__name__}: {exc}"})
    print(json.dumps({"onnxruntime_version": onnxruntime.__version__, "onnx_version": onnx.__version__,
                      "threads": threads, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
