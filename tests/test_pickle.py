"""Pickling and copying (issue 10): layers, compiled and trained models, optimizers and callbacks
round-trip through ``pickle`` and ``copy.deepcopy``; ``fit`` / ``evaluate`` / ``predict`` leave no
training caches behind.

Round trips are expected to be exact: the copy computes with the same arrays' values on the same
backend, so its outputs, gradients and continued training equal the original's bit for bit.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest


import rnnkit
from rnnkit import initializers
from rnnkit.callbacks import Callback, EarlyStopping, History
from rnnkit.layers.base import Layer
from rnnkit.optimizers import SGD, Adam, RMSprop

NO_CACHE = "call the layer with training=True before backward"


def pickle_round_trip(obj):
    return pickle.loads(pickle.dumps(obj))


COPIERS = {"pickle": pickle_round_trip, "deepcopy": copy.deepcopy}


@pytest.fixture(params=sorted(COPIERS))
def copier(request):
    return COPIERS[request.param]


def cache_values(layer):
    """The training-cache attributes of ``layer`` (and of a Bidirectional's inner layers)."""
    values = {name: getattr(layer, name) for name in layer._training_cache_attrs}
    for inner in ("forward_layer", "backward_layer"):
        if hasattr(layer, inner):
            values.update({f"{inner}.{k}": v for k, v in cache_values(getattr(layer, inner)).items()})
    return values


def assert_no_cache(layer):
    held = {k: type(v).__name__ for k, v in cache_values(layer).items() if v is not None}
    assert not held, f"layer {layer.name!r} still holds {held}"
    assert layer.grads is None


def assert_same_arrays(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_array_equal(a, e)


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------

_RNG_INIT = dict(bias_initializer=initializers.RandomUniform(-0.5, 0.5))


def _sequence(dtype, shape=(3, 5, 4), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# name -> factory(dtype) -> (layer, x); every layer sees x once with training=True before copying
LAYER_CASES = {
    "SimpleRNN": lambda dt: (rnnkit.SimpleRNN(6, return_sequences=True, seed=1, dtype=dt, **_RNG_INIT),
                             _sequence(dt)),
    "LSTM": lambda dt: (rnnkit.LSTM(6, seed=2, dtype=dt, **_RNG_INIT), _sequence(dt)),
    "GRU-reset_after": lambda dt: (rnnkit.GRU(6, return_sequences=True, seed=3, dtype=dt, **_RNG_INIT),
                                   _sequence(dt)),
    "GRU-reset_before": lambda dt: (rnnkit.GRU(6, reset_after=False, go_backwards=True, seed=4, dtype=dt,
                                               **_RNG_INIT), _sequence(dt)),
    "Bidirectional-concat": lambda dt: (rnnkit.Bidirectional(rnnkit.LSTM(5, return_sequences=True, seed=5,
                                                                         dtype=dt)), _sequence(dt)),
    "Bidirectional-mul": lambda dt: (rnnkit.Bidirectional(rnnkit.GRU(5, seed=6, dtype=dt), merge_mode="mul"),
                                     _sequence(dt)),
    "Dense": lambda dt: (rnnkit.Dense(3, activation="tanh", seed=7, dtype=dt,
                                      bias_initializer=initializers.RandomUniform(-0.5, 0.5)), _sequence(dt)),
    "Dense-softmax": lambda dt: (rnnkit.Dense(4, activation="softmax", seed=8, dtype=dt),
                                 _sequence(dt, (6, 4))),
    "Embedding": lambda dt: (rnnkit.Embedding(10, 4, mask_zero=True, seed=9, dtype=dt),
                             np.random.default_rng(1).integers(0, 10, size=(3, 5))),
    "Dropout": lambda dt: (rnnkit.Dropout(0.4, seed=10, dtype=dt), _sequence(dt)),
    "Flatten": lambda dt: (rnnkit.Flatten(dtype=dt), _sequence(dt)),
    "Masking": lambda dt: (rnnkit.Masking(0.0, dtype=dt),
                           np.where(np.arange(5)[None, :, None] < 3, _sequence(dt), 0).astype(dt)),
}


def _output(y):
    return y[0] if isinstance(y, list) else y


def _backward(layer, y, seed=11):
    d = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    return layer.backward(d)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_round_trip(backend, copier, case, dtype):
    layer, x = LAYER_CASES[case](dtype)
    y_train = _output(layer(x, training=True))
    _backward(layer, y_train)            # the original holds a cache and gradients
    clone = copier(layer)

    assert type(clone) is type(layer) and clone.name == layer.name and clone.built == layer.built
    assert clone.get_config() == layer.get_config()
    assert_same_arrays(clone.weights, layer.weights)
    assert all(c is not w for c, w in zip(clone.weights, layer.weights))
    if layer.grads is not None:
        assert_same_arrays(clone.grads, layer.grads)      # public results of backward come along
    # the cache stays behind (and the original keeps its own)
    assert all(v is None for v in cache_values(clone).values())
    assert any(v is not None for v in cache_values(layer).values())
    with pytest.raises(ValueError, match=NO_CACHE):
        _backward(clone, y_train)

    # inference: identical outputs
    assert_same_arrays([_output(clone(x))], [_output(layer(x))])
    # a training call and backward: identical outputs (Dropout: the same random stream) and gradients
    y1, y2 = _output(layer(x, training=True)), _output(clone(x, training=True))
    assert_same_arrays([y2], [y1])
    dx1, dx2 = _backward(layer, y1), _backward(clone, y2)
    if dx1 is None:
        assert dx2 is None
    else:
        assert_same_arrays([dx2], [dx1])
    assert_same_arrays(clone.grads, layer.grads)


@pytest.mark.parametrize("case", ["SimpleRNN", "LSTM", "GRU-reset_after", "Bidirectional-concat", "Dense",
                                  "Embedding"])
def test_layer_copy_owns_its_weights(copier, case):
    """The copy's weights are its own, and every attribute that refers to them (RNN's bound weight
    arguments, Bidirectional's list of both directions' arrays) refers to the copied arrays."""
    layer, x = LAYER_CASES[case]("float64")
    before = _output(layer(x))
    clone = copier(layer)
    clone.set_weights([w + 0.25 for w in clone.get_weights()])   # (weights are read-only otherwise)
    assert_same_arrays([_output(layer(x))], [before])          # the original is untouched
    changed = _output(clone(x))
    assert not np.array_equal(changed, before)                  # the copy computes with its arrays
    fresh = copier(layer)
    fresh.set_weights(clone.get_weights())
    assert_same_arrays([_output(fresh(x))], [changed])


def test_unbuilt_layers_round_trip(copier):
    for layer in (rnnkit.LSTM(3), rnnkit.Bidirectional(rnnkit.SimpleRNN(2)), rnnkit.Dense(2),
                  rnnkit.Embedding(5, 2)):
        clone = copier(layer)
        assert not clone.built and clone.get_config() == layer.get_config()
        x = np.ones((2, 3, 4)) if not isinstance(layer, rnnkit.Embedding) else np.ones((2, 3), int)
        np.testing.assert_array_equal(_output(clone(x)).shape, _output(layer(x)).shape)


@pytest.mark.parametrize("cls", [rnnkit.SimpleRNN, rnnkit.LSTM, rnnkit.GRU])
def test_stateful_states_round_trip(backend, copier, cls):
    layer = cls(4, stateful=True, seed=12, dtype="float64")
    x = _sequence(np.float64, (2, 3, 3))
    layer(x)
    clone = copier(layer)
    assert_same_arrays(clone.states, layer.states)
    assert_same_arrays([clone(x)], [layer(x)])        # both continue from the same states
    assert_same_arrays(clone.states, layer.states)


def test_derived_attributes_are_left_out_and_none_after_a_round_trip(copier):
    """``_derived_attrs`` (e.g. a recurrent layer's packed weights ``_pack``) hold things rebuilt from
    the weights that may not pickle at all: a copy leaves them out and starts with None."""
    layer, x = LAYER_CASES["LSTM"]("float32")
    assert "_pack" in type(layer)._derived_attrs
    layer(x)
    layer._pack = lambda: None        # stands in for an unpicklable handle
    clone = copier(layer)
    assert clone._pack is None and layer._pack is not None
    assert "_pack" not in layer.__getstate__()


def test_getstate_does_not_modify_the_layer():
    layer, x = LAYER_CASES["GRU-reset_after"]("float32")
    y = layer(x, training=True)
    cache = layer._cache
    state = layer.__getstate__()
    assert "_cache" not in state and "_output_shape" not in state
    assert layer._cache is cache
    layer.backward(np.ones_like(y))   # still possible


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_clear_training_cache(case):
    layer, x = LAYER_CASES[case]("float32")
    y = _output(layer(x, training=True))
    _backward(layer, y)
    layer.clear_training_cache()
    assert_no_cache(layer)
    if hasattr(layer, "d_initial_state"):
        assert layer.d_initial_state is None
    with pytest.raises(ValueError, match=NO_CACHE):
        _backward(layer, y)
    # the layer still works and trains
    y = _output(layer(x, training=True))
    _backward(layer, y)
    assert layer.grads is not None


def test_every_layer_class_lists_its_cache():
    """Each registered layer class declares the attributes its training call sets (every attribute
    that is None before the first call and set by a training call must be listed)."""
    for case, factory in LAYER_CASES.items():
        layer, x = factory("float32")
        # build first (weights are not a cache), then compare the attributes around a training call
        layer(x)
        before = {k: v for k, v in vars(layer).items() if v is None}
        _backward(layer, _output(layer(x, training=True)))
        set_by_training = {k for k in before if getattr(layer, k) is not None}
        declared = set(layer._training_cache_attrs) | set(layer._gradient_attrs)
        assert set_by_training <= declared, (case, set_by_training - declared)


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


def _regression_data(dtype, n=48, t=6, i=3):
    rng = np.random.default_rng(20)
    x = rng.standard_normal((n, t, i)).astype(dtype)
    y = (x.sum(axis=(1, 2))[:, None] * 0.1).astype(dtype)
    return x, y


MODEL_CASES = {
    "lstm-adam": lambda dt: (
        [rnnkit.LSTM(8, seed=1, dtype=dt), rnnkit.Dense(1, seed=2, dtype=dt)],
        Adam(1e-2), "mse", []),
    "lstm-sgd-momentum": lambda dt: (
        [rnnkit.LSTM(8, return_sequences=True, seed=3, dtype=dt), rnnkit.Flatten(dtype=dt),
         rnnkit.Dense(1, seed=4, dtype=dt)],
        SGD(0.05, momentum=0.9, nesterov=True), "mse", []),
    "bigru-dropout-rmsprop": lambda dt: (
        [rnnkit.Bidirectional(rnnkit.GRU(5, return_sequences=True, seed=5, dtype=dt)),
         rnnkit.Dropout(0.3, seed=6, dtype=dt), rnnkit.SimpleRNN(4, seed=7, dtype=dt),
         rnnkit.Dense(1, seed=8, dtype=dt)],
        RMSprop(1e-2, momentum=0.5, centered=True), "mse", ["mae"]),
}


def _compiled(case, dtype):
    layers, optimizer, loss, metrics = MODEL_CASES[case](dtype)
    model = rnnkit.Sequential(layers)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_trained_model_round_trip_continues_training_identically(backend, copier, case, dtype):
    x, y = _regression_data(dtype)
    model = _compiled(case, dtype)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    clone = copier(model)

    # the copy predicts and evaluates exactly like the original
    assert_same_arrays([clone.predict(x)], [model.predict(x)])
    assert clone.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    # its optimizer is a copy holding the same state for the copy's own weight arrays
    opt, opt2 = model.optimizer, clone.optimizer
    assert opt2 is not opt and type(opt2) is type(opt) and opt2.get_config() == opt.get_config()
    assert opt2.iterations == opt.iterations == 6
    assert len(opt2.variables) == len(opt.variables) == len(model.weights)
    assert all(v2 is w2 for v2, w2 in zip(opt2.variables, clone.weights))
    for v, v2 in zip(opt.variables, opt2.variables):
        assert set(opt2.slots(v2)) == set(opt.slots(v))
        for name in opt.slots(v):
            np.testing.assert_array_equal(opt2.slots(v2)[name], opt.slots(v)[name])
    assert clone.history is not model.history and clone.history.model is clone
    assert clone.history.history == model.history.history

    # one more epoch each: the copy first, which must not touch the original
    snapshot = model.get_weights()
    h2 = clone.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=1)
    assert_same_arrays(model.get_weights(), snapshot)
    h1 = model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=1)
    assert h2.history == h1.history
    assert_same_arrays(clone.get_weights(), model.get_weights())
    assert opt2.iterations == opt.iterations == 12
    assert not np.array_equal(model.get_weights()[0], snapshot[0])   # training did move the weights


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_round_trip_equals_uninterrupted_training(case):
    """fit 1 epoch, pickle, fit 1 more == fit 1 epoch, fit 1 more on one model (same seeds)."""
    x, y = _regression_data("float32")
    a, b = _compiled(case, "float32"), _compiled(case, "float32")
    for m in (a, b):
        m.build((None, *x.shape[1:]))
    assert_same_arrays(b.get_weights(), a.get_weights())     # seeded layers
    for m in (a, b):
        m.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    b = pickle_round_trip(b)
    for m in (a, b):
        m.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=1)
    assert_same_arrays(b.get_weights(), a.get_weights())


def test_compiled_untrained_and_unbuilt_models_round_trip(copier):
    x, y = _regression_data("float64")
    unbuilt = rnnkit.Sequential([rnnkit.GRU(3, seed=1, dtype="float64"), rnnkit.Dense(1, seed=2, dtype="float64")])
    unbuilt.compile(optimizer="adam", loss="mse")
    clone = copier(unbuilt)
    assert not clone.built and clone.compiled and clone.optimizer.variables == []
    for m in (unbuilt, clone):
        m.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=0)
    assert_same_arrays(clone.get_weights(), unbuilt.get_weights())


def test_pickled_model_holds_weights_and_slots_not_activations():
    """The memory of a trained model is its weights and optimizer slots: a pickle of it is about
    their size, however large the training batches were."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 50, 8)).astype(np.float32)
    y = rng.standard_normal((256, 50, 1)).astype(np.float32)
    model = rnnkit.Sequential([rnnkit.LSTM(16, return_sequences=True, seed=1), rnnkit.Dense(1, seed=2)])
    model.compile(optimizer=Adam(1e-3), loss="mse")
    model.fit(x, y, epochs=1, batch_size=256, verbose=0, seed=0)
    weight_bytes = sum(w.nbytes for w in model.weights)              # 1.6 kB ... Adam: 3 copies
    activations = 256 * 50 * 16 * 4 * 6                               # LSTM cache: ~1.2 MB per batch
    size = len(pickle.dumps(model))
    assert size < 3 * weight_bytes + 20_000 < activations / 10
    # also when the caller left a training call's cache behind: pickles never carry it
    model(x, training=True)
    assert len(pickle.dumps(model)) < 3 * weight_bytes + 20_000


# ---------------------------------------------------------------------------------------------
# No caches after fit / evaluate / predict
# ---------------------------------------------------------------------------------------------


def _mixed_model():
    """Every layer class with a cache: Embedding(mask_zero) -> Bidirectional(GRU) -> Dropout ->
    LSTM -> Dense(softmax) (fused with the cross-entropy, so Dense.logits is used)."""
    model = rnnkit.Sequential([
        rnnkit.Embedding(12, 4, mask_zero=True, seed=1),
        rnnkit.Bidirectional(rnnkit.GRU(3, return_sequences=True, seed=2)),
        rnnkit.Dropout(0.2, seed=3),
        rnnkit.LSTM(4, seed=4),
        rnnkit.Dense(3, activation="softmax", seed=5),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(30)
    x = rng.integers(1, 12, size=(20, 6))
    x[:5, 4:] = 0                                   # padding
    y = rng.integers(0, 3, size=20)
    return model, x, y


def _masking_model():
    model = rnnkit.Sequential([rnnkit.Masking(0.0), rnnkit.SimpleRNN(4, return_sequences=True, seed=1),
                               rnnkit.Flatten(), rnnkit.Dense(2, seed=2)])
    model.compile(optimizer=SGD(0.1, momentum=0.5), loss="mse")
    rng = np.random.default_rng(31)
    x = rng.standard_normal((12, 5, 3)).astype(np.float32)
    x[:4, 3:] = 0.0
    y = rng.standard_normal((12, 2)).astype(np.float32)
    return model, x, y


MODELS_WITH_CACHES = {"mixed": _mixed_model, "masking": _masking_model}


def _assert_model_has_no_cache(model):
    for layer in model.layers:
        assert_no_cache(layer)
        with pytest.raises(ValueError, match=NO_CACHE):
            if isinstance(layer, rnnkit.Dense) and layer.activation.name == "softmax":
                layer.backward(np.zeros((2, layer.units), layer.dtype), from_logits=True)
            else:
                layer.backward(np.zeros((2, 3), layer.dtype))


@pytest.mark.parametrize("which", sorted(MODELS_WITH_CACHES))
def test_no_cache_after_fit(backend, which):
    model, x, y = MODELS_WITH_CACHES[which]()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0, validation_split=0.25)
    _assert_model_has_no_cache(model)


@pytest.mark.parametrize("which", sorted(MODELS_WITH_CACHES))
def test_no_cache_after_evaluate_and_predict(which):
    model, x, y = MODELS_WITH_CACHES[which]()
    model(x[:8], training=True)                        # a manual training call leaves its cache ...
    assert any(v is not None for layer in model.layers for v in cache_values(layer).values())
    model.evaluate(x, y, batch_size=8, verbose=0)      # ... evaluate does not
    _assert_model_has_no_cache(model)
    model(x[:8], training=True)
    model.predict(x, batch_size=8)
    _assert_model_has_no_cache(model)


class _Boom(Callback):
    def __init__(self, hook, at=1):
        super().__init__()
        self.hook, self.at, self.calls = hook, at, 0

    def _maybe_raise(self):
        self.calls += 1
        if self.calls > self.at:
            raise RuntimeError("boom")

    def on_batch_end(self, batch, logs=None):
        if self.hook == "on_batch_end":
            self._maybe_raise()

    def on_epoch_end(self, epoch, logs=None):
        if self.hook == "on_epoch_end":
            self._maybe_raise()

    def on_train_end(self, logs=None):
        if self.hook == "on_train_end":
            self._maybe_raise()


@pytest.mark.parametrize("hook, at", [("on_batch_end", 1), ("on_epoch_end", 0), ("on_train_end", 0)])
def test_no_cache_after_fit_interrupted_by_a_callback(hook, at):
    model, x, y = _mixed_model()
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=0, callbacks=[_Boom(hook, at)])
    _assert_model_has_no_cache(model)
    # the model trains on afterwards
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)


def test_no_cache_after_fit_interrupted_by_a_training_error():
    model, x, y = _masking_model()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    with pytest.raises(ValueError):
        model.fit(x, np.zeros((12, 3), np.float32), epochs=1, batch_size=8, verbose=0)   # wrong y shape
    _assert_model_has_no_cache(model)


def test_no_cache_after_early_stopping():
    model, x, y = _masking_model()
    stop = EarlyStopping(monitor="loss", patience=0, min_delta=1e9, restore_best_weights=True)
    history = model.fit(x, y, epochs=10, batch_size=8, verbose=0, seed=0, callbacks=[stop])
    assert len(history.epoch) == 2 and stop.stopped_epoch == 1
    _assert_model_has_no_cache(model)


# ---------------------------------------------------------------------------------------------
# History, callbacks, optimizers
# ---------------------------------------------------------------------------------------------


def test_history_round_trip_leaves_the_model_behind(copier):
    model, x, y = _masking_model()
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=0, validation_split=0.25)
    assert history.model is model and model.history is history
    clone = copier(history)
    assert isinstance(clone, History) and clone.model is None
    assert clone.epoch == [0, 1, 2] and clone.history == history.history
    assert set(clone.history) == {"loss", "val_loss"}
    assert history.model is model                           # the original keeps its model
    assert len(pickle.dumps(history)) < 2_000               # ... and pickles without it


def test_model_history_points_to_the_unpickled_model(copier):
    model, x, y = _masking_model()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    clone = copier(model)
    assert clone.history.model is clone and clone.history.history == model.history.history
    assert model.history.model is model


def test_early_stopping_round_trip(copier):
    model, x, y = _masking_model()
    stop = EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=0, validation_split=0.25, callbacks=[stop])
    clone = copier(stop)
    assert clone.model is None and stop.model is model
    for name in ("monitor", "min_delta", "patience", "mode", "restore_best_weights", "wait", "best",
                 "best_epoch", "stopped_epoch"):
        assert getattr(clone, name) == getattr(stop, name), name
    assert_same_arrays(clone.best_weights, stop.best_weights)
    # the copy works as a callback of a new fit
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0, validation_split=0.25, callbacks=[clone])
    assert clone.model is model


OPTIMIZERS = {
    "sgd": lambda: SGD(0.1),
    "sgd-momentum": lambda: SGD(0.05, momentum=0.9),
    "sgd-nesterov": lambda: SGD(0.05, momentum=0.9, nesterov=True, clipnorm=1.0),
    "adam": lambda: Adam(1e-2),
    "adam-amsgrad": lambda: Adam(1e-2, amsgrad=True, global_clipnorm=2.0),
    "rmsprop": lambda: RMSprop(1e-2),
    "rmsprop-centered-momentum": lambda: RMSprop(1e-2, momentum=0.5, centered=True, clipvalue=0.3),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_round_trip(copier, name, dtype):
    rng = np.random.default_rng(40)
    variables = [rng.standard_normal(s).astype(dtype) for s in [(3, 4), (4,), (2, 2, 2)]]
    grads = [[rng.standard_normal(v.shape).astype(dtype) for v in variables] for _ in range(6)]
    opt = OPTIMIZERS[name]()
    for g in grads[:3]:
        opt.apply(g, variables)
    clone = copier(opt)
    assert clone.iterations == 3 and clone.get_config() == opt.get_config()
    # the copy holds its own copies of the variables, with the same values and slots
    assert len(clone.variables) == 3
    assert all(c is not v for c, v in zip(clone.variables, variables))
    assert_same_arrays(clone.variables, variables)
    for v, c in zip(opt.variables, clone.variables):
        assert set(clone.slots(c)) == set(opt.slots(v))
        for slot in opt.slots(v):
            assert clone.slots(c)[slot] is not opt.slots(v)[slot]
            np.testing.assert_array_equal(clone.slots(c)[slot], opt.slots(v)[slot])
    # continuing on both (the copy without naming its variables: the order of first use) agrees
    for g in grads[3:]:
        opt.apply(g, variables)
        clone.apply(g)
    assert clone.iterations == opt.iterations == 6
    assert_same_arrays(clone.variables, variables)
    # the original's state was not touched by the copy's steps
    with pytest.raises(ValueError, match="no state"):
        opt.slots(clone.variables[0])


def test_fresh_optimizer_round_trip(copier):
    clone = copier(Adam(3e-3, beta_1=0.8))
    assert clone.variables == [] and clone.iterations == 0 and clone.learning_rate == 3e-3
    v = np.ones(3)
    clone.apply([np.ones(3)], [v])
    assert clone.iterations == 1 and v[0] < 1


def test_shallow_copy_of_an_optimizer_does_not_share_its_variable_list():
    v1, v2 = np.ones(2), np.ones(3)
    opt = Adam()
    opt.apply([np.ones(2)], [v1])
    shallow = copy.copy(opt)
    shallow.apply([np.ones(3)], [v2])
    assert len(opt.variables) == 1 and len(shallow.variables) == 2


def test_base_layer_declares_the_attribute_lists():
    assert Layer._training_cache_attrs == () and Layer._derived_attrs == ()
    assert "_pack" in rnnkit.LSTM._derived_attrs
    assert set(rnnkit.LSTM._training_cache_attrs) == {"_cache", "_output_shape"}
