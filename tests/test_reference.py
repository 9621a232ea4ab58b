"""The NumPy reference (rnnkit.reference) checked on its own: gradients against central finite
differences in float64, the sequence semantics of docs/SPEC.md §7–§10, and small known values.

The modules are imported directly so these tests do not depend on the rest of the package.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from numerics import numeric_grad

from rnnkit.reference import activations as ref_act
from rnnkit.reference import gru as ref_gru
from rnnkit.reference import lstm as ref_lstm
from rnnkit.reference import simple_rnn as ref_srnn

# Finite differences: central, eps=1e-6, float64. Truncation error ~eps**2, rounding ~1e-16/eps
# relative to the loss, hence the small absolute floor for gradient entries near zero.
EPS = 1e-6
FD_RTOL, FD_ATOL = 1e-6, 1e-8


# --------------------------------------------------------------------------------------------------
# A uniform view of the three cells: forward(params, options) -> outputs, [states], cache and
# backward(d_outputs, [d_states], cache) -> {param name: gradient}.
# --------------------------------------------------------------------------------------------------

class Cell:
    def __init__(self, name, gates, states, forward, backward, bias_shape):
        self.name, self.gates, self.states = name, gates, states
        self._forward, self._backward, self.bias_shape = forward, backward, bias_shape

    def forward(self, p, **options):
        *outputs_and_states, cache = self._forward(p, options)
        return outputs_and_states[0], outputs_and_states[1:], cache

    def backward(self, d_outputs, d_states, cache):
        return self._backward(d_outputs, d_states, cache)


def _srnn_forward(p, o):
    return ref_srnn.simple_rnn_forward(p["x"], p["kernel"], p["recurrent_kernel"], p["bias"], p["h0"], **o)


def _srnn_backward(d_out, d_states, cache):
    grads = ref_srnn.simple_rnn_backward(d_out, d_states[0], cache)
    return dict(zip(["x", "kernel", "recurrent_kernel", "bias", "h0"], grads))


def _lstm_forward(p, o):
    return ref_lstm.lstm_forward(p["x"], p["kernel"], p["recurrent_kernel"], p["bias"], p["h0"], p["c0"], **o)


def _lstm_backward(d_out, d_states, cache):
    grads = ref_lstm.lstm_backward(d_out, d_states[0], d_states[1], cache)
    return dict(zip(["x", "kernel", "recurrent_kernel", "bias", "h0", "c0"], grads))


def _gru_forward(p, o):
    return ref_gru.gru_forward(p["x"], p["kernel"], p["recurrent_kernel"], p["bias"], p["h0"], **o)


def _gru_backward(d_out, d_states, cache):
    grads = ref_gru.gru_backward(d_out, d_states[0], cache)
    return dict(zip(["x", "kernel", "recurrent_kernel", "bias", "h0"], grads))


CELLS = {
    "simple_rnn": Cell("simple_rnn", 1, ["h0"], _srnn_forward, _srnn_backward, lambda h, o: (h,)),
    "lstm": Cell("lstm", 4, ["h0", "c0"], _lstm_forward, _lstm_backward, lambda h, o: (4 * h,)),
    "gru": Cell("gru", 3, ["h0"], _gru_forward, _gru_backward,
                lambda h, o: (2, 3 * h) if o.get("reset_after", True) else (3 * h,)),
}


def make_mask(kind, rng, batch, steps):
    """None, a lengths-style mask with a zero-length and a full-length row, or a random mask whose
    first row is all masked and second row has holes."""
    if kind is None:
        return None
    if kind == "lengths":
        lengths = rng.integers(0, steps + 1, size=batch)
        lengths[0], lengths[-1] = 0, steps
        return np.arange(steps) < lengths[:, None]
    assert kind == "random"
    mask = rng.random((batch, steps)) < 0.6
    mask[0] = False
    return mask


def make_params(cell, rng, batch, steps, features, units, *, bias=True, initial=True, options=(),
                scale=0.8, dtype=np.float64):
    options = dict(options)
    g = cell.gates
    p = {
        "x": rng.normal(size=(batch, steps, features)),
        "kernel": scale * rng.normal(size=(features, g * units)),
        "recurrent_kernel": scale * rng.normal(size=(units, g * units)),
        "bias": 0.5 * rng.normal(size=cell.bias_shape(units, options)) if bias else None,
    }
    for name in cell.states:
        p[name] = rng.normal(size=(batch, units)) if initial else None
    return {k: (None if v is None else v.astype(dtype)) for k, v in p.items()}


def scalar_loss(outputs, states, d_outputs, d_states):
    """L = sum(d_out * outputs) + sum(d_h * h_last) (+ sum(d_c * c_last)); None terms are absent."""
    loss = 0.0
    if d_outputs is not None:
        loss += np.sum(d_outputs * outputs)
    for d, s in zip(d_states, states):
        if d is not None:
            loss += np.sum(d * s)
    return loss


def check_gradients(cell, p, options, d_outputs, d_states):
    """Compare every reference gradient with central finite differences of scalar_loss."""
    _, _, cache = cell.forward(p, **options)
    grads = cell.backward(d_outputs, d_states, cache)

    # An absent bias has no gradient; an absent initial state has one (w.r.t. the zeros used).
    if p["bias"] is None:
        assert grads["bias"] is None
    fd_params = dict(p)
    batch, units = p["x"].shape[0], p["recurrent_kernel"].shape[0]
    for name in cell.states:
        if fd_params[name] is None:
            fd_params[name] = np.zeros((batch, units))

    def loss(q):
        outputs, states, _ = cell.forward(q, training=False, **options)
        return scalar_loss(outputs, states, d_outputs, d_states)

    for name, value in list(fd_params.items()):
        if value is None:
            continue
        fd_params[name] = value = value.copy()  # perturbed in place by numeric_grad
        numeric = numeric_grad(lambda: loss(fd_params), value, EPS)
        assert grads[name].dtype == np.float64
        assert grads[name].shape == value.shape
        np.testing.assert_allclose(grads[name], numeric, rtol=FD_RTOL, atol=FD_ATOL, err_msg=name)


def random_incoming(rng, cell, batch, steps, units, missing=()):
    """Random d_outputs and d_states, with the named ones (``"outputs"``, ``"h"``, ``"c"``) None."""
    d_outputs = None if "outputs" in missing else rng.normal(size=(batch, steps, units))
    names = ["h", "c"][:len(cell.states)]
    d_states = [None if n in missing else rng.normal(size=(batch, units)) for n in names]
    return d_outputs, d_states


# Cell variants: (cell, options, input scale). hard_sigmoid and relu have kinks; with the fixed
# seeds below no pre-activation lies within EPS of one, and the larger input scale for hard_sigmoid
# makes some gates saturate so the zero-derivative branch is exercised too.
VARIANTS = {
    "srnn-tanh": ("simple_rnn", {"activation": "tanh"}, 0.8),
    "srnn-relu": ("simple_rnn", {"activation": "relu"}, 0.8),
    "srnn-sigmoid": ("simple_rnn", {"activation": "sigmoid"}, 0.8),
    "srnn-linear": ("simple_rnn", {"activation": "linear"}, 0.5),
    "lstm": ("lstm", {}, 0.8),
    "lstm-hard_sigmoid": ("lstm", {"recurrent_activation": "hard_sigmoid"}, 2.0),
    "lstm-tanh": ("lstm", {"recurrent_activation": "tanh"}, 0.8),
    # Not activation=relu: with c0 = 0 a step whose candidate is relu(z_c) = 0 leaves c_t = 0
    # exactly, on the kink of relu(c_t), where a central difference is meaningless.
    "lstm-linear-relu": ("lstm", {"activation": "linear", "recurrent_activation": "relu"}, 0.5),
    "gru": ("gru", {"reset_after": True}, 0.8),
    "gru-v1": ("gru", {"reset_after": False}, 0.8),
    "gru-hard_sigmoid": ("gru", {"reset_after": True, "recurrent_activation": "hard_sigmoid"}, 2.0),
    "gru-v1-hard_sigmoid": ("gru", {"reset_after": False, "recurrent_activation": "hard_sigmoid"}, 2.0),
    "gru-tanh": ("gru", {"reset_after": True, "recurrent_activation": "tanh"}, 0.8),
    "gru-v1-tanh-relu": ("gru", {"reset_after": False, "activation": "relu", "recurrent_activation": "tanh"}, 0.8),
}
DEFAULT_VARIANTS = ["srnn-tanh", "lstm", "gru", "gru-v1"]


def _variant_cases():
    """Every option combination for the default variants; a with-everything and a bare case for
    the others."""
    for variant in VARIANTS:
        if variant in DEFAULT_VARIANTS:
            combos = itertools.product([True, False], [True, False], [None, "random", "lengths"], [False, True])
        else:
            combos = [(True, True, "random", True), (False, False, None, False)]
        for bias, initial, mask, go_backwards in combos:
            case_id = (f"{variant}-{'bias' if bias else 'nobias'}-{'h0' if initial else 'noh0'}"
                       f"-mask={mask}-{'back' if go_backwards else 'fwd'}")
            yield pytest.param(variant, bias, initial, mask, go_backwards, id=case_id)


def _shape_for(seed):
    rng = np.random.default_rng(seed)
    return int(rng.integers(2, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 5))


@pytest.mark.parametrize("variant, bias, initial, mask_kind, go_backwards", list(_variant_cases()))
def test_gradients_match_finite_differences(variant, bias, initial, mask_kind, go_backwards):
    cell_name, options, scale = VARIANTS[variant]
    cell = CELLS[cell_name]
    seed = sum(map(ord, f"{variant}{bias}{initial}{mask_kind}{go_backwards}"))  # stable across runs
    rng = np.random.default_rng(seed)
    batch, steps, features, units = 3, 4, 3, 3
    if mask_kind is None:  # vary the shapes (including 1s) where masks do not need several rows/steps
        batch, steps, features, units = _shape_for(seed)
    p = make_params(cell, rng, batch, steps, features, units, bias=bias, initial=initial,
                    options=options, scale=scale)
    mask = make_mask(mask_kind, rng, batch, steps)
    d_outputs, d_states = random_incoming(rng, cell, batch, steps, units)
    check_gradients(cell, p, dict(options, mask=mask, go_backwards=go_backwards), d_outputs, d_states)


def _missing_cases():
    for variant in DEFAULT_VARIANTS:
        lstm = VARIANTS[variant][0] == "lstm"
        for missing in [("outputs",), ("h",), ("c",), ("outputs", "h", "c")]:
            if lstm or missing != ("c",):
                yield pytest.param(variant, missing, id=f"{variant}-no-{'-'.join(missing)}")


@pytest.mark.parametrize("variant, missing", list(_missing_cases()))
def test_gradients_with_absent_incoming_gradients(variant, missing):
    cell_name, options, scale = VARIANTS[variant]
    cell = CELLS[cell_name]
    rng = np.random.default_rng(7)
    batch, steps, features, units = 3, 4, 2, 3
    p = make_params(cell, rng, batch, steps, features, units, options=options, scale=scale)
    mask = make_mask("random", rng, batch, steps)
    d_outputs, d_states = random_incoming(rng, cell, batch, steps, units, missing=missing)
    check_gradients(cell, p, dict(options, mask=mask), d_outputs, d_states)


@pytest.mark.parametrize("variant", DEFAULT_VARIANTS)
def test_gradients_without_return_sequences(variant):
    """A cache made with return_sequences=False backpropagates d_h_last (and d_c_last) alone."""
    cell_name, options, scale = VARIANTS[variant]
    cell = CELLS[cell_name]
    rng = np.random.default_rng(11)
    p = make_params(cell, rng, 2, 3, 2, 3, options=options, scale=scale)
    mask = make_mask("lengths", rng, 2, 3)
    _, d_states = random_incoming(rng, cell, 2, 3, 3)
    outputs, states, cache = cell.forward(p, mask=mask, return_sequences=False, **options)
    assert outputs is None
    grads = cell.backward(None, d_states, cache)
    full = cell.backward(None, d_states, cell.forward(p, mask=mask, **options)[2])
    for name, g in grads.items():
        np.testing.assert_array_equal(g, full[name], err_msg=name)
    with pytest.raises(ValueError, match="return_sequences"):
        cell.backward(np.ones((2, 3, 3)), d_states, cache)


# --------------------------------------------------------------------------------------------------
# Semantics: masks, go_backwards, return_sequences, training, dtypes
# --------------------------------------------------------------------------------------------------

SEM_RTOL, SEM_ATOL = 1e-12, 1e-14   # same maths, possibly different BLAS summation order


@pytest.fixture(params=DEFAULT_VARIANTS)
def setup(request):
    cell_name, options, scale = VARIANTS[request.param]
    cell = CELLS[cell_name]
    rng = np.random.default_rng(3)
    p = make_params(cell, rng, 4, 5, 3, 4, options=options, scale=scale)
    return cell, options, p, rng


def test_masked_output_rows_are_zero_and_final_state_is_last_valid(setup):
    cell, options, p, rng = setup
    mask = make_mask("random", rng, 4, 5)
    mask[1] = [True, False, True, False, False]          # last valid step in the middle
    outputs, states, _ = cell.forward(p, mask=mask, **options)
    assert np.all(outputs[~mask] == 0)
    assert np.all(outputs[mask] != 0)
    # Row 0 is all masked: the final states are the initial states.
    for s, name in zip(states, cell.states):
        np.testing.assert_array_equal(s[0], p[name][0])
    # Otherwise the final h is the output of the last valid step.
    for row in range(1, 4):
        last = np.flatnonzero(mask[row])[-1]
        np.testing.assert_array_equal(states[0][row], outputs[row, last])


def test_all_masked_rows_without_initial_state_end_at_zero(setup):
    cell, options, p, rng = setup
    p = {**p, **{name: None for name in cell.states}}
    mask = np.zeros((4, 5), dtype=bool)
    outputs, states, _ = cell.forward(p, mask=mask, **options)
    assert np.all(outputs == 0)
    for s in states:
        assert np.all(s == 0)


def test_go_backwards_equals_forward_on_reversed_input(setup):
    cell, options, p, rng = setup
    mask = make_mask("random", rng, 4, 5)
    out_b, states_b, cache_b = cell.forward(p, mask=mask, go_backwards=True, **options)
    reversed_p = {**p, "x": np.ascontiguousarray(p["x"][:, ::-1])}
    out_f, states_f, cache_f = cell.forward(reversed_p, mask=np.ascontiguousarray(mask[:, ::-1]), **options)
    np.testing.assert_allclose(out_b, out_f, rtol=SEM_RTOL, atol=SEM_ATOL)
    for a, b in zip(states_b, states_f):
        np.testing.assert_allclose(a, b, rtol=SEM_RTOL, atol=SEM_ATOL)
    # Gradients agree too, with dx flipped back to input order.
    d_outputs, d_states = random_incoming(rng, cell, 4, 5, 4)
    grads_b = cell.backward(d_outputs, d_states, cache_b)
    grads_f = cell.backward(d_outputs, d_states, cache_f)
    np.testing.assert_allclose(grads_b["x"], grads_f["x"][:, ::-1], rtol=SEM_RTOL, atol=SEM_ATOL)
    for name in grads_b:
        if name != "x":
            np.testing.assert_allclose(grads_b[name], grads_f[name], rtol=SEM_RTOL, atol=SEM_ATOL, err_msg=name)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_lengths_mask_matches_each_row_run_alone(setup, go_backwards):
    cell, options, p, rng = setup
    lengths = np.array([0, 5, 2, 3])
    mask = np.arange(5) < lengths[:, None]
    outputs, states, _ = cell.forward(p, mask=mask, go_backwards=go_backwards, **options)
    for row, length in enumerate(lengths):
        row_p = {k: (None if v is None else v[row:row + 1]) for k, v in p.items()
                 if k not in ("kernel", "recurrent_kernel", "bias")}
        row_p.update(kernel=p["kernel"], recurrent_kernel=p["recurrent_kernel"], bias=p["bias"])
        row_p["x"] = p["x"][row:row + 1, :length]
        row_out, row_states, _ = cell.forward(row_p, go_backwards=go_backwards, **options)
        # Padding sits after the valid steps in input order, so first in processing order backwards.
        valid = slice(5 - length, 5) if go_backwards else slice(0, length)
        np.testing.assert_allclose(outputs[row, valid], row_out[0], rtol=SEM_RTOL, atol=SEM_ATOL)
        assert np.all(np.delete(outputs[row], np.arange(5)[valid], axis=0) == 0)
        for a, b in zip(states, row_states):
            np.testing.assert_allclose(a[row], b[0], rtol=SEM_RTOL, atol=SEM_ATOL)


def test_return_sequences_and_training_flags(setup):
    cell, options, p, rng = setup
    mask = make_mask("lengths", rng, 4, 5)
    outputs, states, cache = cell.forward(p, mask=mask, **options)
    assert outputs.shape == (4, 5, 4)
    import rnnkit.reference
    assert cache.impl is rnnkit.reference
    none_out, states2, cache2 = cell.forward(p, mask=mask, return_sequences=False, training=False, **options)
    assert none_out is None and cache2 is None
    for a, b in zip(states, states2):
        np.testing.assert_array_equal(a, b)


def test_float32_in_float32_out(setup):
    cell, options, p, rng = setup
    p32 = {k: (None if v is None else v.astype(np.float32)) for k, v in p.items()}
    mask = make_mask("random", rng, 4, 5)
    outputs, states, cache = cell.forward(p32, mask=mask, **options)
    outputs64, states64, cache64 = cell.forward(p, mask=mask, **options)
    d_outputs, d_states = random_incoming(rng, cell, 4, 5, 4)
    grads = cell.backward(d_outputs, d_states, cache)
    grads64 = cell.backward(d_outputs, d_states, cache64)
    for a, b in [(outputs, outputs64), *zip(states, states64), *((grads[k], grads64[k]) for k in grads)]:
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_inputs_are_not_modified_and_states_are_fresh(setup):
    cell, options, p, rng = setup
    before = {k: (None if v is None else v.copy()) for k, v in p.items()}
    mask = np.zeros((4, 5), dtype=bool)
    _, states, cache = cell.forward(p, mask=mask, **options)
    cell.backward(*random_incoming(rng, cell, 4, 5, 4), cache)
    for s, name in zip(states, cell.states):
        assert not np.shares_memory(s, p[name])
    for k, v in before.items():
        np.testing.assert_array_equal(p[k], v)


def test_zero_time_steps(setup):
    cell, options, p, rng = setup
    p = {**p, "x": np.zeros((4, 0, 3))}
    outputs, states, cache = cell.forward(p, **options)
    assert outputs.shape == (4, 0, 4)
    for s, name in zip(states, cell.states):
        np.testing.assert_array_equal(s, p[name])
    grads = cell.backward(np.zeros((4, 0, 4)), [np.ones((4, 4))] * len(cell.states), cache)
    assert grads["x"].shape == (4, 0, 3)
    np.testing.assert_array_equal(grads["h0"], np.ones((4, 4)))
    assert np.all(grads["kernel"] == 0)


@pytest.mark.parametrize("argument", ["activation", "recurrent_activation"])
def test_unknown_activation_is_a_value_error_naming_the_argument(argument):
    rng = np.random.default_rng(0)
    p = make_params(CELLS["lstm"], rng, 1, 2, 1, 1)
    with pytest.raises(ValueError, match=f"^{argument} must be one of .*got 'softplus'"):
        CELLS["lstm"].forward(p, **{argument: "softplus"})
    with pytest.raises(ValueError, match="^activation must be one of"):
        CELLS["simple_rnn"].forward(make_params(CELLS["simple_rnn"], rng, 1, 2, 1, 1), activation="Tanh")


# --------------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ref_act.ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_derivative_from_output(name, dtype):
    act = ref_act.get_activation(name)
    # Away from the kinks of relu (0) and hard_sigmoid (+-3).
    x = np.array([-40.0, -5.0, -2.5, -1.0, -0.3, 0.4, 1.0, 2.5, 5.0, 40.0], dtype=dtype)
    y = act.forward(x)
    assert y.dtype == dtype and act.derivative(y).dtype == dtype
    h = 1e-6
    numeric = (act.forward(x.astype(np.float64) + h) - act.forward(x.astype(np.float64) - h)) / (2 * h)
    np.testing.assert_allclose(act.derivative(y), numeric, rtol=1e-3 if dtype == np.float32 else 1e-7,
                               atol=1e-6 if dtype == np.float32 else 1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_for_large_inputs(dtype):
    x = np.array([-1e6, -800.0, -30.0, 0.0, 30.0, 800.0, 1e6], dtype=dtype)
    y = ref_act.sigmoid(x)   # warnings are errors: an overflow in exp would fail here
    np.testing.assert_allclose(y, [0.0, 0.0, 1 / (1 + math.exp(30)), 0.5, 1.0, 1.0, 1.0], rtol=1e-6, atol=0)
    assert y.dtype == dtype


def test_hard_sigmoid_is_keras3():
    x = np.array([-4.0, -3.0, 0.0, 1.5, 3.0, 4.0])
    np.testing.assert_array_equal(ref_act.hard_sigmoid(x), [0.0, 0.0, 0.5, 0.75, 1.0, 1.0])
    np.testing.assert_array_equal(ref_act.d_hard_sigmoid(ref_act.hard_sigmoid(x)), [0, 0, 1 / 6, 1 / 6, 0, 0])


# --------------------------------------------------------------------------------------------------
# Known values
# --------------------------------------------------------------------------------------------------

def test_teaching_example_linear_simple_rnn():
    """h1 = x1 @ K + b, then h_t = h_{t-1} + b: h3 = K[0] + 3b = [1.3, 2.6, 3.9, 5.2]."""
    kernel = np.array([[1.0, 2, 3, 4], [5, 6, 7, 8]])
    bias = np.array([0.1, 0.2, 0.3, 0.4])
    x = np.array([[[1.0, 0], [0, 0], [0, 0]]] * 2)
    outputs, h_last, _ = ref_srnn.simple_rnn_forward(x, kernel, np.eye(4), bias, activation="linear")
    np.testing.assert_allclose(h_last, [[1.3, 2.6, 3.9, 5.2]] * 2, rtol=1e-15)
    np.testing.assert_allclose(outputs[0], [[1.1, 2.2, 3.3, 4.4], [1.2, 2.4, 3.6, 4.8], [1.3, 2.6, 3.9, 5.2]],
                               rtol=1e-15)


def test_numpy_loop_example():
    """The textbook loop ``state = tanh(W @ x_t + U @ state + b)`` is a SimpleRNN with K = W.T, R = U.T."""
    rng = np.random.default_rng(0)
    steps, features, units = 100, 32, 64
    inputs = rng.random((steps, features))
    W = rng.random((units, features)) * 0.1
    U = rng.random((units, units)) * 0.1
    b = rng.random(units) * 0.1
    state = np.zeros(units)
    successive = []
    for x_t in inputs:
        state = np.tanh(W @ x_t + U @ state + b)
        successive.append(state)
    outputs, h_last, _ = ref_srnn.simple_rnn_forward(inputs[None], W.T.copy(), U.T.copy(), b)
    np.testing.assert_allclose(outputs[0], np.stack(successive), rtol=1e-12)
    np.testing.assert_allclose(h_last[0], state, rtol=1e-12)


def _sig(v):
    return 1 / (1 + math.exp(-v))


def test_lstm_known_values():
    """Two steps computed unit by unit with scalar math from the formulas of docs/SPEC.md §5."""
    rng = np.random.default_rng(5)
    B, T, I, H = 2, 2, 3, 2
    x, K, R = rng.normal(size=(B, T, I)), rng.normal(size=(I, 4 * H)), rng.normal(size=(H, 4 * H))
    b, h0, c0 = rng.normal(size=4 * H), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    expected_out = np.zeros((B, T, H))
    expected_h, expected_c = np.zeros((B, H)), np.zeros((B, H))
    for n in range(B):
        h, c = list(h0[n]), list(c0[n])
        for t in range(T):
            def pre(col):
                return (sum(x[n, t, k] * K[k, col] for k in range(I)) + sum(h[k] * R[k, col] for k in range(H))
                        + b[col])
            new_h, new_c = [], []
            for u in range(H):
                i, f = _sig(pre(u)), _sig(pre(H + u))
                g, o = math.tanh(pre(2 * H + u)), _sig(pre(3 * H + u))
                new_c.append(f * c[u] + i * g)
                new_h.append(o * math.tanh(new_c[u]))
            h, c = new_h, new_c
            expected_out[n, t] = h
        expected_h[n], expected_c[n] = h, c
    outputs, h_last, c_last, _ = ref_lstm.lstm_forward(x, K, R, b, h0, c0)
    np.testing.assert_allclose(outputs, expected_out, rtol=1e-13)
    np.testing.assert_allclose(h_last, expected_h, rtol=1e-13)
    np.testing.assert_allclose(c_last, expected_c, rtol=1e-13)


def test_lstm_zero_weights():
    """All gates 0.5 and candidate tanh(0) = 0: c = c0 / 2, h = tanh(c0 / 2) / 2."""
    c0 = np.array([[2.0, -1.0]])
    _, h, c, _ = ref_lstm.lstm_forward(np.ones((1, 1, 3)), np.zeros((3, 8)), np.zeros((2, 8)), None,
                                       np.ones((1, 2)), c0)
    np.testing.assert_allclose(c, [[1.0, -0.5]], rtol=1e-15)
    np.testing.assert_allclose(h, [[0.5 * math.tanh(1.0), 0.5 * math.tanh(-0.5)]], rtol=1e-15)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_known_values(reset_after):
    """Two steps computed unit by unit with scalar math from the formulas of docs/SPEC.md §6."""
    rng = np.random.default_rng(6)
    B, T, I, H = 2, 2, 3, 2
    x, K, R = rng.normal(size=(B, T, I)), rng.normal(size=(I, 3 * H)), rng.normal(size=(H, 3 * H))
    b = rng.normal(size=(2, 3 * H) if reset_after else 3 * H)
    b_in, b_rec = (b[0], b[1]) if reset_after else (b, np.zeros(3 * H))
    h0 = rng.normal(size=(B, H))
    expected_out = np.zeros((B, T, H))
    for n in range(B):
        h = list(h0[n])
        for t in range(T):
            def xp(col):
                return sum(x[n, t, k] * K[k, col] for k in range(I)) + b_in[col]

            def hp(col, state):
                return sum(state[k] * R[k, col] for k in range(H)) + b_rec[col]
            z = [_sig(xp(u) + hp(u, h)) for u in range(H)]
            r = [_sig(xp(H + u) + hp(H + u, h)) for u in range(H)]
            if reset_after:
                hh = [math.tanh(xp(2 * H + u) + r[u] * hp(2 * H + u, h)) for u in range(H)]
            else:
                rh = [r[k] * h[k] for k in range(H)]
                hh = [math.tanh(xp(2 * H + u) + hp(2 * H + u, rh)) for u in range(H)]
            h = [z[u] * h[u] + (1 - z[u]) * hh[u] for u in range(H)]
            expected_out[n, t] = h
    outputs, h_last, _ = ref_gru.gru_forward(x, K, R, b, h0, reset_after=reset_after)
    np.testing.assert_allclose(outputs, expected_out, rtol=1e-13)
    np.testing.assert_allclose(h_last, expected_out[:, -1], rtol=1e-13)
