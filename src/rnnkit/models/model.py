"""``Model``: the training loop every rnnkit model shares (compile / fit / evaluate / predict).

Shapes: x (N, ...) the samples (N rows), y (N, ...) the targets; a batch is B rows of them.
Sequence models take x (N, T, I) (or integer ids (N, T) for an Embedding first layer).

One training step (:meth:`Model._train_step`)::

    y_pred, mask = model._forward(x_batch, mask, training=True)   # every layer, the mask follows
    loss, d_pred = loss.value_and_gradient(y_batch, y_pred, sample_weight, loss_mask)
    model._backward(d_pred)                                       # BPTT inside RNN layers
    optimizer.apply(grads of every trainable layer, their live weight arrays)

A subclass says how its layers connect: ``_forward``, ``_backward``, ``_ensure_built``,
``_output_layer`` (the layer producing the output, for the fused softmax), ``layers`` and the
summary rows; the loop, the loss, the metrics, callbacks and the progress display live here.

Masks: ``lengths=`` (N,) or ``mask=`` (N, T) given to fit / evaluate / predict, or a mask produced by
``Masking`` / ``Embedding(mask_zero=True)``, is passed to every layer (``mask=``) and then replaced by
``layer.compute_mask(mask)``. A mask that is still alive after the last layer — every layer kept the
time axis, e.g. ``SimpleRNN(return_sequences=True)`` + ``Dense`` — is also the loss mask, so padded
steps neither add to nor dilute the loss and the metrics.

Softmax + cross-entropy: when the output layer is ``Dense(activation="softmax")`` and the loss is
(sparse) categorical cross-entropy with ``from_logits=False``, the model evaluates the loss from the
Dense layer's logits and passes ``d loss / d logits = (softmax(z) − onehot) / N`` straight to
``Dense.backward(..., from_logits=True)`` (``losses.Loss.value_and_gradient_wrt_logits``). This is
exact, cheaper than going through the softmax Jacobian, and stays finite when a probability rounds to
0 (the probability form clips at 1e-7). Keras's TensorFlow backend does the same.

``fit``, ``evaluate`` and ``predict`` end (also by an exception or early stopping) with
``layer.clear_training_cache()`` on every layer: a trained model holds its weights and optimizer
slots, not the activations of its last batch. Models pickle and ``copy.deepcopy`` (compiled and
trained too): the optimizer's slots stay attached to the copied weights, so training continues
exactly as it would have without the round trip; ``model.history`` comes along and points to the
copy.

``save(path)`` writes one portable ``.npz`` file (rnnkit/saving.py); ``load_model(path)`` rebuilds
the model from it.
"""

from __future__ import annotations

import math

import numpy as np

from .. import callbacks as callbacks_module
from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from .. import saving
from .._data import (as_data, check_epochs, check_verbose, data_mask, prepare_data,
                     split_validation)
from .._validation import check_positive_int
from ..layers.base import _unique_name
from ..layers.core import Dense
from ._summary import print_summary

__all__ = ["Model"]


class Model:
    """Base class of rnnkit's models: the training loop (Keras's ``keras.Model`` trainer part)."""

    def __init__(self, name=None):
        self.name = name or _unique_name(self._default_name)
        self.built = False
        self.optimizer = None
        self.loss = None
        self.metrics_names_requested: list[str] = []
        self._metric_fns: list = []
        self._logits_loss = None
        self.stop_training = False
        self.history = None

    _default_name = "model"

    # -- what a subclass provides ------------------------------------------------------------------
    @property
    def layers(self) -> list:  # pragma: no cover - overridden
        raise NotImplementedError

    def _ensure_built(self, x):  # pragma: no cover - overridden
        raise NotImplementedError

    def _forward(self, x, mask, training):  # pragma: no cover - overridden
        """Run every layer on one batch; returns (output, mask after the output layer)."""
        raise NotImplementedError

    def _backward(self, d_output, from_logits=False):  # pragma: no cover - overridden
        """Backpropagate ``d_output`` (wrt the output, or the output layer's logits when
        ``from_logits``) through the last training forward: fills every layer's ``grads``."""
        raise NotImplementedError

    def _output_layer(self):  # pragma: no cover - overridden
        raise NotImplementedError

    # -- weights ---------------------------------------------------------------------------------
    @property
    def weights(self) -> list:
        """The live weight arrays of every layer, in layer order."""
        return [w for layer in self.layers for w in layer.weights]

    def get_weights(self) -> list:
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        weights = list(weights)
        layers = self.layers
        expected = sum(len(layer.weights) for layer in layers)
        if len(weights) != expected:
            raise ValueError(f"weights: model {self.name!r} expects {expected} arrays, got {len(weights)}")
        i = 0
        for layer in layers:
            k = len(layer.weights)
            layer.set_weights(weights[i:i + k])
            i += k

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    # -- caches, pickling ----------------------------------------------------------------------------
    def clear_training_cache(self) -> None:
        """``clear_training_cache()`` on every layer (fit / evaluate / predict do it when they end)."""
        for layer in self.layers:
            layer.clear_training_cache()

    def __setstate__(self, state):
        self.__dict__.update(state)
        # a History pickles without its model (callbacks.py): point the model's own one back to it
        history = self.__dict__.get("history")
        if history is not None and getattr(history, "model", None) is None:
            history.model = self

    def __call__(self, x, training=False, mask=None, lengths=None):
        """Forward pass on one batch: x (B, ...) -> output."""
        x = as_data(x, "x")
        self._ensure_built(x)
        return self._forward(x, data_mask(x, lengths, mask, len(x)), training)[0]

    # -- compile ------------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None) -> None:
        """Configure training.

        optimizer: name ("adam", "rmsprop", "sgd") or an ``rnnkit.optimizers`` instance.
        loss: name ("mse", "sparse_categorical_crossentropy", ...) or an ``rnnkit.losses.Loss``.
        metrics: list of names (rnnkit/metrics.py): "accuracy"/"acc" (binary, categorical or
        sparse, chosen from the loss and the shapes as in Keras), "binary_accuracy",
        "categorical_accuracy", "sparse_categorical_accuracy", "mae"/"mean_absolute_error",
        "mse"/"mean_squared_error".
        """
        if loss is None:
            raise ValueError("loss must be given, e.g. compile(optimizer='adam', loss='mse')")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        self.metrics_names_requested = metrics_module.check_names(metrics)
        self._metric_fns = [None] * len(self.metrics_names_requested)   # resolved on the first batch
        self._logits_loss = None
        if getattr(self.loss, "logits_activation", None) == "softmax" and not self.loss.from_logits:
            config = dict(self.loss.get_config(), from_logits=True)
            self._logits_loss = type(self.loss).from_config(config)

    @property
    def compiled(self) -> bool:
        return self.loss is not None

    @property
    def metrics_names(self) -> list:
        return ["loss", *self.metrics_names_requested]

    def _check_compiled(self, method):
        if not self.compiled:
            raise RuntimeError(f"{method}: the model must be compiled first: "
                               f"model.compile(optimizer=..., loss=...)")

    def _uses_fused_softmax(self):
        """True when the output layer is Dense(softmax) and the loss a probability cross-entropy."""
        last = self._output_layer()
        return (self._logits_loss is not None and isinstance(last, Dense)
                and last.activation.name == "softmax")

    def _pass_metrics(self):
        return metrics_module.PassMetrics(self.metrics_names_requested, self._metric_fns, self.loss)

    @staticmethod
    def _loss_mask(mask, y_pred):
        # The mask reaches the loss only while it still describes the output's (B, T) axes.
        if mask is None or y_pred.ndim < 3 or mask.shape != y_pred.shape[:2]:
            return None
        return mask

    # -- one batch -----------------------------------------------------------------------------------
    def _train_step(self, batch):
        """One optimizer step: forward, loss and its gradient, backward, gradient application."""
        y_pred, mask = self._forward(batch.x, batch.mask, training=True)
        loss_mask = self._loss_mask(mask, y_pred)
        if self._uses_fused_softmax():
            # softmax + cross-entropy: d loss / d logits = (p - onehot) / N, straight into the GEMM
            value, d = self.loss.value_and_gradient_wrt_logits(batch.y, self._output_layer().logits,
                                                                batch.sample_weight, loss_mask)
            self._backward(d, from_logits=True)
        else:
            value, d = self.loss.value_and_gradient(batch.y, y_pred, batch.sample_weight, loss_mask)
            self._backward(d)
        grads, variables = self._gradients()
        self._apply_gradients(grads, variables)
        return value, y_pred, loss_mask

    def _gradients(self):
        """(grads, variables): the gradients of the last backward and the live weight arrays of
        every trainable layer, in layer order."""
        grads, variables = [], []
        for layer in self.layers:
            if layer.trainable and layer.weights:
                grads.extend(layer.grads)
                variables.extend(layer.weights)
        return grads, variables

    def _apply_gradients(self, grads, variables):
        """The one place where a batch's gradients become a weight update."""
        if variables:
            self.optimizer.apply(grads, variables)

    def _test_step(self, batch):
        y_pred, mask = self._forward(batch.x, batch.mask, training=False)
        loss_mask = self._loss_mask(mask, y_pred)
        if self._uses_fused_softmax():
            value = self._logits_loss(batch.y, self._output_layer().logits, batch.sample_weight,
                                      loss_mask)
        else:
            value = self.loss(batch.y, y_pred, batch.sample_weight, loss_mask)
        return value, y_pred, loss_mask

    def _run_test(self, data, batch_size, callback_list=()):
        """Loss and metrics over ``data`` (exact means over all used entries)."""
        metrics = self._pass_metrics()
        for step, batch in enumerate(data.batches(batch_size)):
            for cb in callback_list:
                cb.on_test_batch_begin(step, {})
            value, y_pred, loss_mask = self._test_step(batch)
            metrics.update(value, batch.y, y_pred, loss_mask)
            for cb in callback_list:
                cb.on_test_batch_end(step, metrics.logs())
        return metrics.logs()

    # -- fit / evaluate / predict ----------------------------------------------------------------------
    def fit(self, x, y, epochs=1, batch_size=32, validation_data=None, validation_split=0.0,
            shuffle=True, verbose=1, callbacks=None, lengths=None, mask=None, sample_weight=None,
            seed=None):
        """Train for ``epochs`` passes over (x, y) in mini-batches of ``batch_size``.

        Args:
            x: (N, ...) inputs; y: (N, ...) targets.
            epochs: number of passes (>= 0).
            batch_size: B, rows per optimizer step (the last batch of an epoch may be smaller).
            validation_data: (x_val, y_val) or (x_val, y_val, sample_weight_val), evaluated after
                each epoch (takes precedence over validation_split, as in Keras). It carries no
                lengths/mask: padded validation data needs a Masking or Embedding(mask_zero) layer,
                or validation_split.
            validation_split: fraction in [0, 1) of the samples held out for validation: the *last*
                ones, before shuffling (Keras); their lengths/mask/sample_weight go with them.
            shuffle: reshuffle the training samples before each epoch.
            verbose: 0 silent, 1 a progress bar per epoch, 2 one line per epoch.
            callbacks: list of ``rnnkit.callbacks.Callback``.
            lengths: (N,) valid steps per sequence, or mask: (N, T) bool (see the module docstring).
            sample_weight: (N,) per-sample loss weights (or (N, T) for sequence outputs).
            seed: seed of the shuffling generator, for reproducible training.

        Returns:
            a :class:`rnnkit.callbacks.History`: ``history.history["loss"]`` etc., one value per
            epoch (the epoch mean over all its loss entries), plus ``val_*`` with validation.
        """
        self._check_compiled("fit")
        epochs = check_epochs(epochs)
        batch_size = check_positive_int(batch_size, "batch_size")
        verbose = check_verbose(verbose)
        data = prepare_data(x, y, sample_weight, lengths, mask)
        data, val = split_validation(data, validation_data, validation_split)
        history = callbacks_module.History()
        callback_list = [history, *self._check_callbacks(callbacks)]
        if verbose and not any(isinstance(cb, callbacks_module.ProgbarLogger) for cb in callback_list):
            callback_list.insert(0, callbacks_module.ProgbarLogger())   # first, as in Keras
        params = {"epochs": epochs, "steps": math.ceil(len(data) / batch_size), "verbose": verbose}
        for cb in callback_list:
            cb.set_model(self)
            cb.set_params(params)

        self._ensure_built(data.x)
        self.stop_training = False
        try:
            self._fit_loop(data, val, callback_list, epochs, batch_size, shuffle, seed)
        finally:
            self.clear_training_cache()
        self.history = history
        return history

    @staticmethod
    def _check_callbacks(callbacks):
        callback_list = list(callbacks or [])
        for i, cb in enumerate(callback_list):
            if not isinstance(cb, callbacks_module.Callback):
                raise TypeError(f"callbacks[{i}] must be an rnnkit.callbacks.Callback, "
                                f"got {type(cb).__name__}")
        return callback_list

    def _fit_loop(self, data, val, callback_list, epochs, batch_size, shuffle, seed):
        """The epochs of ``fit``, from ``on_train_begin`` to ``on_train_end``."""
        rng = np.random.default_rng(seed)
        for cb in callback_list:
            cb.on_train_begin({})
        for epoch in range(epochs):
            for cb in callback_list:
                cb.on_epoch_begin(epoch, {})
            metrics = self._pass_metrics()
            order = rng.permutation(len(data)) if shuffle else None
            for step, batch in enumerate(data.batches(batch_size, order)):
                for cb in callback_list:
                    cb.on_train_batch_begin(step, {})
                value, y_pred, loss_mask = self._train_step(batch)
                metrics.update(value, batch.y, y_pred, loss_mask)
                batch_logs = {"size": len(batch), "batch_loss": value, **metrics.logs()}
                for cb in callback_list:
                    cb.on_train_batch_end(step, batch_logs)
            logs = metrics.logs()
            if val is not None:
                logs.update({f"val_{k}": v for k, v in self._run_test(val, batch_size).items()})
            for cb in callback_list:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for cb in callback_list:
            cb.on_train_end({})

    def _inference_callbacks(self, verbose, steps):
        if not verbose:
            return []
        progbar = callbacks_module.ProgbarLogger()
        progbar.set_model(self)
        progbar.set_params({"steps": steps, "verbose": verbose})
        return [progbar]

    def evaluate(self, x, y, batch_size=32, verbose=1, sample_weight=None, lengths=None, mask=None):
        """Loss (and metrics) on (x, y), computed in batches with ``training=False``.

        Returns the loss (a float) without metrics, else ``[loss, *metrics]`` in compile order.
        The values are exact means over all used (unmasked) entries.
        """
        self._check_compiled("evaluate")
        batch_size = check_positive_int(batch_size, "batch_size")
        verbose = check_verbose(verbose)
        data = prepare_data(x, y, sample_weight, lengths, mask)
        self._ensure_built(data.x)
        callback_list = self._inference_callbacks(verbose, math.ceil(len(data) / batch_size))
        try:
            for cb in callback_list:
                cb.on_test_begin({})
            logs = self._run_test(data, batch_size, callback_list)
            for cb in callback_list:
                cb.on_test_end(logs)
        finally:
            self.clear_training_cache()
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=32, verbose=0, lengths=None, mask=None):
        """Outputs for x (N, ...), computed in batches with ``training=False`` and concatenated."""
        batch_size = check_positive_int(batch_size, "batch_size")
        verbose = check_verbose(verbose)
        data = prepare_data(x, None, None, lengths, mask, need_y=False)
        self._ensure_built(data.x)
        callback_list = self._inference_callbacks(verbose, math.ceil(len(data) / batch_size))
        outputs = []
        try:
            for cb in callback_list:
                cb.on_predict_begin({})
            for step, batch in enumerate(data.batches(batch_size)):
                for cb in callback_list:
                    cb.on_predict_batch_begin(step, {})
                outputs.append(self._forward(batch.x, batch.mask, training=False)[0])
                for cb in callback_list:
                    cb.on_predict_batch_end(step, {})
            for cb in callback_list:
                cb.on_predict_end({})
        finally:
            self.clear_training_cache()   # Dense.logits and produced masks of the last batch
        return np.concatenate(outputs, axis=0)

    def stream(self, batch_size=1):
        """A :class:`rnnkit.streaming.Stream`: ``stream.step(x_t)`` pushes one time step through every
        layer (recurrent layers carry their states between calls) and returns the model's output for
        it; ``reset()`` zeroes the states. Only for causal models (ValueError naming the layer)."""
        from ..streaming import Stream
        return Stream(self, batch_size)

    # -- summary, save -----------------------------------------------------------------------------------
    def summary(self, print_fn=None) -> None:
        """Print a Keras-style table: Layer (type), Output Shape, Param #, and the totals.

        Parameter counts equal Keras's (SimpleRNN(4) on 2 features: 28). ``print_fn`` receives each
        line (default ``print``).
        """
        if not self.built:
            raise ValueError(f"model {self.name!r} has not been built yet: call build((None, ...)) "
                             f"or fit/predict it on data first")
        rows, extra_column = self._summary_rows()
        print_summary(self.name, self.layers, rows, print_fn or print, extra_column)

    def save(self, path) -> None:
        """Write the model to ``path`` (one ``.npz`` file, written atomically, no pickle)."""
        saving.save_model(self, path)
