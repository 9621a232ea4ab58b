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
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from .. import saving
from .._data import check_epochs, check_verbose, prepare_data, prepare_inputs, split_validation
from .._validation import check_positive_int
from ..layers.base import _unique_name
from ..layers.core import Dense
from ._compile import resolve as resolve_compile
from ._summary import print_summary

__all__ = ["Model"]


class Model:
    """Base class of rnnkit's models: the training loop (Keras's ``keras.Model`` trainer part).

    ``Model(inputs, outputs, name=None)`` makes a functional model (models/functional.py), as in
    Keras; ``Sequential`` is the other kind.
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model:
            if not args and "inputs" not in kwargs:
                raise TypeError("rnnkit.Model(inputs, outputs): pass the Input tensor(s) and the "
                                "output tensor(s) of a layer graph (subclassing Model is not supported)")
            from .functional import Functional
            return super().__new__(Functional)
        return super().__new__(cls)

    _distributed = None  # MPI hook: the rnnkit.distributed strategy during fit/evaluate/predict(distributed=...)

    def __init__(self, name=None):
        self.name = name or _unique_name(self._default_name)
        self.built = False
        self.optimizer = None
        self.loss = None                  # what compile was given, resolved (per output: _losses)
        self.metrics_names_requested: list[str] = []
        self._losses: list = []           # one Loss per output
        self._loss_weights: list = []     # one float per output
        self._logits_losses: list = []    # per output: the from_logits twin of a softmax loss, or None
        self._metric_names: list = []     # per output: the metric names
        self._metric_fns: list = []       # per output: the resolved metric functions
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
        """Run every layer on one batch; returns (output, mask after the output layer) — lists of
        one per output for a model with several outputs."""
        raise NotImplementedError

    def _backward(self, d_output, from_logits=False):  # pragma: no cover - overridden
        """Backpropagate ``d_output`` (wrt the output, or the output layer's logits when
        ``from_logits``; lists of one per output for several outputs) through the last training
        forward: fills every layer's ``grads``."""
        raise NotImplementedError

    def _output_layer(self, i=0):  # pragma: no cover - overridden
        """The layer producing output ``i``, when its ``logits`` belong to that output (else None)."""
        raise NotImplementedError

    @property
    def output_names(self) -> list:
        return ["output"]

    def _standardize_x(self, x):
        """x as ``_forward`` takes it (several inputs: a list in input order)."""
        return x

    def _standardize_y(self, y):
        """y as the losses take it (several outputs: a list in output order)."""
        return y

    def _prepare(self, x, y, sample_weight=None, lengths=None, mask=None, need_y=True):
        return prepare_data(self._standardize_x(x), self._standardize_y(y) if need_y else None,
                            sample_weight, lengths, mask, need_y=need_y)

    def get_layer(self, name=None, index=None):
        """The layer called ``name`` (or at position ``index`` of ``layers``)."""
        layers = self.layers
        if index is not None:
            if name is not None:
                raise ValueError("pass name or index, not both")
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"index {index} is out of range: model {self.name!r} has "
                                 f"{len(layers)} layers")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r} in model {self.name!r}; layers: "
                         f"{[layer.name for layer in layers]}")

    @property
    def _multi_output(self) -> bool:
        return len(self.output_names) > 1

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
        x, mask = prepare_inputs(self._standardize_x(x), lengths, mask)
        self._ensure_built(x)
        return self._forward(x, mask, training)[0]

    # -- compile ------------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None) -> None:
        """Configure training.

        optimizer: name ("adam", "rmsprop", "sgd") or an ``rnnkit.optimizers`` instance (whose
        learning rate may be a schedule, ``rnnkit.optimizers.schedules``).
        loss: name ("mse", "sparse_categorical_crossentropy", ...) or an ``rnnkit.losses.Loss``;
        for a model with several outputs also a list (one per output) or a dict by output name
        (a single loss applies to every output). The loss minimised is ``sum(loss_weights[i] ·
        loss_i)``.
        metrics: list of names (rnnkit/metrics.py): "accuracy"/"acc" (binary, categorical or
        sparse, chosen from the loss and the shapes as in Keras), "binary_accuracy",
        "categorical_accuracy", "sparse_categorical_accuracy", "mae"/"mean_absolute_error",
        "mse"/"mean_squared_error". With several outputs each is computed per output and logged
        as ``<output name>_<metric>`` (next to ``<output name>_loss``); a list of lists or a dict
        by output name gives each output its own metrics.
        loss_weights: per-output weights (list or dict by output name), default 1 each.
        """
        (loss, self._losses, self._loss_weights, self.metrics_names_requested, self._metric_names,
         self._logits_losses) = resolve_compile(self.output_names, loss, metrics, loss_weights)
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = loss
        self._metric_fns = [[None] * len(m) for m in self._metric_names]   # resolved on first use

    @property
    def _logits_loss(self):
        """The from_logits twin of the (first) output's softmax cross-entropy, or None."""
        return self._logits_losses[0] if self._logits_losses else None

    @_logits_loss.setter
    def _logits_loss(self, value):
        if self._logits_losses:
            self._logits_losses[0] = value

    @property
    def compiled(self) -> bool:
        return self.loss is not None

    @property
    def metrics_names(self) -> list:
        """The keys of the logs: "loss", then the metrics (with several outputs, per output)."""
        if not self.compiled:
            return ["loss"]
        return list(self._pass_metrics().logs())

    def _check_compiled(self, method):
        if not self.compiled:
            raise RuntimeError(f"{method}: the model must be compiled first: "
                               f"model.compile(optimizer=..., loss=...)")

    def _uses_fused_softmax(self, i=0):
        """True when output i comes from a Dense(softmax) and its loss is a probability
        cross-entropy: the loss is then taken from the Dense layer's logits."""
        last = self._output_layer(i)
        return (self._logits_losses[i] is not None and isinstance(last, Dense)
                and last.activation.name == "softmax")

    def _pass_metrics(self):
        return metrics_module.PassMetrics(self.output_names if self._multi_output else None,
                                          self._metric_names, self._metric_fns, self._losses)

    @staticmethod
    def _loss_mask(mask, y_pred):
        # The mask reaches the loss only while it still describes the output's (B, T) axes.
        if mask is None or y_pred.ndim < 3 or mask.shape != y_pred.shape[:2]:
            return None
        return mask

    def _as_lists(self, y_pred, mask, y):
        if self._multi_output:
            return y_pred, mask, y
        return [y_pred], [mask], [y]

    # -- one batch -----------------------------------------------------------------------------------
    def _losses_of_batch(self, batch, training):
        """Forward, then per output the loss value (and, when training, its gradient):
        returns (y_pred, total loss, per-output values, loss masks, gradients, from_logits)."""
        y_pred, mask = self._forward(batch.x, batch.mask, training=training)
        preds, masks, ys = self._as_lists(y_pred, mask, batch.y)
        values, loss_masks, grads, from_logits = [], [], [], []
        for i, (loss, weight) in enumerate(zip(self._losses, self._loss_weights)):
            loss_mask = self._loss_mask(masks[i], preds[i])
            fused = self._uses_fused_softmax(i)
            # softmax + cross-entropy: d loss / d logits = (p - onehot) / N, straight into the GEMM
            target = self._output_layer(i).logits if fused else preds[i]
            if training:
                fn = loss.value_and_gradient_wrt_logits if fused else loss.value_and_gradient
                value, d = fn(ys[i], target, batch.sample_weight, loss_mask)
                grads.append(d if weight == 1.0 else d * d.dtype.type(weight))
            else:
                fn = self._logits_losses[i] if fused else loss
                value = fn(ys[i], target, batch.sample_weight, loss_mask)
            values.append(value)
            loss_masks.append(loss_mask)
            from_logits.append(fused)
        total = sum(w * v for w, v in zip(self._loss_weights, values))
        return preds, total, values, loss_masks, grads, from_logits

    def _train_step(self, batch):
        """One optimizer step: forward, loss and its gradient, backward, gradient application.
        Returns (loss, per-output predictions, per-output loss values, per-output loss masks)."""
        preds, total, values, loss_masks, grads, from_logits = self._losses_of_batch(batch, True)
        if self._multi_output:
            self._backward(grads, from_logits)
        else:
            self._backward(grads[0], from_logits=from_logits[0])
        grads, variables = self._gradients()
        if self._distributed is not None and variables:  # MPI hook: the global batch's gradients and loss
            grads, total = self._distributed.reduce_gradients(self, grads, total, preds[0], loss_masks[0])
        self._apply_gradients(grads, variables)
        return total, preds, values, loss_masks

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
        preds, total, values, loss_masks, _, _ = self._losses_of_batch(batch, False)
        return total, preds, values, loss_masks

    def _run_test(self, data, batch_size, callback_list=()):
        """Loss and metrics over ``data`` (exact means over all used entries)."""
        metrics = self._pass_metrics()
        for step, batch in enumerate(data.batches(batch_size)):
            for cb in callback_list:
                cb.on_test_batch_begin(step, {})
            metrics.update(batch, *self._test_step(batch))
            batch_logs = self._logs(metrics)
            for cb in callback_list:
                cb.on_test_batch_end(step, batch_logs)
        return self._logs(metrics)

    def _logs(self, metrics):
        """The logs of a pass's metrics (distributed: means over every rank's entries)."""
        if self._distributed is not None:  # MPI hook (a collective: every rank calls it alike)
            metrics = self._distributed.reduce_metrics(metrics)
        return metrics.logs()

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
                global batch; one-output models; see rnnkit.distributed).

        Returns:
            a :class:`rnnkit.callbacks.History`: ``history.history["loss"]`` etc., one value per
            epoch (the epoch mean over all its loss entries), plus ``val_*`` with validation.
        """
        self._check_compiled("fit")
        epochs = check_epochs(epochs)
        batch_size = check_positive_int(batch_size, "batch_size")
        verbose = check_verbose(verbose)
        data = self._prepare(x, y, sample_weight, lengths, mask)
        data, val = split_validation(data, validation_data, validation_split, self._prepare)
        # Keras's order: the progress display, the caller's callbacks, the History last (so it
        # records what callbacks add to the epoch logs, e.g. learning_rate)
        history = callbacks_module.History()
        callback_list = [*self._check_callbacks(callbacks), history]
        if verbose and not any(isinstance(cb, callbacks_module.ProgbarLogger) for cb in callback_list):
            callback_list.insert(0, callbacks_module.ProgbarLogger())
        params = {"epochs": epochs, "steps": math.ceil(len(data) / batch_size), "verbose": verbose}
        for cb in callback_list:
            cb.set_model(self)
            cb.set_params(params)

        self._ensure_built(data.x)
        self.stop_training = False
        dist = _distribute(self, distributed, "fit")  # MPI hook
        try:
            if dist is not None:  # MPI hook: broadcast optimizer state, shard the data, common seed
                data, val, callback_list, seed = dist.prepare_fit(self, data, val, callback_list, seed,
                                                                  batch_size, epochs, shuffle)
            self._fit_loop(data, val, callback_list, epochs, batch_size, shuffle, seed)
        finally:
            if dist is not None:  # MPI hook
                dist.end(self)
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
                step_result = self._train_step(batch)
                metrics.update(batch, *step_result)
                batch_logs = {"size": len(batch), "batch_loss": step_result[0], **self._logs(metrics)}
                for cb in callback_list:
                    cb.on_train_batch_end(step, batch_logs)
                if self.stop_training:   # set by a batch hook (e.g. TerminateOnNaN): end the epoch
                    break
            logs = self._logs(metrics)
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

    def evaluate(self, x, y, batch_size=32, verbose=1, sample_weight=None, lengths=None, mask=None,
                 distributed=None):
        """Loss (and metrics) on (x, y), computed in batches with ``training=False``.

        Returns the loss (a float) without metrics, else ``[loss, *metrics]`` in compile order.
        The values are exact means over all used (unmasked) entries. ``distributed="mpi"``: the
        batches are sharded over the MPI ranks, every rank returns the values (rnnkit.distributed).
        """
        self._check_compiled("evaluate")
        batch_size = check_positive_int(batch_size, "batch_size")
        verbose = check_verbose(verbose)
        data = self._prepare(x, y, sample_weight, lengths, mask)
        self._ensure_built(data.x)
        dist = _distribute(self, distributed, "evaluate")  # MPI hook
        try:
            if dist is not None:  # MPI hook
                data = dist.shard(data, "evaluate", batch_size)
            callback_list = self._inference_callbacks(verbose, math.ceil(len(data) / batch_size))
            for cb in callback_list:
                cb.on_test_begin({})
            logs = self._run_test(data, batch_size, callback_list)
            for cb in callback_list:
                cb.on_test_end(logs)
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
        verbose = check_verbose(verbose)
        data = self._prepare(x, None, None, lengths, mask, need_y=False)
        self._ensure_built(data.x)
        dist = _distribute(self, distributed, "predict")  # MPI hook
        outputs = []
        try:
            if dist is not None:  # MPI hook
                data = dist.shard(data, "predict", batch_size)
            callback_list = self._inference_callbacks(verbose, math.ceil(len(data) / batch_size))
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
            if self._multi_output:
                result = [np.concatenate(parts, axis=0) for parts in zip(*outputs)]
            else:
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
        """Write the model to ``path`` (one ``.npz`` file, written atomically, no pickle).

        A ``.keras`` / ``.h5`` name is refused (ValueError): the file would not be a Keras file.
        During a distributed fit / evaluate / predict only rank 0 writes (rnnkit.distributed)."""
        if self._distributed is not None and not self._distributed.is_chief:  # MPI hook
            return
        saving.save_model(self, path)

    def save_weights(self, path) -> None:
        """Write every weight array, in ``get_weights()`` order, to one ``.npz`` file."""
        saving.save_weights(self, path)

    def load_weights(self, path) -> None:
        """Read weights written by :meth:`save_weights` (count and shapes checked)."""
        saving.load_weights(self, path)


def _distribute(model, distributed, call):
    """MPI hook: None for ``distributed=None``; else the rnnkit.distributed strategy (which imports
    mpi4py), begun on ``model`` (end it with ``strategy.end(model)``)."""
    if distributed is None:
        return None
    from ..distributed import get_strategy
    strategy = get_strategy(distributed)
    strategy.begin(model, call)
    return strategy
