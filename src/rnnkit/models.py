"""The Sequential model: a stack of layers with Keras's compile / fit / evaluate / predict / save.

Shapes: x (N, ...) the samples (N rows), y (N, ...) the targets; a batch is B rows of them.
Sequence models take x (N, T, I) (or integer ids (N, T) for an Embedding first layer).

One training step (``fit``)::

    y_pred = layer_k(... layer_1(x_batch, training=True, mask=mask) ...)   # forward, mask follows
    loss, d_pred = loss.value_and_gradient(y_batch, y_pred, sample_weight, mask)
    d = d_pred; for layer in reversed(layers): d = layer.backward(d)     # BPTT inside RNN layers
    optimizer.apply(grads of every trainable layer, their live weight arrays)

Masks: ``lengths=`` (N,) or ``mask=`` (N, T) given to fit / evaluate / predict, or a mask produced by
``Masking`` / ``Embedding(mask_zero=True)``, is passed to every layer (``mask=``) and then replaced by
``layer.compute_mask(mask)``. A mask that is still alive after the last layer — every layer kept the
time axis, e.g. ``SimpleRNN(return_sequences=True)`` + ``Dense`` — is also the loss mask, so padded
steps neither add to nor dilute the loss and the metrics.

Softmax + cross-entropy: when the last layer is ``Dense(activation="softmax")`` and the loss is
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

``save(path)`` writes one portable ``.npz`` file (no pickle): the weight arrays plus a JSON string
with the layer classes and configs, the input shape and the compile configuration (not the optimizer
state); ``load_model(path)`` rebuilds the model from it.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
import zipfile

import numpy as np

from . import callbacks as callbacks_module
from . import losses as losses_module
from . import optimizers as optimizers_module
from ._validation import canonical_mask, check_positive_int, lengths_to_mask
from .layers.base import Layer, _unique_name, get_layer_class
from .layers.core import Dense

__all__ = ["Sequential", "load_model"]

#: marker and version of the file format written by ``Sequential.save``
FILE_FORMAT = "rnnkit.Sequential"
FILE_FORMAT_VERSION = 1
_CONFIG_KEY = "rnnkit_config"


# ---------------------------------------------------------------------------------------------
# Metrics: per-entry values (shape y_pred.shape[:-1]) averaged over the used entries of an epoch
# ---------------------------------------------------------------------------------------------


def _labels_like(y_true, y_pred):
    """Keras's rank matching: (B,) labels against (B, 1) predictions and the converse."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        return y_true[..., None]
    return y_true


def _mean_absolute_error(y_true, y_pred):
    return np.mean(np.abs(y_pred - _labels_like(y_true, y_pred)), axis=-1)


def _mean_squared_error(y_true, y_pred):
    d = y_pred - _labels_like(y_true, y_pred)
    return np.mean(d * d, axis=-1)


def _binary_accuracy(y_true, y_pred):
    return np.mean((y_pred > 0.5) == (_labels_like(y_true, y_pred) > 0.5), axis=-1)


def _categorical_accuracy(y_true, y_pred):
    return np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)


def _sparse_categorical_accuracy(y_true, y_pred):
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return np.argmax(y_pred, axis=-1) == y_true


_METRICS = {
    "mae": _mean_absolute_error,
    "mean_absolute_error": _mean_absolute_error,
    "mse": _mean_squared_error,
    "mean_squared_error": _mean_squared_error,
    "binary_accuracy": _binary_accuracy,
    "categorical_accuracy": _categorical_accuracy,
    "sparse_categorical_accuracy": _sparse_categorical_accuracy,
    "accuracy": None,  # resolved from the loss and the shapes on first use, as in Keras
    "acc": None,
}


def _resolve_accuracy(loss, y_true, y_pred):
    if isinstance(loss, losses_module.BinaryCrossentropy) or y_pred.shape[-1] == 1:
        return _binary_accuracy
    if isinstance(loss, losses_module.SparseCategoricalCrossentropy):
        return _sparse_categorical_accuracy
    if isinstance(loss, losses_module.CategoricalCrossentropy):
        return _categorical_accuracy
    return _sparse_categorical_accuracy if y_true.ndim < y_pred.ndim else _categorical_accuracy


class _Mean:
    """Running weighted mean: ``add(value, weight)``, ``result()``."""

    def __init__(self):
        self.total = 0.0
        self.count = 0.0

    def add(self, value, weight):
        self.total += float(value) * weight
        self.count += weight

    def result(self):
        return self.total / self.count if self.count else 0.0


# ---------------------------------------------------------------------------------------------
# Progress display
# ---------------------------------------------------------------------------------------------


def _format_value(v):
    return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.4e}"


def _format_duration(seconds):
    if seconds >= 1:
        return f"{seconds:.0f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms"
    return f"{seconds * 1e6:.0f}us"


class _Progbar:
    """Keras-like progress line: ``12/30 [=====>....] - 1s 35ms/step - loss: 0.1234``.

    verbose=1: one line rewritten with ``\\r`` (at most every ``interval`` seconds, always at the
    end), then a newline. verbose=2: only the final line. verbose=0: nothing.
    """

    def __init__(self, total, verbose, width=30, interval=0.1, stream=None):
        self.total = total
        self.verbose = verbose
        self.width = width
        self.interval = interval
        self.stream = stream or sys.stdout
        self.start = time.perf_counter()
        self._last_print = 0.0
        self._last_len = 0

    def update(self, step, values, final=False):
        if self.verbose == 0 or (self.verbose == 2 and not final):
            return
        now = time.perf_counter()
        if not final and now - self._last_print < self.interval:
            return
        self._last_print = now
        elapsed = now - self.start
        digits = len(str(self.total))
        if self.verbose == 1:
            done = int(self.width * step / self.total) if self.total else self.width
            bar = "=" * done
            if done < self.width:
                bar = (bar + ">" if step else bar).ljust(self.width, ".")
            head = f"{step:>{digits}}/{self.total} [{bar}]"
        else:
            head = f"{step}/{self.total}"
        per_step = elapsed / max(step, 1)
        if final:
            timing = f"{_format_duration(elapsed)} {_format_duration(per_step)}/step"
        else:
            eta = per_step * (self.total - step)
            timing = f"ETA: {_format_duration(eta)}"
        line = f"{head} - {timing}" + "".join(f" - {k}: {_format_value(v)}" for k, v in values.items())
        if self.verbose == 1:
            pad = max(0, self._last_len - len(line))
            self.stream.write("\r" + line + " " * pad + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self._last_len = len(line)
        self.stream.flush()


# ---------------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------------


def _check_verbose(verbose):
    if verbose == "auto":
        return 1
    if isinstance(verbose, (bool, np.bool_)) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0 (silent), 1 (progress bar), 2 (one line per epoch) or "
                         f"'auto', got {verbose!r}")
    return int(verbose)


def _as_data(value, name):
    if value is None:
        raise ValueError(f"{name} must be an array, got None")
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{name} must have a sample axis (shape (N, ...)), got a scalar")
    return arr


def _data_mask(x, lengths, mask, n):
    """The (N, T) bool mask from ``lengths`` (N,) or ``mask`` (N, T), or None."""
    if lengths is None and mask is None:
        return None
    if lengths is not None and mask is not None:
        raise ValueError("pass either mask or lengths, not both (lengths is shorthand for a mask)")
    if x.ndim < 2:
        raise ValueError(f"lengths/mask need sequence inputs x of shape (N, T, ...), got x of shape "
                         f"{x.shape}")
    if lengths is not None:
        return lengths_to_mask(lengths, n, x.shape[1])
    return canonical_mask(mask, n, x.shape[1])


def _take(arr, index):
    return None if arr is None else arr[index]


class _Data:
    """x, y, sample_weight and mask of one data set, sliced together into batches."""

    def __init__(self, x, y=None, sample_weight=None, mask=None):
        self.x, self.y, self.sample_weight, self.mask = x, y, sample_weight, mask

    def __len__(self):
        return len(self.x)

    def take(self, index):
        return _Data(self.x[index], _take(self.y, index), _take(self.sample_weight, index),
                     _take(self.mask, index))

    def batches(self, batch_size, order=None):
        """Yield batches in ``order`` (an index permutation) or sequentially (views, no copies)."""
        n = len(self)
        for start in range(0, n, batch_size):
            if order is None:
                yield self.take(slice(start, start + batch_size))
            else:
                yield self.take(order[start:start + batch_size])


def _prepare_data(x, y, sample_weight, lengths, mask, need_y=True):
    x = _as_data(x, "x")
    n = len(x)
    if n == 0:
        raise ValueError("x must hold at least one sample, got 0")
    if need_y:
        y = _as_data(y, "y")
        if len(y) != n:
            raise ValueError(f"x and y must have the same number of samples, got {n} and {len(y)}")
    if sample_weight is not None:
        sample_weight = _as_data(sample_weight, "sample_weight")
        if len(sample_weight) != n:
            raise ValueError(f"sample_weight must have one entry per sample ({n}), "
                             f"got {len(sample_weight)}")
    return _Data(x, y, sample_weight, _data_mask(x, lengths, mask, n))


# ---------------------------------------------------------------------------------------------
# Sequential
# ---------------------------------------------------------------------------------------------


class Sequential:
    """A linear stack of layers (Keras's ``keras.Sequential``).

    Args:
        layers: optional list of layers, added in order (see :meth:`add`).
        name: model name (default "sequential", made unique).

    The model builds on its first data (or an explicit ``build((None, T, I))``), must be compiled
    before ``fit``/``evaluate`` and can be saved to one ``.npz`` file.
    """

    _distributed = None  # MPI hook: the rnnkit.distributed strategy during fit/evaluate/predict(distributed=...)

    def __init__(self, layers=None, name=None):
        self.name = name or _unique_name("sequential")
        self._layers: list[Layer] = []
        self.built = False
        self._build_input_shape = None   # (None, *sample shape) given to build
        self._output_shapes = []         # per layer, after build
        self.optimizer = None
        self.loss = None
        self.metrics_names_requested: list[str] = []
        self._metric_fns: list = []
        self._fused_softmax = False
        self._logits_loss = None
        self.stop_training = False
        self.history = None
        for layer in layers or ():
            self.add(layer)

    # -- structure -------------------------------------------------------------------------------
    @property
    def layers(self) -> list:
        return list(self._layers)

    def add(self, layer) -> None:
        """Append a layer. Each layer must have one output (no ``return_state``, no
        ``Bidirectional(merge_mode=None)``) and a name not used by another layer of this model."""
        if not isinstance(layer, Layer):
            raise TypeError(f"layer must be an rnnkit Layer instance, got {type(layer).__name__}")
        if getattr(layer, "return_state", False) or getattr(layer, "merge_mode", "concat") is None:
            raise ValueError(f"layer {layer.name!r} returns several arrays (return_state or "
                             f"merge_mode=None); a Sequential model needs one output per layer")
        if any(other.name == layer.name for other in self._layers):
            raise ValueError(f"layer names must be unique in a model: {layer.name!r} is already used")
        self._layers.append(layer)
        if self.built:
            # extend the known shapes; the new layer builds from the previous output
            shape = self._output_shapes[-1] if self._output_shapes else self._build_input_shape
            layer.build(shape)
            self._output_shapes.append(tuple(layer.compute_output_shape(shape)))

    def build(self, input_shape) -> None:
        """Create every layer's weights for inputs of ``input_shape`` = (batch, ...) — batch (and
        time) may be None, e.g. ``(None, 20, 1)`` — and record each layer's output shape."""
        if not self._layers:
            raise ValueError("cannot build an empty Sequential model: add() layers first")
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 2:
            raise ValueError(f"input_shape must be a tuple (batch, ...) such as (None, time, features), "
                             f"got {input_shape!r}")
        shape = tuple(None if d is None else int(d) for d in input_shape)
        shapes = []
        for layer in self._layers:
            layer.build(shape)
            shape = tuple(layer.compute_output_shape(shape))
            shapes.append(shape)
        self._build_input_shape = (None, *tuple(input_shape)[1:])
        self._output_shapes = shapes
        self.built = True

    def _ensure_built(self, x):
        if not self.built:
            self.build((None, *x.shape[1:]))

    # -- weights ---------------------------------------------------------------------------------
    @property
    def weights(self) -> list:
        """The live weight arrays of every layer, in layer order."""
        return [w for layer in self._layers for w in layer.weights]

    def get_weights(self) -> list:
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self._layers)
        if len(weights) != expected:
            raise ValueError(f"weights: model {self.name!r} expects {expected} arrays, got {len(weights)}")
        i = 0
        for layer in self._layers:
            k = len(layer.weights)
            layer.set_weights(weights[i:i + k])
            i += k

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self._layers)

    # -- caches, pickling ----------------------------------------------------------------------------
    def clear_training_cache(self) -> None:
        """``clear_training_cache()`` on every layer (fit / evaluate / predict do it when they end)."""
        for layer in self._layers:
            layer.clear_training_cache()

    def __setstate__(self, state):
        self.__dict__.update(state)
        # a History pickles without its model (callbacks.py): point the model's own one back to it
        history = self.__dict__.get("history")
        if history is not None and getattr(history, "model", None) is None:
            history.model = self

    # -- forward / backward --------------------------------------------------------------------------
    def _forward(self, x, mask, training):
        """Run every layer; returns (output, mask after the last layer)."""
        for layer in self._layers:
            x = layer(x, training=training, mask=mask)
            mask = layer.compute_mask(mask)
        return x, mask

    @staticmethod
    def _loss_mask(mask, y_pred):
        # The mask reaches the loss only while it still describes the output's (B, T) axes.
        if mask is None or y_pred.ndim < 3 or mask.shape != y_pred.shape[:2]:
            return None
        return mask

    def __call__(self, x, training=False, mask=None, lengths=None):
        """Forward pass on one batch: x (B, ...) -> output."""
        x = _as_data(x, "x")
        self._ensure_built(x)
        return self._forward(x, _data_mask(x, lengths, mask, len(x)), training)[0]

    # -- compile ------------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None) -> None:
        """Configure training.

        optimizer: name ("adam", "rmsprop", "sgd") or an ``rnnkit.optimizers`` instance.
        loss: name ("mse", "sparse_categorical_crossentropy", ...) or an ``rnnkit.losses.Loss``.
        metrics: list of names: "accuracy"/"acc" (binary, categorical or sparse, chosen from the loss
        and the shapes as in Keras), "binary_accuracy", "categorical_accuracy",
        "sparse_categorical_accuracy", "mae"/"mean_absolute_error", "mse"/"mean_squared_error".
        """
        if loss is None:
            raise ValueError("loss must be given, e.g. compile(optimizer='adam', loss='mse')")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, str):
            metrics = [metrics]
        names = []
        for m in metrics:
            if not isinstance(m, str) or m.lower() not in _METRICS:
                raise ValueError(f"metrics: unknown metric {m!r}; known: {sorted(_METRICS)}")
            names.append(m.lower())
        if len(set(names)) != len(names):
            raise ValueError(f"metrics must not repeat a name, got {names}")
        self.metrics_names_requested = names
        self._metric_fns = [None] * len(names)   # resolved on the first batch
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
        """True when the last layer is Dense(softmax) and the loss a probability cross-entropy."""
        last = self._layers[-1]
        return (self._logits_loss is not None and isinstance(last, Dense)
                and last.activation.name == "softmax")

    def _metric_functions(self, y_true, y_pred):
        for i, name in enumerate(self.metrics_names_requested):
            if self._metric_fns[i] is None:
                fn = _METRICS[name]
                self._metric_fns[i] = fn or _resolve_accuracy(self.loss, y_true, y_pred)
        return self._metric_fns

    def _update_metrics(self, trackers, y_true, y_pred, loss_mask):
        """Add this batch's metric values (over its used entries) to ``trackers``."""
        for tracker, fn in zip(trackers, self._metric_functions(y_true, y_pred)):
            values = np.asarray(fn(y_true, y_pred), dtype=np.float64)
            if loss_mask is not None:
                values = values[loss_mask]
            if values.size:
                tracker.add(values.mean(), values.size)

    @staticmethod
    def _entries(y_pred, loss_mask):
        """How many loss entries a batch has: the weight of its loss in the epoch mean."""
        if loss_mask is not None:
            return int(np.count_nonzero(loss_mask))
        return int(np.prod(y_pred.shape[:-1], dtype=np.int64)) if y_pred.ndim > 1 else len(y_pred)

    # -- one batch -----------------------------------------------------------------------------------
    def _train_step(self, batch):
        y_pred, mask = self._forward(batch.x, batch.mask, training=True)
        loss_mask = self._loss_mask(mask, y_pred)
        layers = self._layers
        if self._uses_fused_softmax():
            # softmax + cross-entropy: d loss / d logits = (p - onehot) / N, straight into the GEMM
            value, d = self.loss.value_and_gradient_wrt_logits(batch.y, layers[-1].logits,
                                                                batch.sample_weight, loss_mask)
            d = layers[-1].backward(d, from_logits=True)
            remaining = layers[-2::-1]
        else:
            value, d = self.loss.value_and_gradient(batch.y, y_pred, batch.sample_weight, loss_mask)
            remaining = layers[::-1]
        for i, layer in enumerate(remaining):
            if d is None:
                raise ValueError(f"layer {remaining[i - 1].name!r} has no input gradient (an Embedding "
                                 f"must be the first layer), so layer {layer.name!r} cannot be trained")
            d = layer.backward(d)
        grads, variables = [], []
        for layer in layers:
            if layer.trainable and layer.weights:
                grads.extend(layer.grads)
                variables.extend(layer.weights)
        if variables:
            if self._distributed is not None:  # MPI hook: global-batch gradients and loss (one Allreduce)
                grads, value = self._distributed.reduce_gradients(self, grads, value, y_pred, loss_mask)
            self.optimizer.apply(grads, variables)
        return value, y_pred, loss_mask

    def _test_step(self, batch):
        y_pred, mask = self._forward(batch.x, batch.mask, training=False)
        loss_mask = self._loss_mask(mask, y_pred)
        if self._uses_fused_softmax():
            value = self._logits_loss(batch.y, self._layers[-1].logits, batch.sample_weight, loss_mask)
        else:
            value = self.loss(batch.y, y_pred, batch.sample_weight, loss_mask)
        return value, y_pred, loss_mask

    def _run_test(self, data, batch_size, progbar=None):
        """Loss and metrics over ``data`` (exact means over all used entries)."""
        loss_tracker = _Mean()
        trackers = [_Mean() for _ in self.metrics_names_requested]
        steps = math.ceil(len(data) / batch_size)
        for step, batch in enumerate(data.batches(batch_size), 1):
            value, y_pred, loss_mask = self._test_step(batch)
            loss_tracker.add(value, self._entries(y_pred, loss_mask))
            self._update_metrics(trackers, batch.y, y_pred, loss_mask)
            if progbar is not None:
                progbar.update(step, self._logs(loss_tracker, trackers), final=step == steps)
        return self._logs(loss_tracker, trackers)

    def _logs(self, loss_tracker, trackers, prefix=""):
        if self._distributed is not None:  # MPI hook: means over every rank's entries
            loss_tracker, trackers = self._distributed.reduce_trackers(loss_tracker, trackers)
        logs = {prefix + "loss": loss_tracker.result()}
        for name, tracker in zip(self.metrics_names_requested, trackers):
            logs[prefix + name] = tracker.result()
        return logs

    # -- fit / evaluate / predict ----------------------------------------------------------------------
    def fit(self, x, y, epochs=1, batch_size=32, validation_data=None, validation_split=0.0,
            shuffle=True, verbose=1, callbacks=None, lengths=None, mask=None, sample_weight=None,
            seed=None, distributed=None):
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
            distributed: None, or "mpi" for data-parallel training over MPI ranks (batch_size is the
                global batch; see rnnkit.distributed).

        Returns:
            a :class:`rnnkit.callbacks.History`: ``history.history["loss"]`` etc., one value per
            epoch (the epoch mean over all its loss entries), plus ``val_*`` with validation.
        """
        self._check_compiled("fit")
        if isinstance(epochs, (bool, np.bool_)) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
        batch_size = check_positive_int(batch_size, "batch_size")
        verbose = _check_verbose(verbose)
        if isinstance(validation_split, (bool, np.bool_)) or not isinstance(
                validation_split, (int, float, np.integer, np.floating)):
            raise TypeError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
        if not 0.0 <= float(validation_split) < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        data = _prepare_data(x, y, sample_weight, lengths, mask)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (x_val, y_val) or "
                                 "(x_val, y_val, sample_weight_val)")
            val_sw = validation_data[2] if len(validation_data) == 3 else None
            val = _prepare_data(validation_data[0], validation_data[1], val_sw, None, None)
        elif validation_split > 0:
            n = len(data)
            split_at = int(n * (1.0 - validation_split))
            if split_at == 0 or split_at == n:
                raise ValueError(f"validation_split={validation_split} of {n} samples leaves "
                                 f"{split_at} for training and {n - split_at} for validation; "
                                 f"both must be >= 1")
            val = data.take(slice(split_at, n))
            data = data.take(slice(0, split_at))
        callback_list = list(callbacks or [])
        for i, cb in enumerate(callback_list):
            if not isinstance(cb, callbacks_module.Callback):
                raise TypeError(f"callbacks[{i}] must be an rnnkit.callbacks.Callback, "
                                f"got {type(cb).__name__}")
        history = callbacks_module.History()
        callback_list = [history, *callback_list]

        self._ensure_built(data.x)
        self.stop_training = False
        dist = _distribute(self, distributed, "fit")  # MPI hook
        try:
            if dist is not None:  # MPI hook: broadcast optimizer state, shard the data, common seed
                data, val, callback_list, seed = dist.prepare_fit(self, data, val, callback_list, seed,
                                                                  batch_size, epochs, shuffle)
            self._fit_loop(data, val, callback_list, epochs, batch_size, shuffle, verbose, seed)
        finally:
            if dist is not None:  # MPI hook
                dist.end(self)
            self.clear_training_cache()
        self.history = history
        return history

    def _fit_loop(self, data, val, callback_list, epochs, batch_size, shuffle, verbose, seed):
        """The epochs of ``fit``, from ``on_train_begin`` to ``on_train_end``."""
        rng = np.random.default_rng(seed)
        n = len(data)
        steps = math.ceil(n / batch_size)
        for cb in callback_list:
            cb.set_model(self)
            cb.on_train_begin({})
        for epoch in range(epochs):
            for cb in callback_list:
                cb.on_epoch_begin(epoch, {})
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            progbar = _Progbar(steps, verbose)
            loss_tracker = _Mean()
            trackers = [_Mean() for _ in self.metrics_names_requested]
            order = rng.permutation(n) if shuffle else None
            for step, batch in enumerate(data.batches(batch_size, order)):
                for cb in callback_list:
                    cb.on_batch_begin(step, {})
                value, y_pred, loss_mask = self._train_step(batch)
                loss_tracker.add(value, self._entries(y_pred, loss_mask))
                self._update_metrics(trackers, batch.y, y_pred, loss_mask)
                logs = self._logs(loss_tracker, trackers)
                for cb in callback_list:
                    cb.on_batch_end(step, {"size": len(batch), "batch_loss": value, **logs})
                if step + 1 < steps:
                    progbar.update(step + 1, logs)
            logs = self._logs(loss_tracker, trackers)
            if val is not None:
                logs.update({f"val_{k}": v for k, v in self._run_test(val, batch_size).items()})
            progbar.update(steps, logs, final=True)
            for cb in callback_list:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for cb in callback_list:
            cb.on_train_end({})

    def evaluate(self, x, y, batch_size=32, verbose=1, sample_weight=None, lengths=None, mask=None,
                 distributed=None):
        """Loss (and metrics) on (x, y), computed in batches with ``training=False``.

        Returns the loss (a float) without metrics, else ``[loss, *metrics]`` in compile order.
        The values are exact means over all used (unmasked) entries. ``distributed="mpi"``: the
        batches are sharded over the MPI ranks, every rank returns the values (rnnkit.distributed).
        """
        self._check_compiled("evaluate")
        batch_size = check_positive_int(batch_size, "batch_size")
        verbose = _check_verbose(verbose)
        data = _prepare_data(x, y, sample_weight, lengths, mask)
        self._ensure_built(data.x)
        dist = _distribute(self, distributed, "evaluate")  # MPI hook
        try:
            if dist is not None:  # MPI hook
                data = dist.shard(data, "evaluate", batch_size)
            progbar = _Progbar(math.ceil(len(data) / batch_size), verbose) if verbose else None
            logs = self._run_test(data, batch_size, progbar)
        finally:
            if dist is not None:  # MPI hook
                dist.end(self)
            self.clear_training_cache()
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=32, verbose=0, lengths=None, mask=None, distributed=None):
        """Outputs for x (N, ...), computed in batches with ``training=False`` and concatenated.
        ``distributed="mpi"``: each MPI rank computes its rows of every batch and every rank returns
        all N outputs in order (rnnkit.distributed)."""
        batch_size = check_positive_int(batch_size, "batch_size")
        verbose = _check_verbose(verbose)
        data = _prepare_data(x, None, None, lengths, mask, need_y=False)
        self._ensure_built(data.x)
        steps = math.ceil(len(data) / batch_size)
        dist = _distribute(self, distributed, "predict")  # MPI hook
        outputs = []
        try:
            if dist is not None:  # MPI hook
                data = dist.shard(data, "predict", batch_size)
            progbar = _Progbar(steps, verbose)
            for step, batch in enumerate(data.batches(batch_size), 1):
                outputs.append(self._forward(batch.x, batch.mask, training=False)[0])
                progbar.update(step, {}, final=step == steps)
            result = np.concatenate(outputs, axis=0)
            if dist is not None:  # MPI hook: every rank's rows, in order, on every rank
                result = dist.gather(result, data, batch_size)
        finally:
            if dist is not None:  # MPI hook
                dist.end(self)
            self.clear_training_cache()   # Dense.logits and produced masks of the last batch
        return result

    def stream(self, batch_size=1):
        """A :class:`rnnkit.streaming.Stream`: ``stream.step(x_t)`` pushes one time step through every
        layer (recurrent layers carry their states between calls) and returns the model's output for
        it; ``reset()`` zeroes the states. Only for causal models (ValueError naming the layer)."""
        from .streaming import Stream
        return Stream(self, batch_size)

    # -- summary ---------------------------------------------------------------------------------------
    def summary(self, print_fn=None) -> None:
        """Print a Keras-style table: Layer (type), Output Shape, Param #, and the totals.

        Parameter counts equal Keras's (SimpleRNN(4) on 2 features: 28). ``print_fn`` receives each
        line (default ``print``).
        """
        if not self.built:
            raise ValueError(f"model {self.name!r} has not been built yet: call build((None, ...)) "
                             f"or fit/predict it on data first")
        print_fn = print_fn or print
        rows = []
        for layer, shape in zip(self._layers, self._output_shapes):
            rows.append((f"{layer.name} ({type(layer).__name__})", _shape_str(shape),
                         f"{layer.count_params():,}"))
        w0 = max([29] + [len(r[0]) + 2 for r in rows])
        w1 = max([26] + [len(r[1]) + 2 for r in rows])
        w2 = max([10] + [len(r[2]) + 1 for r in rows])
        width = 1 + w0 + w1 + w2
        print_fn(f'Model: "{self.name}"')
        print_fn("_" * width)
        print_fn(" " + "Layer (type)".ljust(w0) + "Output Shape".ljust(w1) + "Param #".rjust(w2))
        print_fn("=" * width)
        for i, (name, shape, params) in enumerate(rows):
            print_fn(" " + name.ljust(w0) + shape.ljust(w1) + params.rjust(w2))
            if i < len(rows) - 1:
                print_fn(" " * width)
        print_fn("=" * width)
        trainable = [w for layer in self._layers if layer.trainable for w in layer.weights]
        frozen = [w for layer in self._layers if not layer.trainable for w in layer.weights]
        total = trainable + frozen
        print_fn(f"Total params: {_count(total):,} ({_memory(total)})")
        print_fn(f"Trainable params: {_count(trainable):,} ({_memory(trainable)})")
        print_fn(f"Non-trainable params: {_count(frozen):,} ({_memory(frozen)})")
        print_fn("_" * width)

    # -- save ------------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {
            "name": self.name,
            "input_shape": None if self._build_input_shape is None else list(self._build_input_shape),
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                       for layer in self._layers],
        }

    def save(self, path) -> None:
        """Write the model to ``path`` (one ``.npz`` file, written atomically, no pickle).
        During a distributed fit / evaluate / predict only rank 0 writes (rnnkit.distributed)."""
        if self._distributed is not None and not self._distributed.is_chief:  # MPI hook
            return
        config = {
            "format": FILE_FORMAT,
            "format_version": FILE_FORMAT_VERSION,
            "model": self.get_config(),
            "weights": [[list(w.shape) for w in layer.weights] for layer in self._layers],
            "compile": None if not self.compiled else {
                "optimizer": optimizers_module.serialize(self.optimizer),
                "loss": losses_module.serialize(self.loss),
                "metrics": list(self.metrics_names_requested),
            },
        }
        arrays = {_CONFIG_KEY: np.array(json.dumps(config))}
        for i, layer in enumerate(self._layers):
            for j, w in enumerate(layer.weights):
                arrays[_weight_key(i, j)] = w
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".rnnkit-", suffix=".npz", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    def __repr__(self):
        return f"<Sequential name={self.name!r} layers={len(self._layers)} built={self.built}>"


def _distribute(model, distributed, call):
    """MPI hook: None for ``distributed=None``; else the rnnkit.distributed strategy (which imports
    mpi4py), begun on ``model`` (end it with ``strategy.end(model)``)."""
    if distributed is None:
        return None
    from .distributed import get_strategy
    strategy = get_strategy(distributed)
    strategy.begin(model, call)
    return strategy


def _weight_key(i, j):
    return f"layer{i:03d}_weight{j:02d}"


def _shape_str(shape):
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_str(s) for s in shape) + "]"
    dims = ["None" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _count(weights):
    return int(sum(w.size for w in weights))


def _memory(weights):
    size = float(sum(w.nbytes for w in weights))
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"  # pragma: no cover


def load_model(path) -> Sequential:
    """Rebuild a model written by :meth:`Sequential.save`: layers, weights and compile settings.

    Raises FileNotFoundError for a missing file and ValueError naming the problem for a file that is
    not a readable rnnkit model (corrupt, another kind of file, or weights that do not fit the
    layer configuration).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path!r}")
    try:
        # the file is opened here, not by np.load, so it is closed even when np.load fails
        with open(path, "rb") as f:
            archive = np.load(f, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single array, not an .npz archive")
            with archive:
                files = set(archive.files)
                if _CONFIG_KEY not in files:
                    raise _NotRnnkit()
                config = json.loads(str(archive[_CONFIG_KEY][()]))
                arrays = {k: archive[k] for k in files if k != _CONFIG_KEY}
    except _NotRnnkit:
        raise ValueError(f"{path!r} is not an rnnkit model file (no {_CONFIG_KEY!r} entry)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path!r} is not a readable rnnkit model file: {exc}") from exc
    except TypeError as exc:  # np.load on a non-archive may raise this for odd headers
        raise ValueError(f"{path!r} is not a readable rnnkit model file: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FILE_FORMAT:
        raise ValueError(f"{path!r} is not an rnnkit model file (format marker missing)")
    if config.get("format_version") != FILE_FORMAT_VERSION:
        raise ValueError(f"{path!r} has file format version {config.get('format_version')!r}; this "
                         f"rnnkit reads version {FILE_FORMAT_VERSION}")
    try:
        return _model_from_file_config(config, arrays)
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"{path!r}: invalid model configuration ({type(exc).__name__}: {exc})") from exc
    except ValueError as exc:
        raise ValueError(f"{path!r}: {exc}") from exc


class _NotRnnkit(Exception):
    pass


def _model_from_file_config(config, arrays):
    model_config = config["model"]
    layers = []
    for i, spec in enumerate(model_config["layers"]):
        cls = get_layer_class(spec["class_name"])
        try:
            layers.append(cls.from_config(dict(spec["config"])))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"layer {i} ({spec['class_name']}) has an invalid config: {exc}") from None
    model = Sequential(layers, name=model_config.get("name"))
    shapes = config["weights"]
    if len(shapes) != len(layers):
        raise ValueError(f"the file lists weights for {len(shapes)} layers but configures {len(layers)}")
    input_shape = model_config.get("input_shape")
    if input_shape is not None:
        model.build(tuple(input_shape))
    for i, (layer, layer_shapes) in enumerate(zip(layers, shapes)):
        weights = []
        for j in range(len(layer_shapes)):
            key = _weight_key(i, j)
            if key not in arrays:
                raise ValueError(f"weight array {key!r} of layer {layer.name!r} is missing")
            weights.append(arrays[key])
        if not layer.built and not weights:
            continue
        if not layer.built:
            raise ValueError(f"layer {layer.name!r} has weights but the file has no input shape")
        layer.set_weights(weights)  # checks count and shapes (ValueError naming the layer)
    compile_config = config.get("compile")
    if compile_config is not None:
        model.compile(optimizer=optimizers_module.deserialize(compile_config["optimizer"]),
                      loss=losses_module.deserialize(compile_config["loss"]),
                      metrics=compile_config["metrics"])
    return model
