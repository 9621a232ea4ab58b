"""Metrics of ``compile(metrics=[...])``: per-entry values averaged over the used entries of a pass.

A metric function takes ``(y_true, y_pred)`` and returns one value per loss entry, i.e. an array of
shape ``y_pred.shape[:-1]``; the model drops the masked entries (sequence outputs with a mask) and
keeps a running mean weighted by the number of entries, so an epoch's value is the exact mean over
all its used entries (not a mean of batch means).

Names: "accuracy"/"acc" (binary, categorical or sparse categorical, chosen from the loss and the
shapes on first use, as in Keras), "binary_accuracy", "categorical_accuracy",
"sparse_categorical_accuracy", "mae"/"mean_absolute_error", "mse"/"mean_squared_error".
"""

from __future__ import annotations

import numpy as np

from . import losses as losses_module

__all__ = ["mean_absolute_error", "mean_squared_error", "binary_accuracy", "categorical_accuracy",
           "sparse_categorical_accuracy", "check_names", "Mean", "PassMetrics"]


def _labels_like(y_true, y_pred):
    """Keras's rank matching: (B,) labels against (B, 1) predictions and the converse."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        return y_true[..., None]
    return y_true


def mean_absolute_error(y_true, y_pred):
    return np.mean(np.abs(y_pred - _labels_like(y_true, y_pred)), axis=-1)


def mean_squared_error(y_true, y_pred):
    d = y_pred - _labels_like(y_true, y_pred)
    return np.mean(d * d, axis=-1)


def binary_accuracy(y_true, y_pred):
    return np.mean((y_pred > 0.5) == (_labels_like(y_true, y_pred) > 0.5), axis=-1)


def categorical_accuracy(y_true, y_pred):
    return np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)


def sparse_categorical_accuracy(y_true, y_pred):
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return np.argmax(y_pred, axis=-1) == y_true


_METRICS = {
    "mae": mean_absolute_error,
    "mean_absolute_error": mean_absolute_error,
    "mse": mean_squared_error,
    "mean_squared_error": mean_squared_error,
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "accuracy": None,  # resolved from the loss and the shapes on first use, as in Keras
    "acc": None,
}


def check_names(metrics) -> list:
    """``compile``'s ``metrics`` (None, a name or a list of names) -> list of lower-case names."""
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
    return names


def resolve(name, loss, y_true, y_pred):
    """The function of metric ``name``; "accuracy" picks its kind from the loss and the shapes."""
    fn = _METRICS[name]
    if fn is not None:
        return fn
    if isinstance(loss, losses_module.BinaryCrossentropy) or y_pred.shape[-1] == 1:
        return binary_accuracy
    if isinstance(loss, losses_module.SparseCategoricalCrossentropy):
        return sparse_categorical_accuracy
    if isinstance(loss, losses_module.CategoricalCrossentropy):
        return categorical_accuracy
    return sparse_categorical_accuracy if y_true.ndim < y_pred.ndim else categorical_accuracy


def entries(y_pred, loss_mask):
    """How many loss entries a batch has: the weight of its loss in the epoch mean."""
    if loss_mask is not None:
        return int(np.count_nonzero(loss_mask))
    return int(np.prod(y_pred.shape[:-1], dtype=np.int64)) if y_pred.ndim > 1 else len(y_pred)


class Mean:
    """Running weighted mean: ``add(value, weight)``, ``result()``."""

    def __init__(self):
        self.total = 0.0
        self.count = 0.0

    def add(self, value, weight):
        self.total += float(value) * weight
        self.count += weight

    def result(self):
        return self.total / self.count if self.count else 0.0


class PassMetrics:
    """The loss and metric means of one pass over data (an epoch of ``fit``, an ``evaluate``).

    ``output_names``: None for a model with one output, else the names of its outputs.
    ``names``: the per-output lists of metric names; ``functions``: the model's per-output lists of resolved metric
    functions (None until the first batch resolves them; filled in place so the model keeps the
    choice); ``losses``: the per-output losses (for resolving "accuracy").
    ``update(batch, total, y_preds, values, loss_masks)`` adds one batch (per-output lists);
    ``logs()`` gives ``{"loss": ..., name: ...}``, with several outputs also
    ``"<output>_loss"`` and ``"<output>_<metric>"`` per output. With one output the loss mean is
    weighted by loss entries (exact over masked sequences); with several, ``loss`` (the weighted
    sum) is weighted by samples and each ``<output>_loss`` by its own entries.
    """

    def __init__(self, output_names, names, functions, losses):
        self.output_names = output_names
        self.names = names
        self.functions = functions
        self.losses = losses
        self.loss_mean = Mean()
        n_outputs = 1 if output_names is None else len(output_names)
        self.output_loss_means = [Mean() for _ in range(n_outputs)]
        self.means = [[Mean() for _ in names[o]] for o in range(n_outputs)]

    def update(self, batch, total, y_preds, values, loss_masks):
        multi = self.output_names is not None
        y_trues = batch.y if multi else [batch.y]
        for o, (y_true, y_pred, loss_mask) in enumerate(zip(y_trues, y_preds, loss_masks)):
            count = entries(y_pred, loss_mask)
            self.output_loss_means[o].add(values[o], count)
            if not multi:
                self.loss_mean.add(total, count)
            functions = self.functions[o]
            for i, name in enumerate(self.names[o]):
                if functions[i] is None:
                    functions[i] = resolve(name, self.losses[o], y_true, y_pred)
                metric = np.asarray(functions[i](y_true, y_pred), dtype=np.float64)
                if loss_mask is not None:
                    metric = metric[loss_mask]
                if metric.size:
                    self.means[o][i].add(metric.mean(), metric.size)
        if multi:
            self.loss_mean.add(total, len(batch))

    def logs(self) -> dict:
        logs = {"loss": self.loss_mean.result()}
        if self.output_names is None:
            for name, mean in zip(self.names[0], self.means[0]):
                logs[name] = mean.result()
            return logs
        for o, output in enumerate(self.output_names):
            logs[f"{output}_loss"] = self.output_loss_means[o].result()
        for o, output in enumerate(self.output_names):
            for name, mean in zip(self.names[o], self.means[o]):
                logs[f"{output}_{name}"] = mean.result()
        return logs
