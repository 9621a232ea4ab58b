"""Activations, losses and optimizers: values on hand-computed cases, gradients against central
finite differences (float64), numerical stability, the Keras 3 update formulas and bad arguments.

pytest runs with warnings as errors, so every test here also checks that no RuntimeWarning
(overflow, division by zero, invalid value) is emitted.
"""

import math

import numpy as np
import pytest

from rnnkit import activations, losses, optimizers

RNG = np.random.default_rng(20240607)


def central_difference(f, x, h=1e-6):
    """d f(x) / d x for a scalar function f of an array, element by element (float64)."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        f_plus = f(x)
        x[idx] = old - h
        f_minus = f(x)
        x[idx] = old
        grad[idx] = (f_plus - f_minus) / (2 * h)
    return grad


# =====================================================================================================
# activations
# =====================================================================================================

def _sample_x(name, shape=(3, 5)):
    x = RNG.normal(scale=2.0, size=shape)
    if name == "relu":  # stay away from the kink at 0
        x = np.where(np.abs(x) < 0.1, x + 0.3, x)
    if name == "hard_sigmoid":  # and from the kinks at +-3
        x = np.where(np.abs(np.abs(x) - 3) < 0.1, x + 0.3, x)
    return x


@pytest.mark.parametrize("name", activations.names())
def test_activation_backward_matches_finite_differences(name):
    act = activations.get(name)
    x = _sample_x(name)
    dy = RNG.normal(size=x.shape)
    y = act.forward(x)
    dx = act.backward(dy, x, y)
    expected = central_difference(lambda v: float(np.sum(dy * act.forward(v))), x)
    np.testing.assert_allclose(dx, expected, rtol=1e-6, atol=1e-9)
    # the derivative needs only the cached output
    np.testing.assert_allclose(act.backward(dy, None, y), dx, rtol=0, atol=0)


def test_activation_forward_values():
    x = np.array([[-6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0]])
    np.testing.assert_allclose(activations.get("relu").forward(x), [[0, 0, 0, 0, 1, 3, 6]])
    np.testing.assert_allclose(activations.get("linear").forward(x), x)
    np.testing.assert_allclose(activations.get("tanh").forward(x), np.tanh(x), rtol=1e-15)
    np.testing.assert_allclose(activations.get("sigmoid").forward(x), 1 / (1 + np.exp(-x)),
                               rtol=1e-15)
    # Keras 3 hard_sigmoid: clip(x / 6 + 0.5, 0, 1)
    np.testing.assert_allclose(activations.get("hard_sigmoid").forward(x),
                               [[0, 0, 1 / 3, 0.5, 2 / 3, 1, 1]], rtol=1e-15)
    s = activations.get("softmax").forward(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]))
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(s, [e / e.sum(), [1 / 3] * 3], rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_are_stable_and_keep_dtype(dtype):
    x = np.array([[-1e30, -1000.0, -80.0, 0.0, 80.0, 1000.0, 1e30]], dtype=dtype)
    for name in activations.names():
        act = activations.get(name)
        y = act.forward(x)
        assert y.dtype == dtype, name
        assert np.all(np.isfinite(y)), name
        dx = act.backward(np.ones_like(y), x, y)
        assert dx.dtype == dtype and np.all(np.isfinite(dx)), name
    sig = activations.get("sigmoid").forward(x)
    assert sig[0, 0] == 0 and sig[0, -1] == 1 and sig[0, 3] == 0.5
    soft = activations.get("softmax").forward(x)
    np.testing.assert_allclose(soft.sum(axis=-1), 1, rtol=1e-6)
    assert soft[0, -1] == 1


def test_softmax_backward_formula_on_3d():
    x = RNG.normal(size=(2, 3, 4))
    dy = RNG.normal(size=x.shape)
    act = activations.get("softmax")
    y = act.forward(x)
    np.testing.assert_allclose(act.backward(dy, x, y),
                               y * (dy - np.sum(dy * y, axis=-1, keepdims=True)), rtol=1e-14)


def test_activation_get_and_serialisation():
    assert activations.get(None).name == "linear"
    assert activations.get("TanH").name == "tanh"
    assert activations.get(activations.relu) is activations.get("relu")
    assert activations.get(activations.get("sigmoid")) is activations.get("sigmoid")
    for name in activations.names():
        assert activations.serialize(name) == name
        assert activations.deserialize(activations.serialize(name)) is activations.get(name)


def test_activation_unknown_name_error_names_argument_and_valid_names():
    with pytest.raises(ValueError, match=r"activation must be one of .*'relu'.*'swish'"):
        activations.get("swish")
    with pytest.raises(ValueError, match="recurrent_activation must be one of"):
        activations.get("nope", argument="recurrent_activation")
    with pytest.raises(TypeError, match="activation must be"):
        activations.get(3)


def test_callable_activation_is_forward_only():
    act = activations.get(lambda v: 2 * v)
    x = np.arange(3.0)
    np.testing.assert_allclose(act.forward(x), 2 * x)
    assert not act.has_backward
    with pytest.raises(ValueError, match=r"activation=.*callable.*forward only.*'tanh'"):
        act.backward(np.ones(3), x, 2 * x)
    with pytest.raises(ValueError, match="cannot be serialised"):
        activations.serialize(act)


# =====================================================================================================
# losses: hand-computed values
# =====================================================================================================

def test_keras_documentation_examples():
    # the examples of the Keras 3 loss docstrings
    y_true = [[0.0, 1.0], [0.0, 0.0]]
    assert losses.get("mse")(y_true, [[1.0, 1.0], [1.0, 0.0]]) == pytest.approx(0.5, rel=1e-12)
    assert losses.BinaryCrossentropy()(y_true, [[0.6, 0.4], [0.4, 0.6]]) == pytest.approx(
        0.815, abs=5e-4)
    assert losses.BinaryCrossentropy(from_logits=True)(
        [0, 1, 0, 0], [-18.6, 0.51, 2.94, -12.8]) == pytest.approx(0.865, abs=5e-4)
    probs = [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
    assert losses.CategoricalCrossentropy()([[0, 1, 0], [0, 0, 1]], probs) == pytest.approx(
        1.177, abs=5e-4)
    assert losses.SparseCategoricalCrossentropy()([1, 2], probs) == pytest.approx(1.177, abs=5e-4)


def test_hand_computed_values():
    # MSE: mean over the last axis, then over the batch
    assert losses.MeanSquaredError()([[1.0, 2.0], [3.0, 4.0]], [[1.5, 2.0], [1.0, 4.0]]) == \
        pytest.approx(((0.25 + 0) / 2 + (4 + 0) / 2) / 2, rel=1e-14)
    # BCE on probabilities
    bce = -(math.log(0.9) + math.log(1 - 0.2)) / 2
    assert losses.BinaryCrossentropy()([[1.0, 0.0]], [[0.9, 0.2]]) == pytest.approx(bce, rel=1e-12)
    # BCE from logits: log(1 + exp(-z)) for y = 1, log(1 + exp(z)) for y = 0
    bce = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(0.5))) / 2
    assert losses.BinaryCrossentropy(from_logits=True)([[1.0, 0.0]], [[2.0, 0.5]]) == \
        pytest.approx(bce, rel=1e-12)
    # CCE on probabilities that do not sum to 1: Keras renormalises each row first
    cce = -(math.log(0.7 / 1.0) + math.log(0.4 / 2.0)) / 2
    assert losses.CategoricalCrossentropy()([[0, 1, 0], [1, 0, 0]],
                                            [[0.2, 0.7, 0.1], [0.4, 0.6, 1.0]]) == \
        pytest.approx(cce, rel=1e-12)
    # CCE from logits: logsumexp(z) - z_label
    z = [1.0, 2.0, 0.5]
    cce = math.log(sum(math.exp(v) for v in z)) - 2.0
    assert losses.CategoricalCrossentropy(from_logits=True)([[0, 1, 0]], [z]) == \
        pytest.approx(cce, rel=1e-12)
    assert losses.SparseCategoricalCrossentropy(from_logits=True)([1], [z]) == \
        pytest.approx(cce, rel=1e-12)


def test_sequence_mask_divides_by_unmasked_count():
    # (B, T, C) = (2, 3, 2); one padded step in sequence 0, two in sequence 1
    y_pred = np.array([[[0.5, 0.5], [0.9, 0.1], [123.0, -7.0]],
                       [[0.2, 0.8], [np.nan, 0.0], [0.0, 0.0]]])
    labels = np.array([[0, 0, -1], [1, -1, -1]])  # -1: padding label, ignored where masked
    mask = labels >= 0
    per_step = [-math.log(0.5), -math.log(0.9), -math.log(0.8)]
    expected = sum(per_step) / 3  # not / 6: padded steps do not dilute the loss
    sparse = losses.SparseCategoricalCrossentropy()
    assert sparse(labels, y_pred, mask=mask) == pytest.approx(expected, rel=1e-12)
    grad = sparse.gradient(labels, y_pred, mask=mask)
    assert np.all(grad[~mask] == 0) and np.all(np.isfinite(grad))
    # with sample weights: weighted sum over unmasked steps / number of unmasked steps
    sw = np.array([[1.0, 2.0, 5.0], [3.0, 7.0, 7.0]])
    expected = (per_step[0] * 1 + per_step[1] * 2 + per_step[2] * 3) / 3
    assert sparse(labels, y_pred, sample_weight=sw, mask=mask) == pytest.approx(expected, rel=1e-12)
    # every entry masked: 0 and a zero gradient
    none = np.zeros_like(mask)
    assert sparse(labels, y_pred, mask=none) == 0.0
    assert not np.any(sparse.gradient(labels, y_pred, mask=none))


def test_sample_weight_keras_reduction():
    # sum_over_batch_size divides by the number of entries, not by the sum of the weights
    y_true = np.array([[0.0], [0.0], [0.0]])
    y_pred = np.array([[1.0], [2.0], [3.0]])
    mse = losses.MeanSquaredError()
    assert mse(y_true, y_pred, sample_weight=[1.0, 0.0, 2.0]) == pytest.approx((1 + 18) / 3)
    # (B,) weights on sequence outputs weigh whole sequences; (B, T, 1) is accepted too
    y_pred3 = RNG.normal(size=(2, 3, 4))
    y_true3 = RNG.normal(size=(2, 3, 4))
    per = np.mean((y_pred3 - y_true3) ** 2, axis=-1)
    expected = np.sum(per * np.array([[2.0], [0.5]])) / 6
    assert mse(y_true3, y_pred3, sample_weight=[2.0, 0.5]) == pytest.approx(expected, rel=1e-12)
    sw = RNG.uniform(size=(2, 3))
    assert mse(y_true3, y_pred3, sample_weight=sw[..., None]) == pytest.approx(
        np.sum(per * sw) / 6, rel=1e-12)


def test_label_rank_is_matched_like_keras():
    bce = losses.BinaryCrossentropy()
    y_pred = np.array([[0.9], [0.2], [0.6]])
    assert bce([1, 0, 1], y_pred) == pytest.approx(bce([[1], [0], [1]], y_pred), rel=1e-15)
    assert losses.SparseCategoricalCrossentropy()([[1], [2]], [[0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]) \
        == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2, rel=1e-12)


# =====================================================================================================
# losses: gradients against finite differences
# =====================================================================================================

B, T, C = 3, 4, 5


def _case(kind, from_logits, shape):
    """(loss, y_true, y_pred) with predictions away from the probability clip."""
    lead = shape[:-1]
    c = shape[-1]
    if kind == "mse":
        return losses.MeanSquaredError(), RNG.normal(size=shape), RNG.normal(size=shape)
    if kind == "bce":
        y_true = RNG.uniform(size=shape)  # soft labels
        y_pred = RNG.normal(size=shape) if from_logits else RNG.uniform(0.05, 0.95, size=shape)
        return losses.BinaryCrossentropy(from_logits=from_logits), y_true, y_pred
    y_pred = RNG.normal(size=shape) if from_logits else RNG.uniform(0.1, 1.0, size=shape)
    labels = RNG.integers(0, c, size=lead)
    if kind == "cce":
        return losses.CategoricalCrossentropy(from_logits=from_logits), np.eye(c)[labels], y_pred
    return losses.SparseCategoricalCrossentropy(from_logits=from_logits), labels, y_pred


def _weighting(how, lead):
    sample_weight = mask = None
    if how in ("sample_weight", "both"):
        sample_weight = RNG.uniform(0.5, 2.0, size=lead if len(lead) == 1 else lead[:1])
        if how == "both" and len(lead) == 2:
            sample_weight = RNG.uniform(0.5, 2.0, size=lead)
    if how in ("mask", "both"):
        mask = RNG.uniform(size=lead) < 0.6
        mask.flat[0] = True
    return sample_weight, mask


@pytest.mark.parametrize("shape", [(B, C), (B, T, C), (1, 1, 1), (2, 3)], ids=str)
@pytest.mark.parametrize("how", ["plain", "sample_weight", "mask", "both"])
@pytest.mark.parametrize("kind,from_logits", [("mse", False), ("bce", False), ("bce", True),
                                              ("cce", False), ("cce", True), ("sparse", False),
                                              ("sparse", True)])
def test_loss_gradient_matches_finite_differences(kind, from_logits, shape, how):
    loss, y_true, y_pred = _case(kind, from_logits, shape)
    sample_weight, mask = _weighting(how, shape[:-1])
    value, grad = loss.value_and_gradient(y_true, y_pred, sample_weight=sample_weight, mask=mask)
    assert value == loss(y_true, y_pred, sample_weight=sample_weight, mask=mask)
    np.testing.assert_array_equal(grad, loss.gradient(y_true, y_pred, sample_weight, mask))
    assert grad.shape == y_pred.shape and grad.dtype == np.float64
    expected = central_difference(
        lambda v: loss(y_true, v, sample_weight=sample_weight, mask=mask), y_pred)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kind", ["bce", "cce", "sparse"])
@pytest.mark.parametrize("shape", [(B, C), (B, T, C)], ids=str)
def test_gradient_wrt_logits_is_the_composed_gradient(kind, shape):
    """Fast path: d loss(act(z)) / dz == gradient_wrt_logits(z), for the probability-form loss."""
    loss, y_true, _ = _case(kind, False, shape)
    act = activations.get(loss.logits_activation)
    z = RNG.normal(size=shape)
    probs = act.forward(z)
    composed = act.backward(loss.gradient(y_true, probs), z, probs)
    np.testing.assert_allclose(loss.gradient_wrt_logits(y_true, z), composed, rtol=1e-9, atol=1e-12)
    value, grad = loss.value_and_gradient_wrt_logits(y_true, z)
    assert value == pytest.approx(loss(y_true, probs), rel=1e-9)
    np.testing.assert_array_equal(grad, loss.gradient_wrt_logits(y_true, z))


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("shape", [(B, C), (B, T, C)], ids=str)
def test_sparse_and_one_hot_categorical_agree(from_logits, shape):
    _, labels, y_pred = _case("sparse", from_logits, shape)
    one_hot = np.eye(shape[-1])[labels]
    sw, mask = _weighting("both", shape[:-1])
    sparse = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    dense = losses.CategoricalCrossentropy(from_logits=from_logits)
    v1, g1 = sparse.value_and_gradient(labels, y_pred, sample_weight=sw, mask=mask)
    v2, g2 = dense.value_and_gradient(one_hot, y_pred, sample_weight=sw, mask=mask)
    assert v1 == pytest.approx(v2, rel=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-15)


# =====================================================================================================
# losses: stability, dtypes, lookup and errors
# =====================================================================================================

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_give_finite_loss_and_gradient(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e30, 1e30, 1.0], [88.0, 89.0, -104.0]], dtype=dtype)
    if dtype == np.float64:
        z[1] = [-1e300, 1e300, 1.0]
    labels = np.array([1, 0, 2])
    for loss, y_true in [(losses.CategoricalCrossentropy(from_logits=True), np.eye(3)[labels]),
                         (losses.SparseCategoricalCrossentropy(from_logits=True), labels),
                         (losses.BinaryCrossentropy(from_logits=True), np.eye(3)[labels])]:
        value, grad = loss.value_and_gradient(y_true, z)
        assert math.isfinite(value) and value > 0
        assert grad.dtype == dtype and np.all(np.isfinite(grad))
        assert np.all(np.isfinite(loss.gradient_wrt_logits(y_true, z)))
    # the 1e4 logit on the wrong class costs 2e4 / (3 samples)
    assert losses.SparseCategoricalCrossentropy(from_logits=True)([1], z[:1]) == \
        pytest.approx(2e4, rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturated_probabilities_are_clipped(dtype):
    y_pred = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    y_true = np.array([[0.0, 1.0], [0.0, 1.0]])
    for loss in (losses.BinaryCrossentropy(), losses.CategoricalCrossentropy()):
        value, grad = loss.value_and_gradient(y_true, y_pred)
        assert math.isfinite(value) and np.all(np.isfinite(grad)) and grad.dtype == dtype
    # -log(eps) is the largest per-entry crossentropy (Keras: eps = 1e-7)
    value = losses.SparseCategoricalCrossentropy()([1], np.array([[1.0, 0.0]], dtype=dtype))
    assert value == pytest.approx(-math.log(1e-7), rel=1e-5)


def test_loss_get_aliases_and_serialisation():
    for name, cls in [("mse", losses.MeanSquaredError), ("MSE", losses.MeanSquaredError),
                      ("mean_squared_error", losses.MeanSquaredError),
                      ("MeanSquaredError", losses.MeanSquaredError),
                      ("binary_crossentropy", losses.BinaryCrossentropy),
                      ("BinaryCrossentropy", losses.BinaryCrossentropy),
                      ("categorical_crossentropy", losses.CategoricalCrossentropy),
                      ("CategoricalCrossentropy", losses.CategoricalCrossentropy),
                      ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
                      ("SparseCategoricalCrossentropy", losses.SparseCategoricalCrossentropy)]:
        assert type(losses.get(name)) is cls
    loss = losses.CategoricalCrossentropy(from_logits=True)
    assert losses.get(loss) is loss
    again = losses.deserialize(losses.serialize(loss))
    assert type(again) is losses.CategoricalCrossentropy and again.from_logits
    assert again.get_config() == loss.get_config()
    assert type(losses.get(losses.sparse_categorical_crossentropy)) is \
        losses.SparseCategoricalCrossentropy


def test_loss_errors_name_the_argument():
    with pytest.raises(ValueError, match="loss must be one of"):
        losses.get("hinge")
    with pytest.raises(TypeError, match="needs the loss gradient"):
        losses.get(lambda a, b: 0.0)
    sparse = losses.SparseCategoricalCrossentropy()
    probs = np.full((2, 3, 4), 0.25)
    with pytest.raises(ValueError, match=r"y_true must hold integer class labels of shape \(2, 3\)"):
        sparse(np.zeros((2, 3, 4)), probs)
    with pytest.raises(ValueError, match=r"y_true labels must be in \[0, 4\).*got 4"):
        sparse(np.full((2, 3), 4), probs)
    with pytest.raises(ValueError, match=r"y_true labels must be in \[0, 4\).*got -1"):
        sparse(np.full((2, 3), -1), probs)
    with pytest.raises(ValueError, match="y_true must hold integer class labels, got non-integral"):
        sparse(np.full((2, 3), 1.5), probs)
    with pytest.raises(ValueError, match=r"y_true must have the shape of y_pred \(2, 3, 4\)"):
        losses.CategoricalCrossentropy()(np.zeros((2, 3, 3)), probs)
    with pytest.raises(ValueError, match=r"mask must have the per-sample loss shape \(2, 3\)"):
        losses.MeanSquaredError()(probs, probs, mask=np.ones((2, 3, 4), bool))
    with pytest.raises(ValueError, match="sample_weight of shape"):
        losses.MeanSquaredError()(probs, probs, sample_weight=np.ones((3, 3)))
    with pytest.raises(ValueError, match="y_pred must hold probabilities with a positive sum"):
        losses.CategoricalCrossentropy()(np.eye(4)[:2], np.zeros((2, 4)))
    with pytest.raises(TypeError, match="from_logits must be a bool"):
        losses.BinaryCrossentropy(from_logits="yes")
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.MeanSquaredError(reduction="mean_with_sample_weight")


# =====================================================================================================
# optimizers: the Keras 3 update formulas, computed by hand
# =====================================================================================================

def _two_grads(shape=(3, 2)):
    return RNG.normal(size=shape), RNG.normal(size=shape)


def test_sgd_plain_and_keras_example():
    var = np.array([1.0], dtype=np.float32)
    opt = optimizers.SGD(learning_rate=0.1)
    opt.apply_gradients([(var.copy(), var)])  # loss = var^2 / 2, gradient = var
    assert var[0] == pytest.approx(0.9, rel=1e-7) and var.dtype == np.float32
    w = RNG.normal(size=(4, 3))
    g = RNG.normal(size=(4, 3))
    expected = w - 0.01 * g
    optimizers.SGD().apply([g], [w])
    np.testing.assert_allclose(w, expected, rtol=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_two_steps(nesterov):
    lr, mu = 0.05, 0.9
    w0 = RNG.normal(size=(3, 2))
    g1, g2 = _two_grads()
    var = w0.copy()
    opt = optimizers.SGD(learning_rate=lr, momentum=mu, nesterov=nesterov)
    opt.apply([g1], [var])
    m1 = -lr * g1
    w1 = w0 + (mu * m1 - lr * g1 if nesterov else m1)
    np.testing.assert_allclose(var, w1, rtol=1e-13)
    opt.apply([g2], [var])
    m2 = mu * m1 - lr * g2
    w2 = w1 + (mu * m2 - lr * g2 if nesterov else m2)
    np.testing.assert_allclose(var, w2, rtol=1e-13)
    np.testing.assert_allclose(opt.slots(var)["momentum"], m2, rtol=1e-13)
    assert opt.iterations == 2


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_two_steps_textbook(amsgrad):
    lr, b1, b2, eps = 0.01, 0.8, 0.9, 1e-7
    w0 = RNG.normal(size=(3, 2))
    g1, g2 = _two_grads()
    g2[0] = 0.1 * g1[0]  # v shrinks for this row: amsgrad keeps the old maximum
    var = w0.copy()
    opt = optimizers.Adam(learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps, amsgrad=amsgrad)
    m = v = v_hat = np.zeros_like(w0)
    w = w0
    for t, g in enumerate((g1, g2), start=1):
        opt.apply_gradients([(g, var)])
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_hat = np.maximum(v_hat, v)
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        w = w - alpha * m / (np.sqrt(v_hat if amsgrad else v) + eps)
        np.testing.assert_allclose(var, w, rtol=1e-13)
    if amsgrad:
        assert np.any(v_hat > v)


def test_adam_first_step_is_lr_times_sign_up_to_epsilon_hat():
    # step 1: m = (1 - b1) g, v = (1 - b2) g^2, alpha = lr sqrt(1 - b2) / (1 - b1), so the step is
    # lr sign(g) s / (s + eps) with s = sqrt(1 - b2) |g|: epsilon is "epsilon hat", outside the sqrt
    g = np.array([3.0, -0.5, 1e-3, 20.0])
    var = np.zeros(4)
    optimizers.Adam(learning_rate=0.1).apply([g], [var])
    s = math.sqrt(1 - 0.999) * np.abs(g)
    np.testing.assert_allclose(var, -0.1 * np.sign(g) * s / (s + 1e-7), rtol=1e-12)
    assert abs(var[2]) < 0.0997  # visibly shorter for a tiny gradient


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop_two_steps(centered, momentum):
    lr, rho, eps = 0.01, 0.8, 1e-7
    w0 = RNG.normal(size=(3, 2))
    g1, g2 = _two_grads()
    var = w0.copy()
    opt = optimizers.RMSprop(learning_rate=lr, rho=rho, momentum=momentum, epsilon=eps,
                             centered=centered)
    v = a = mom = np.zeros_like(w0)
    w = w0
    for g in (g1, g2):
        opt.apply([g], [var])
        v = rho * v + (1 - rho) * g * g
        a = rho * a + (1 - rho) * g
        denom = v - a * a + eps if centered else v + eps
        inc = lr * g / np.sqrt(denom)
        mom = momentum * mom + inc
        w = w - (mom if momentum > 0 else inc)
        np.testing.assert_allclose(var, w, rtol=1e-12)


def test_rmsprop_keras_example():
    var = np.array([10.0], dtype=np.float32)
    optimizers.RMSprop(learning_rate=0.1).apply([var.copy()], [var])
    assert var[0] == pytest.approx(9.683772, abs=1e-6)


@pytest.mark.parametrize("make", [lambda: optimizers.SGD(momentum=0.9, nesterov=True),
                                  lambda: optimizers.Adam(amsgrad=True),
                                  lambda: optimizers.RMSprop(momentum=0.5, centered=True)])
def test_float32_variables_float32_slots_and_in_place(make):
    opt = make()
    var = RNG.normal(size=(5, 3)).astype(np.float32)
    g64 = RNG.normal(size=(5, 3))
    g_before = g64.copy()
    ref = var.astype(np.float64)
    ref_opt = make()
    for _ in range(3):
        opt.apply_gradients([(g64, var)])
        ref_opt.apply_gradients([(g64, ref)])
    assert var.dtype == np.float32
    assert all(s.dtype == np.float32 for s in opt.slots(var).values())
    np.testing.assert_allclose(var, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(g64, g_before)  # the caller's gradient is not modified


def test_none_gradient_skips_variable_and_iterations_count():
    a, b = np.ones(2), np.ones(3)
    opt = optimizers.SGD(learning_rate=0.5)
    assert opt.apply_gradients([(np.ones(2), a), (None, b)]) == 1
    np.testing.assert_array_equal(a, [0.5, 0.5])
    np.testing.assert_array_equal(b, [1, 1, 1])
    assert opt.apply([None, None], [a, b]) == 1  # nothing to do: no iteration
    opt.build([a, b])
    opt.apply([np.ones(2), np.ones(3)])  # variables in build order
    np.testing.assert_array_equal(b, [0.5, 0.5, 0.5])
    assert opt.iterations == 2


# =====================================================================================================
# optimizers: clipping
# =====================================================================================================

def test_clipnorm_clips_each_variable_separately():
    big, small = np.array([3.0, 4.0]), np.array([0.3, 0.4])  # norms 5 and 0.5
    a, b = np.zeros(2), np.zeros(2)
    optimizers.SGD(learning_rate=1.0, clipnorm=1.0).apply([big, small], [a, b])
    np.testing.assert_allclose(a, -big / 5, rtol=1e-15)   # scaled to norm 1
    np.testing.assert_allclose(b, -small, rtol=1e-15)     # under the limit: untouched
    np.testing.assert_array_equal(big, [3.0, 4.0])


def test_global_clipnorm_clips_by_the_norm_of_all_gradients():
    g1, g2 = np.array([[3.0]]), np.array([4.0, 0.0])  # global norm 5
    a, b = np.zeros((1, 1)), np.zeros(2)
    optimizers.SGD(learning_rate=1.0, global_clipnorm=2.0).apply([g1, g2], [a, b])
    np.testing.assert_allclose(a, -g1 * 2 / 5, rtol=1e-15)
    np.testing.assert_allclose(b, -g2 * 2 / 5, rtol=1e-15)
    a[:] = 0
    b[:] = 0
    optimizers.SGD(learning_rate=1.0, global_clipnorm=10.0).apply([g1, g2], [a, b])
    np.testing.assert_allclose(b, -g2, rtol=1e-15)


def test_global_clipnorm_with_non_finite_gradient_gives_nan_like_keras():
    a, b = np.zeros(2), np.zeros(2)
    optimizers.Adam(global_clipnorm=1.0).apply([np.array([np.inf, 0.0]), np.ones(2)], [a, b])
    assert np.all(np.isnan(a)) and np.all(np.isnan(b))


def test_clipnorm_survives_float32_overflow_of_the_squared_norm():
    var = np.zeros(3, dtype=np.float32)
    g = np.array([1e20, -1e20, 0.0], dtype=np.float32)
    optimizers.SGD(learning_rate=1.0, clipnorm=1.0).apply([g], [var])
    np.testing.assert_allclose(var, [-math.sqrt(0.5), math.sqrt(0.5), 0.0], rtol=1e-6)


def test_clipvalue_clips_elements_before_the_adam_update():
    g = np.array([-5.0, 0.25, 3.0])
    clipped = np.clip(g, -0.5, 0.5)
    var, ref = np.zeros(3), np.zeros(3)
    optimizers.Adam(learning_rate=0.1, clipvalue=0.5).apply([g], [var])
    optimizers.Adam(learning_rate=0.1).apply([clipped], [ref])
    np.testing.assert_allclose(var, ref, rtol=1e-15)
    np.testing.assert_array_equal(g, [-5.0, 0.25, 3.0])


# =====================================================================================================
# optimizers: lookup, serialisation, bad arguments
# =====================================================================================================

def test_optimizer_get_config_roundtrip():
    for name, cls in [("sgd", optimizers.SGD), ("SGD", optimizers.SGD), ("Adam", optimizers.Adam),
                      ("ADAM", optimizers.Adam), ("rmsprop", optimizers.RMSprop),
                      ("RMSprop", optimizers.RMSprop)]:
        assert type(optimizers.get(name)) is cls
    opt = optimizers.RMSprop(learning_rate=0.02, rho=0.8, momentum=0.1, centered=True, clipnorm=2.0)
    assert optimizers.get(opt) is opt
    cfg = opt.get_config()
    again = optimizers.RMSprop.from_config(cfg)
    assert again.get_config() == cfg
    again = optimizers.deserialize(optimizers.serialize(optimizers.Adam(amsgrad=True)))
    assert type(again) is optimizers.Adam and again.amsgrad
    assert optimizers.SGD().get_config()["learning_rate"] == 0.01
    assert optimizers.Adam().get_config()["epsilon"] == 1e-7


@pytest.mark.parametrize("make,argument", [
    (lambda: optimizers.SGD(learning_rate=0.0), "learning_rate"),
    (lambda: optimizers.Adam(learning_rate=-1e-3), "learning_rate"),
    (lambda: optimizers.Adam(learning_rate=float("nan")), "learning_rate"),
    (lambda: optimizers.SGD(momentum=1.5), "momentum"),
    (lambda: optimizers.Adam(beta_1=1.0), "beta_1"),
    (lambda: optimizers.Adam(beta_2=-0.1), "beta_2"),
    (lambda: optimizers.Adam(epsilon=0.0), "epsilon"),
    (lambda: optimizers.RMSprop(rho=1.0), "rho"),
    (lambda: optimizers.RMSprop(momentum=-0.5), "momentum"),
    (lambda: optimizers.SGD(clipnorm=0.0), "clipnorm"),
    (lambda: optimizers.SGD(clipvalue=-1.0), "clipvalue"),
    (lambda: optimizers.SGD(global_clipnorm=float("inf")), "global_clipnorm"),
    (lambda: optimizers.SGD(clipnorm=1.0, global_clipnorm=1.0), "global_clipnorm"),
    (lambda: optimizers.Adam(clipnorm=1.0, clipvalue=1.0), "clipvalue"),
    (lambda: optimizers.get("adagrad"), "optimizer"),
])
def test_optimizer_bad_arguments_raise_value_error_naming_them(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


@pytest.mark.parametrize("make,argument", [
    (lambda: optimizers.SGD(learning_rate="fast"), "learning_rate"),
    (lambda: optimizers.SGD(learning_rate=True), "learning_rate"),
    (lambda: optimizers.SGD(nesterov="yes"), "nesterov"),
    (lambda: optimizers.Adam(amsgrad=1), "amsgrad"),
    (lambda: optimizers.RMSprop(centered=None), "centered"),
    (lambda: optimizers.get(3), "optimizer"),
])
def test_optimizer_bad_types_raise_type_error_naming_them(make, argument):
    with pytest.raises(TypeError, match=argument):
        make()


def test_optimizer_bad_gradients_and_variables():
    opt = optimizers.Adam()
    with pytest.raises(ValueError, match=r"grads\[0\] must have the shape of its variable \(2,\)"):
        opt.apply([np.ones(3)], [np.zeros(2)])
    with pytest.raises(TypeError, match=r"variables\[0\] must be a float32 or float64"):
        opt.apply([np.ones(2)], [np.zeros(2, dtype=np.int64)])
    with pytest.raises(TypeError, match=r"variables\[0\] must be a float32 or float64"):
        opt.apply([np.ones(2)], [[0.0, 0.0]])
    with pytest.raises(ValueError, match="same length"):
        opt.apply([np.ones(2)], [])
    with pytest.raises(TypeError, match=r"grads_and_vars\[0\] must be a \(grad, var\) pair"):
        opt.apply_gradients([np.ones(2)])
    frozen = np.zeros(2)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        opt.apply([np.ones(2)], [frozen])
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = 0.0
    opt.learning_rate = 0.5  # settable (callbacks)
    assert opt.get_config()["learning_rate"] == 0.5
