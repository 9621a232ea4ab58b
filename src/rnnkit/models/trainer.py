"""``Trainer``: the training loop every rnnkit model shares — compile / fit / evaluate / predict, one
batch's forward, loss, backward and update, the callbacks and the progress display (Keras 3 keeps the
same split: ``keras.Model`` is a ``Trainer``). ``Model`` (model.py) says what a model *is* (layers,
weights, how a call runs); its module docstring describes one training step, masks, the fused
softmax + cross-entropy and what fit / evaluate / predict leave behind."""

from __future__ import annotations

import contextlib
import math

import numpy as np

from .. import callbacks as callbacks_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from .._data import check_epochs, check_verbose, split_validation
from .._validation import check_positive_int
from ..layers.core import Dense
from ._compile import resolve as resolve_compile

__all__ = ["Trainer"]


class Trainer:
    """The training half of :class:`rnnkit.Model` (a mixin: it calls the model's ``layers``,
    ``_forward``, ``_backward``, ``_prepare`` and ``_output_layer``)."""

    _distributed = None  # MPI hook: the rnnkit.distributed strategy during fit/evaluate/predict(distributed=...)

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

    @contextlib.contextmanager
    def _inference_pass(self, call, data, batch_size, verbose, distributed):
        """``evaluate`` / ``predict``: yields (the data, sharded over the MPI ranks when distributed;
        the progress callbacks; the distributed strategy or None), then ends the distributed call and
        clears every layer's training cache (Dense.logits, produced masks) however the body ends."""
        dist = _distribute(self, distributed, call)  # MPI hook
        try:
            if dist is not None:  # MPI hook
                data = dist.shard(data, call, batch_size)
            yield data, self._inference_callbacks(verbose, math.ceil(len(data) / batch_size)), dist
        finally:
            if dist is not None:  # MPI hook
                dist.end(self)
            self.clear_training_cache()

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
        with self._inference_pass("evaluate", data, batch_size, verbose, distributed) as (data, callback_list, _):
            for cb in callback_list:
                cb.on_test_begin({})
            logs = self._run_test(data, batch_size, callback_list)
            for cb in callback_list:
                cb.on_test_end(logs)
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
        outputs = []
        with self._inference_pass("predict", data, batch_size, verbose, distributed) as (data, callback_list, dist):
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
        return result


def _distribute(model, distributed, call):
    """MPI hook: None for ``distributed=None``; else the rnnkit.distributed strategy (which imports
    mpi4py), begun on ``model`` (end it with ``strategy.end(model)``)."""
    if distributed is None:
        return None
    from ..distributed import get_strategy
    strategy = get_strategy(distributed)
    strategy.begin(model, call)
    return strategy
