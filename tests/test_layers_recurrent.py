"""SimpleRNN / LSTM / GRU / Bidirectional layers and the initializers.

Gradients are checked against central finite differences in float64 (eps 1e-6, rtol 1e-6): the
layers' backward is plumbing around ``rnnkit.ops``, so these tests mainly catch wiring mistakes
(d_output vs d_state, time flips, merge modes, weight order). Shape letters: B, T, I, H.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from numerics import numeric_grad

import rnnkit
from rnnkit import initializers
from rnnkit.layers import GRU, LSTM, Bidirectional, SimpleRNN, get_layer_class

N_STATES = {SimpleRNN: 1, LSTM: 2, GRU: 1}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _as_list(result):
    return list(result) if isinstance(result, list) else [result]


def check_gradients(layer, x, n_output=1, initial_state=None, seed=0, **call_kwargs):
    """Compare layer.backward with finite differences of ``sum(result_k * probe_k)``.

    ``n_output`` leading entries of the result list form ``d_output`` (2 for Bidirectional with
    merge_mode=None), the rest ``d_state``. Checks dx, every weight gradient and d_initial_state.
    """
    rng = np.random.default_rng(seed)
    init = [np.array(s) for s in initial_state] if initial_state is not None else None
    result = _as_list(layer(x, initial_state=init, **call_kwargs))
    probes = [rng.standard_normal(r.shape) for r in result]

    def loss():
        out = _as_list(layer(x, initial_state=init, **call_kwargs))
        return sum(float(np.sum(o * p)) for o, p in zip(out, probes))

    layer(x, initial_state=init, training=True, **call_kwargs)
    multi = isinstance(layer(x, initial_state=init, **call_kwargs), list)
    if not multi:
        dx = layer.backward(probes[0])
    else:
        d_output = probes[0] if n_output == 1 else probes[:n_output]
        d_state = probes[n_output:] or None
        dx = layer.backward(d_output, d_state) if d_state is not None else layer.backward(d_output)
    grads = [g.copy() for g in layer.grads]
    d_init = [d.copy() for d in layer.d_initial_state]

    tol = dict(rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), **tol, err_msg="dx")
    assert len(grads) == len(layer.weights)
    for i, (g, w) in enumerate(zip(grads, layer.weights)):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, numeric_grad(loss, w), **tol, err_msg=f"grads[{i}]")
    if init is not None:
        assert len(d_init) == len(init)
        for i, (d, s) in enumerate(zip(d_init, init)):
            np.testing.assert_allclose(d, numeric_grad(loss, s), **tol, err_msg=f"d_initial_state[{i}]")
    return dx


def make_layer(cls, units=3, **kwargs):
    """A float64 layer with non-trivial bias so every gradient path is exercised."""
    kwargs.setdefault("dtype", "float64")
    kwargs.setdefault("bias_initializer", initializers.RandomUniform(-0.5, 0.5))
    kwargs.setdefault("seed", 7)
    return cls(units, **kwargs)


@pytest.fixture
def x64():
    return np.random.default_rng(1).standard_normal((2, 4, 3))


# ---------------------------------------------------------------------------------------------
# the teaching examples
# ---------------------------------------------------------------------------------------------


def test_teaching_example_28_params():
    layer = SimpleRNN(4, activation="linear", recurrent_initializer=rnnkit.initializers.Identity(1.0))
    layer.build(2)
    assert layer.count_params() == 28
    kernel, recurrent, bias = layer.get_weights()
    np.testing.assert_array_equal(recurrent, np.eye(4))
    layer.set_weights([np.array([[1, 2, 3, 4], [5, 6, 7, 8]]), recurrent, np.array([0.1, 0.2, 0.3, 0.4])])
    x = np.array([[[1, 0], [0, 0], [0, 0]]] * 2, dtype=np.float32)
    y = layer(x)
    assert y.shape == (2, 4) and y.dtype == np.float32
    # h1 = [1,2,3,4] + b; h2 = h1 + b; h3 = h2 + b = [1,2,3,4] + 3b
    np.testing.assert_allclose(y, [[1.3, 2.6, 3.9, 5.2]] * 2, rtol=1e-6)


def test_simple_rnn_32_units_on_32_features_has_2080_params():
    layer = SimpleRNN(32)
    layer.build((None, None, 32))
    assert layer.count_params() == 2080


@pytest.mark.parametrize("dtype, rtol, atol", [("float64", 1e-10, 1e-12), ("float32", 1e-5, 1e-6)])
def test_matches_plain_numpy_loop_100_steps(dtype, rtol, atol):
    # state = tanh(W @ x_t + U @ state + b) with W (64, 32): the column-vector form of the same cell
    rng = np.random.default_rng(0)
    T, I, H = 100, 32, 64
    W = rng.uniform(-0.2, 0.2, (H, I))
    U = np.linalg.qr(rng.standard_normal((H, H)))[0] * 0.9
    b = rng.uniform(-0.1, 0.1, H)
    inputs = rng.standard_normal((T, I))
    state = np.zeros(H)
    states = []
    for x_t in inputs:
        state = np.tanh(W @ x_t + U @ state + b)
        states.append(state)
    states = np.array(states)

    layer = SimpleRNN(H, return_sequences=True, dtype=dtype)
    layer.build(I)
    layer.set_weights([W.T, U.T, b])
    y = layer(inputs[None].astype(dtype))
    assert y.dtype == np.dtype(dtype) and y.shape == (1, T, H)
    np.testing.assert_allclose(y[0], states, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------------------
# parameter counts, weights, build
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("I, H", [(1, 1), (2, 4), (7, 5), (32, 64)])
def test_param_counts_follow_keras_formulas(I, H):
    def count(layer):
        layer.build(I)
        return layer.count_params()

    assert count(SimpleRNN(H)) == I * H + H * H + H
    assert count(LSTM(H)) == 4 * (I * H + H * H + H)
    assert count(GRU(H)) == 3 * (I * H + H * H + 2 * H)
    assert count(GRU(H, reset_after=False)) == 3 * (I * H + H * H + H)
    assert count(SimpleRNN(H, use_bias=False)) == I * H + H * H
    assert count(Bidirectional(LSTM(H))) == 8 * (I * H + H * H + H)


@pytest.mark.parametrize("cls, shapes", [
    (SimpleRNN, [(3, 5), (5, 5), (5,)]),
    (LSTM, [(3, 20), (5, 20), (20,)]),
    (GRU, [(3, 15), (5, 15), (2, 15)]),
])
def test_weight_shapes_and_lazy_build(cls, shapes):
    layer = cls(5)
    assert not layer.built
    layer(np.zeros((2, 4, 3), np.float32))
    assert layer.built and layer.input_dim == 3
    assert [w.shape for w in layer.get_weights()] == shapes
    assert all(w.dtype == np.float32 for w in layer.weights)
    assert list(layer.weight_names) == ["kernel", "recurrent_kernel", "bias"]


def test_gru_reset_before_bias_and_no_bias():
    layer = GRU(4, reset_after=False)
    layer.build(2)
    assert layer.weights[2].shape == (12,)
    layer = LSTM(4, use_bias=False)
    layer.build(2)
    assert [w.shape for w in layer.weights] == [(2, 16), (4, 16)]
    assert list(layer.weight_names) == ["kernel", "recurrent_kernel"]


def test_build_accepts_int_or_shape_and_rejects_a_different_size():
    layer = LSTM(3)
    layer.build((8, 10, 6))
    assert layer.input_dim == 6
    layer.build(6)  # same size: no-op
    with pytest.raises(ValueError, match="input_shape"):
        layer.build(5)
    with pytest.raises(ValueError, match="input_shape"):
        SimpleRNN(2).build(0)


def test_lstm_unit_forget_bias():
    layer = LSTM(3)
    layer.build(2)
    np.testing.assert_array_equal(layer.weights[2], [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    layer = LSTM(3, unit_forget_bias=False)
    layer.build(2)
    np.testing.assert_array_equal(layer.weights[2], np.zeros(12))


def test_get_set_weights_round_trip_and_errors():
    a, b = GRU(4, seed=1), GRU(4, seed=2)
    a.build(3)
    b.build(3)
    live = b.weights
    b.set_weights(a.get_weights())
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert all(w1 is w2 for w1, w2 in zip(live, b.weights)), "set_weights must copy into the live arrays"
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    np.testing.assert_array_equal(a(x), b(x))
    # get_weights returns copies
    a.get_weights()[0][...] = 0
    assert np.any(a.weights[0] != 0)

    with pytest.raises(ValueError, match=r"weights\[1\] \(recurrent_kernel\).*\(4, 12\)"):
        b.set_weights([a.weights[0], np.zeros((4, 4)), a.weights[2]])
    with pytest.raises(ValueError, match="weights"):
        b.set_weights(a.get_weights()[:2])
    with pytest.raises(ValueError, match="not built"):
        GRU(4).set_weights(a.get_weights())


# ---------------------------------------------------------------------------------------------
# initializers
# ---------------------------------------------------------------------------------------------


def test_layer_seed_makes_weights_reproducible():
    def weights(seed):
        layer = LSTM(6, seed=seed)
        layer.build(4)
        return layer.get_weights()

    for w1, w2 in zip(weights(3), weights(3)):
        np.testing.assert_array_equal(w1, w2)
    assert not np.array_equal(weights(3)[0], weights(4)[0])


def test_initializer_seed_and_rng():
    rng = np.random.default_rng(5)
    a = initializers.GlorotUniform()((4, 3), "float64", np.random.default_rng(5))
    np.testing.assert_array_equal(a, initializers.GlorotUniform()((4, 3), "float64", rng))
    seeded = initializers.RandomNormal(seed=11)
    # a seeded initializer ignores the layer's generator: same values every call
    np.testing.assert_array_equal(seeded((3, 3), "float32", np.random.default_rng(0)),
                                  seeded((3, 3), "float32", np.random.default_rng(1)))


@pytest.mark.parametrize("shape", [(8, 8), (5, 20), (20, 5), (2, 3, 4)])
def test_orthogonal_is_orthogonal(shape):
    q = initializers.Orthogonal(gain=2.0)(shape, "float64", np.random.default_rng(0))
    assert q.shape == shape and q.dtype == np.float64
    m = q.reshape(-1, shape[-1]) / 2.0
    if m.shape[0] >= m.shape[1]:
        np.testing.assert_allclose(m.T @ m, np.eye(m.shape[1]), atol=1e-12)
    else:
        np.testing.assert_allclose(m @ m.T, np.eye(m.shape[0]), atol=1e-12)
    layer = LSTM(5)  # recurrent kernel (H, 4H): orthonormal rows
    layer.build(3)
    r = layer.weights[1].astype(np.float64)
    np.testing.assert_allclose(r @ r.T, np.eye(5), atol=1e-5)


def test_identity_initializer():
    np.testing.assert_array_equal(initializers.Identity(0.5)((3, 3), "float32"), 0.5 * np.eye(3))
    np.testing.assert_array_equal(initializers.Identity()((2, 4)), np.eye(2, 4))
    np.testing.assert_array_equal(initializers.get("identity")((3, 2)), np.eye(3, 2))
    with pytest.raises(ValueError, match="2-D"):
        initializers.Identity()((3,))


def test_glorot_uniform_bounds_like_keras():
    fan_in, fan_out = 300, 200
    limit = math.sqrt(6 / (fan_in + fan_out))
    w = initializers.get("glorot_uniform")((fan_in, fan_out), "float64", np.random.default_rng(0))
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.99 * limit
    np.testing.assert_allclose(w.std(), limit / math.sqrt(3), rtol=0.02)
    assert abs(w.mean()) < 0.01


def test_simple_initializers_and_defaults():
    rng = np.random.default_rng(0)
    assert initializers.zeros((2, 3)).sum() == 0
    np.testing.assert_array_equal(initializers.ones((4,), "float64"), np.ones(4))
    n = initializers.random_normal((200, 200), "float64", rng)
    np.testing.assert_allclose([n.mean(), n.std()], [0.0, 0.05], atol=0.002)
    u = initializers.RandomUniform()((200, 200), "float64", rng)
    assert u.min() >= -0.05 and u.max() < 0.05
    assert initializers.GlorotUniform()((3, 4), "float32").dtype == np.float32


@pytest.mark.parametrize("name, cls", [
    ("glorot_uniform", initializers.GlorotUniform), ("GlorotUniform", initializers.GlorotUniform),
    ("ORTHOGONAL", initializers.Orthogonal), ("Identity", initializers.Identity),
    ("zeros", initializers.Zeros), ("Ones", initializers.Ones),
    ("random_normal", initializers.RandomNormal), ("RandomUniform", initializers.RandomUniform),
])
def test_get_by_name(name, cls):
    assert type(initializers.get(name)) is cls


def test_get_instance_callable_and_config_round_trip():
    inst = initializers.Orthogonal(gain=1.5, seed=3)
    assert initializers.get(inst) is inst

    def custom(shape, dtype, rng):
        return np.full(shape, 0.25, dtype)

    assert initializers.get(custom) is custom
    layer = SimpleRNN(2, kernel_initializer=custom)
    layer.build(3)
    np.testing.assert_array_equal(layer.weights[0], np.full((3, 2), 0.25))
    spec = initializers.serialize(inst)
    assert spec == {"class_name": "Orthogonal", "config": {"gain": 1.5, "seed": 3}}
    assert initializers.get(spec) == inst
    with pytest.raises(ValueError, match="kernel_initializer"):
        layer.get_config()


def test_get_unknown_initializer():
    with pytest.raises(ValueError, match=r"initializer.*'he_nope'.*glorot_uniform.*orthogonal"):
        initializers.get("he_nope")
    with pytest.raises(TypeError, match="initializer"):
        initializers.get(3.5)
    with pytest.raises(ValueError, match="Orthogonal"):
        initializers.Orthogonal()((5,))


@pytest.mark.parametrize("arg", ["kernel_initializer", "recurrent_initializer", "bias_initializer"])
def test_unknown_initializer_fails_at_construction(arg):
    with pytest.raises(ValueError, match=rf"{arg}: unknown initializer 'nope'.*zeros"):
        LSTM(3, **{arg: "nope"})


def test_initializer_returning_wrong_shape():
    with pytest.raises(ValueError, match=r"kernel_initializer.*\(4, 2\)"):
        SimpleRNN(2, kernel_initializer=lambda shape, dtype, rng: np.zeros((2, 2))).build(4)


# ---------------------------------------------------------------------------------------------
# forward semantics
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_return_sequences_and_state_shapes(cls):
    x = np.random.default_rng(0).standard_normal((3, 5, 2)).astype(np.float32)
    n = N_STATES[cls]
    seq = cls(4, return_sequences=True, return_state=True, seed=0)
    last = cls(4, return_state=True, seed=0)
    out_seq, *states_seq = seq(x)
    out_last, *states_last = last(x)
    assert out_seq.shape == (3, 5, 4) and out_last.shape == (3, 4)
    assert len(states_seq) == len(states_last) == n
    np.testing.assert_allclose(out_seq[:, -1], out_last, rtol=1e-6)
    np.testing.assert_allclose(states_seq[0], out_last, rtol=1e-6)
    assert cls(4)(x).shape == (3, 4)
    assert seq.compute_output_shape((3, 5, 2)) == [(3, 5, 4)] + [(3, 4)] * n
    assert cls(4).compute_output_shape((None, 5, 2)) == (None, 4)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_initial_state_and_go_backwards(cls):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 3))
    n = N_STATES[cls]
    init = [rng.standard_normal((2, 4)) for _ in range(n)]
    fwd = make_layer(cls, 4, return_sequences=True)
    bwd = make_layer(cls, 4, return_sequences=True, go_backwards=True)
    y_b = bwd(x, initial_state=init)
    y_f = fwd(x[:, ::-1], initial_state=init)
    np.testing.assert_allclose(y_b, y_f, rtol=1e-10)  # processing order, as in Keras
    assert not np.allclose(fwd(x, initial_state=init), fwd(x))
    if n == 1:  # a bare array is accepted for single-state cells
        np.testing.assert_array_equal(fwd(x, initial_state=init[0]), fwd(x, initial_state=init))


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_mask_and_lengths(cls):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 5, 2))
    lengths = np.array([5, 2, 0])
    mask = np.arange(5) < lengths[:, None]
    layer = make_layer(cls, 4, return_sequences=True, return_state=True)
    y_m, *s_m = layer(x, mask=mask)
    y_l, *s_l = layer(x, lengths=lengths)
    np.testing.assert_array_equal(y_m, y_l)
    assert np.all(y_m[~mask] == 0)
    # each row's final state is the state after its last valid step
    for b, n in enumerate(lengths):
        if n:
            _, *s_row = layer(x[b:b + 1, :n])
            for s, r in zip(s_m, s_row):
                np.testing.assert_allclose(s[b], r[0], rtol=1e-10)
        else:
            assert all(np.all(s[b] == 0) for s in s_m)
    assert layer.compute_mask(mask)[0] is mask
    assert make_layer(cls, 4).compute_mask(mask) is None
    assert make_layer(cls, 4, return_sequences=True).compute_mask(mask) is mask


def test_float64_layer_and_float32_default():
    x = np.ones((1, 2, 3))
    assert SimpleRNN(2)(x).dtype == np.float32
    layer = LSTM(2, dtype="float64")
    assert layer(x).dtype == np.float64
    assert all(w.dtype == np.float64 for w in layer.weights)
    with pytest.raises(TypeError, match="dtype"):
        GRU(2, dtype="int32")


def test_stateful_carries_state_and_checks_batch_size():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 3))
    whole = make_layer(LSTM, 5, return_state=True)
    stateful = make_layer(LSTM, 5, stateful=True)
    y_whole, h, c = whole(x)
    stateful(x[:, :3])
    y = stateful(x[:, 3:])
    np.testing.assert_allclose(y, y_whole, rtol=1e-10)
    np.testing.assert_allclose(stateful.states[1], c, rtol=1e-10)

    with pytest.raises(ValueError, match=r"batch size 4.*got x with batch size 3"):
        stateful(x[:3])

    stateful.reset_states()
    np.testing.assert_allclose(stateful(x[:, :3]), whole(x[:, :3])[0], rtol=1e-10)
    stateful.reset_states()
    assert stateful(x[:2]).shape == (2, 5)  # after a reset any batch size is allowed

    # reset_states(states) sets the states explicitly
    h0, c0 = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    stateful.reset_states([h0, c0])
    np.testing.assert_allclose(stateful(x), whole(x, initial_state=[h0, c0])[0], rtol=1e-10)
    with pytest.raises(ValueError, match="states"):
        stateful.reset_states([h0])
    with pytest.raises(ValueError, match="stateful"):
        make_layer(LSTM, 5).reset_states([h0, c0])


def test_inference_calls_do_not_clobber_the_training_cache():
    rng = np.random.default_rng(0)
    layer = make_layer(GRU, 3)
    x = rng.standard_normal((2, 4, 3))
    layer(x, training=True)
    dx1 = layer.backward(np.ones((2, 3)))
    layer(rng.standard_normal((5, 7, 3)))  # an inference call in between (e.g. validation)
    np.testing.assert_array_equal(layer.backward(np.ones((2, 3))), dx1)


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
def test_gradients(cls, return_sequences, return_state, x64):
    layer = make_layer(cls, return_sequences=return_sequences, return_state=return_state)
    init = [np.random.default_rng(9).standard_normal((2, 3)) for _ in range(N_STATES[cls])]
    check_gradients(layer, x64, initial_state=init)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("masking", ["mask", "lengths"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_gradients_masks_and_go_backwards(cls, masking, go_backwards, x64):
    layer = make_layer(cls, return_sequences=True, return_state=True, go_backwards=go_backwards)
    lengths = np.array([4, 2])
    kw = {"lengths": lengths} if masking == "lengths" else {"mask": np.arange(4) < lengths[:, None]}
    check_gradients(layer, x64, **kw)


@pytest.mark.parametrize("layer", [
    lambda: make_layer(GRU, reset_after=False, return_sequences=True),
    lambda: make_layer(LSTM, use_bias=False),
    lambda: make_layer(SimpleRNN, activation="sigmoid", go_backwards=True),
    lambda: make_layer(LSTM, recurrent_activation="tanh", activation="linear", return_state=True),
], ids=["gru_reset_before", "lstm_no_bias", "rnn_sigmoid_backwards", "lstm_activations"])
def test_gradients_variants(layer, x64):
    check_gradients(layer(), x64)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_d_output_is_added_to_d_state_h(cls, x64):
    layer = make_layer(cls, return_state=True)
    layer(x64, training=True)
    rng = np.random.default_rng(0)
    d_out, d_h = rng.standard_normal((2, 2, 3))
    rest = [None] * (N_STATES[cls] - 1)
    dx_sum = layer.backward(d_out + d_h, [None, *rest])
    grads_sum = layer.grads
    dx = layer.backward(d_out, [d_h, *rest])
    np.testing.assert_allclose(dx, dx_sum, rtol=1e-10)
    for g1, g2 in zip(layer.grads, grads_sum):
        np.testing.assert_allclose(g1, g2, rtol=1e-10)
    # None gradients mean zero
    layer.backward(None)
    assert all(np.all(g == 0) for g in layer.grads)


def test_stack_of_two_layers_by_hand():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 3))
    first = make_layer(LSTM, 4, return_sequences=True)
    second = make_layer(GRU, 3, seed=8)
    probe = rng.standard_normal((2, 3))

    def loss():
        return float(np.sum(second(first(x)) * probe))

    second(first(x, training=True), training=True)
    dx = first.backward(second.backward(probe))
    tol = dict(rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), **tol)
    for layer in (first, second):
        for g, w in zip(layer.grads, layer.weights):
            np.testing.assert_allclose(g, numeric_grad(loss, w), **tol)


# ---------------------------------------------------------------------------------------------
# Bidirectional
# ---------------------------------------------------------------------------------------------


def _directions(cls, x, return_sequences, **kwargs):
    """The wrapper plus two stand-alone layers holding the same weights."""
    bi = Bidirectional(make_layer(cls, return_sequences=return_sequences), **kwargs)
    bi.build(x.shape)
    fwd = make_layer(cls, return_sequences=return_sequences)
    bwd = make_layer(cls, return_sequences=return_sequences, go_backwards=True)
    fwd.build(x.shape)
    bwd.build(x.shape)
    fwd.set_weights(bi.forward_layer.get_weights())
    bwd.set_weights(bi.backward_layer.get_weights())
    return bi, fwd, bwd


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_equals_two_directions(cls, merge_mode, return_sequences, x64):
    bi, fwd, bwd = _directions(cls, x64, return_sequences, merge_mode=merge_mode)
    y_f = fwd(x64)
    y_b = bwd(x64)
    if return_sequences:
        y_b = y_b[:, ::-1]
    expected = {"concat": lambda: np.concatenate([y_f, y_b], -1), "sum": lambda: y_f + y_b,
                "mul": lambda: y_f * y_b, "ave": lambda: (y_f + y_b) / 2, None: lambda: [y_f, y_b]}[merge_mode]()
    out = bi(x64)
    if merge_mode is None:
        assert isinstance(out, list) and len(out) == 2
        for o, e in zip(out, expected):
            np.testing.assert_allclose(o, e, rtol=1e-10)
    else:
        np.testing.assert_allclose(out, expected, rtol=1e-10)
        assert bi.compute_output_shape(x64.shape) == out.shape


def test_bidirectional_weights_are_independent_and_in_keras_order(x64):
    layer = make_layer(LSTM)
    bi = Bidirectional(layer)
    assert bi.forward_layer is layer
    assert bi.backward_layer.go_backwards and not layer.go_backwards
    bi.build(3)
    assert bi.weight_names == ("forward_kernel", "forward_recurrent_kernel", "forward_bias",
                               "backward_kernel", "backward_recurrent_kernel", "backward_bias")
    assert len(bi.weights) == 6
    assert bi.weights[0] is layer.weights[0]
    assert not np.array_equal(bi.weights[0], bi.weights[3])  # seed + 1
    new = [w + 1 for w in bi.get_weights()]
    bi.set_weights(new)
    np.testing.assert_array_equal(bi.backward_layer.weights[1], new[4])


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM])
def test_bidirectional_return_state_order(cls, x64):
    n = N_STATES[cls]
    bi = Bidirectional(make_layer(cls, return_sequences=True, return_state=True))
    bi.build(3)
    fwd = make_layer(cls, return_sequences=True, return_state=True)
    bwd = make_layer(cls, return_sequences=True, return_state=True, go_backwards=True)
    fwd.build(3)
    bwd.build(3)
    fwd.set_weights(bi.forward_layer.get_weights())
    bwd.set_weights(bi.backward_layer.get_weights())
    rng = np.random.default_rng(1)
    init = [rng.standard_normal((2, 3)) for _ in range(2 * n)]
    out, *states = bi(x64, initial_state=init)
    y_f, *s_f = fwd(x64, initial_state=init[:n])
    y_b, *s_b = bwd(x64, initial_state=init[n:])
    np.testing.assert_allclose(out, np.concatenate([y_f, y_b[:, ::-1]], -1), rtol=1e-10)
    assert len(states) == 2 * n
    for s, e in zip(states, s_f + s_b):
        np.testing.assert_allclose(s, e, rtol=1e-10)
    assert bi.compute_output_shape((2, 4, 3)) == [(2, 4, 6)] + [(2, 3)] * (2 * n)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_gradients(merge_mode, return_sequences, x64):
    bi = Bidirectional(make_layer(GRU, return_sequences=return_sequences), merge_mode=merge_mode)
    check_gradients(bi, x64, n_output=2 if merge_mode is None else 1)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM])
def test_bidirectional_gradients_with_states_and_mask(cls, x64):
    n = N_STATES[cls]
    bi = Bidirectional(make_layer(cls, return_sequences=True, return_state=True))
    init = [np.random.default_rng(5).standard_normal((2, 3)) for _ in range(2 * n)]
    check_gradients(bi, x64, initial_state=init, lengths=np.array([3, 4]))
    assert len(bi.d_initial_state) == 2 * n
    assert len(bi.grads) == 6


def test_bidirectional_config_round_trip(x64):
    bi = Bidirectional(make_layer(LSTM, return_sequences=True), merge_mode="ave")
    config = bi.get_config()
    clone = get_layer_class("Bidirectional").from_config(config)
    assert clone.merge_mode == "ave" and clone.count_params() == 0
    clone.build(3)
    bi.build(3)
    clone.set_weights(bi.get_weights())
    np.testing.assert_allclose(clone(x64), bi(x64), rtol=1e-10)
    # seeded layers rebuild the same weights from their config alone
    rebuilt = Bidirectional.from_config(config)
    rebuilt.build(3)
    for w1, w2 in zip(rebuilt.get_weights(), bi.get_weights()):
        np.testing.assert_array_equal(w1, w2)


def test_bidirectional_custom_backward_layer(x64):
    fwd = make_layer(SimpleRNN, return_sequences=True)
    bwd = make_layer(SimpleRNN, return_sequences=True, go_backwards=True, seed=99)
    bi = Bidirectional(fwd, merge_mode="sum", backward_layer=bwd)
    assert bi.backward_layer is bwd
    np.testing.assert_allclose(bi(x64), fwd(x64) + bwd(x64)[:, ::-1], rtol=1e-10)
    assert Bidirectional.from_config(bi.get_config()).backward_layer.seed == 99
    with pytest.raises(ValueError, match="backward_layer.go_backwards"):
        Bidirectional(make_layer(SimpleRNN), backward_layer=make_layer(SimpleRNN))
    with pytest.raises(ValueError, match="backward_layer.return_sequences"):
        Bidirectional(make_layer(SimpleRNN), backward_layer=make_layer(SimpleRNN, go_backwards=True,
                                                                        return_sequences=True))


def test_bidirectional_mask_and_stateful(x64):
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    bi = Bidirectional(make_layer(LSTM, return_sequences=True))
    y = bi(x64, mask=mask)
    assert np.all(y[~mask] == 0)
    assert bi.compute_mask(mask) is mask
    assert Bidirectional(make_layer(LSTM)).compute_mask(mask) is None
    assert Bidirectional(make_layer(LSTM, return_sequences=True), merge_mode=None).compute_mask(mask) == [mask, mask]

    st = Bidirectional(make_layer(GRU, stateful=True))
    first = st(x64)
    assert not np.allclose(st(x64), first)
    st.reset_states()
    np.testing.assert_allclose(st(x64), first, rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# config round trip
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, kwargs", [
    (SimpleRNN, {"activation": "relu", "go_backwards": True}),
    (LSTM, {"recurrent_activation": "hard_sigmoid", "unit_forget_bias": False, "return_state": True}),
    (GRU, {"reset_after": False, "return_sequences": True, "dtype": "float64",
           "kernel_initializer": initializers.RandomNormal(0.0, 0.3, seed=1)}),
])
def test_config_round_trip(cls, kwargs):
    layer = cls(4, seed=5, name="my_rnn", **kwargs)
    config = layer.get_config()
    assert config["name"] == "my_rnn" and config["units"] == 4
    clone = get_layer_class(cls.__name__).from_config(config)
    assert clone.get_config() == config
    x = np.random.default_rng(0).standard_normal((2, 3, 2))
    for a, b in zip(_as_list(layer(x)), _as_list(clone(x))):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# bad input: the type of the error and a message naming the argument
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("units, exc", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                        ("4", TypeError), (True, TypeError), (None, TypeError)])
def test_bad_units(cls, units, exc):
    with pytest.raises(exc, match="units"):
        cls(units)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_bad_activation_fails_at_construction(cls):
    with pytest.raises(ValueError, match="activation.*'swish'"):
        cls(3, activation="swish")
    with pytest.raises(TypeError, match="activation"):
        cls(3, activation=np.tanh)
    if cls is not SimpleRNN:
        with pytest.raises(ValueError, match="recurrent_activation"):
            cls(3, recurrent_activation="softmax")


@pytest.mark.parametrize("kwarg", ["return_sequences", "return_state", "go_backwards", "stateful", "use_bias"])
def test_bad_flags(kwarg):
    with pytest.raises(TypeError, match=kwarg):
        LSTM(3, **{kwarg: "yes"})


def test_bad_seed():
    with pytest.raises(TypeError, match="seed"):
        SimpleRNN(3, seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        SimpleRNN(3, seed=-1)


def test_bad_x_shape():
    layer = SimpleRNN(4)
    layer(np.zeros((4, 7, 3)))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, time, 3\), got \(4, 7, 5\)"):
        layer(np.zeros((4, 7, 5)))
    with pytest.raises(ValueError, match="x must have shape"):
        layer(np.zeros((7, 3)))
    with pytest.raises(ValueError, match="x must have shape"):
        LSTM(4)(np.zeros((7, 3)))  # not built yet
    with pytest.raises(TypeError, match="x"):
        layer([["a", "b", "c"]])


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU, lambda units: Bidirectional(GRU(units))])
def test_backward_before_training_call(cls):
    layer = cls(3)
    with pytest.raises(ValueError, match="training=True"):
        layer.backward(np.zeros((2, 3)))
    layer(np.zeros((2, 4, 5)))  # an inference call keeps nothing
    with pytest.raises(ValueError, match="training=True"):
        layer.backward(np.zeros((2, 3)))


def test_bad_d_output_and_d_state():
    layer = LSTM(3, return_sequences=True, return_state=True)
    layer(np.zeros((2, 4, 5)), training=True)
    with pytest.raises(ValueError, match=r"d_output must have shape \(2, 4, 3\).*got \(2, 3\)"):
        layer.backward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="d_state"):
        layer.backward(np.zeros((2, 4, 3)), [np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"d_state\[1\]"):
        layer.backward(np.zeros((2, 4, 3)), [None, np.zeros((3, 3))])
    bi = Bidirectional(SimpleRNN(3))
    bi(np.zeros((2, 4, 5)), training=True)
    with pytest.raises(ValueError, match=r"d_output must have shape \(2, 6\)"):
        bi.backward(np.zeros((2, 3)))


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_bad_initial_state(cls):
    layer = cls(3)
    x = np.zeros((2, 4, 5))
    n = N_STATES[cls]
    with pytest.raises(ValueError, match=rf"initial_state.*expects {n} state"):
        layer(x, initial_state=[np.zeros((2, 3))] * (n + 1))
    with pytest.raises(ValueError, match=r"initial_state\[0\].*\(2, 3\), got \(2, 4\)"):
        layer(x, initial_state=[np.zeros((2, 4))] * n)
    with pytest.raises(ValueError, match=r"initial_state\[0\].*\(2, 3\), got \(5, 3\)"):
        layer(x, initial_state=[np.zeros((5, 3))] * n)
    if n == 2:
        with pytest.raises(ValueError, match=r"initial_state\[1\].*\(2, 3\)"):
            layer(x, initial_state=[np.zeros((2, 3)), np.zeros((1, 3))])


def test_bad_mask_and_lengths():
    layer = GRU(3)
    x = np.zeros((2, 4, 5))
    with pytest.raises(ValueError, match="mask"):
        layer(x, mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="lengths"):
        layer(x, lengths=np.array([5, 1]))


def test_bidirectional_bad_arguments():
    with pytest.raises(ValueError, match="merge_mode.*'max'"):
        Bidirectional(LSTM(3), merge_mode="max")
    with pytest.raises(TypeError, match="layer"):
        Bidirectional("lstm")
    bi = Bidirectional(LSTM(3))
    with pytest.raises(ValueError, match="initial_state.*expects 4 state arrays"):
        bi(np.zeros((2, 4, 5)), initial_state=[np.zeros((2, 3))] * 2)
    with pytest.raises(ValueError, match="states"):
        bi.reset_states([np.zeros((2, 3))])
    bi_none = Bidirectional(LSTM(3), merge_mode=None)
    bi_none(np.zeros((2, 4, 5)), training=True)
    with pytest.raises(ValueError, match="d_output"):
        bi_none.backward(np.zeros((2, 3)))
