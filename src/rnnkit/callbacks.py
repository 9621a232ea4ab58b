"""Training callbacks: hooks that ``Sequential.fit`` calls around epochs and batches.

``fit`` calls, in order: ``on_train_begin``, then per epoch ``on_epoch_begin``, per batch
``on_batch_begin``/``on_batch_end``, ``on_epoch_end`` (whose ``logs`` hold the epoch's mean loss,
metrics and ``val_*`` values), and finally ``on_train_end``. A callback may stop training by setting
``self.model.stop_training = True``; training then ends after the current epoch.

Callbacks pickle and ``copy.deepcopy`` without their model: ``model`` is None in the copy (``fit``
sets it again when the callback is used). So a pickled ``History`` holds its ``history`` dict and
``epoch`` list but not the model it was recorded for — except the one a model keeps in
``model.history``: pickling the model pickles that History along, and it points to the unpickled
model again.
"""

from __future__ import annotations

import numpy as np


class Callback:
    """Base class: every hook does nothing. ``self.model`` is set by ``fit`` before training."""

    def __init__(self):
        self.model = None

    def set_model(self, model) -> None:
        self.model = model

    def __getstate__(self):
        """Everything but ``model`` (a callback pickled alone does not drag its model along)."""
        state = dict(self.__dict__)
        state["model"] = None
        return state

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass


class History(Callback):
    """Records the per-epoch logs: ``history.history["loss"][e]`` is the mean loss of epoch ``e``.

    ``Sequential.fit`` always attaches one and returns it.
    """

    def __init__(self):
        super().__init__()
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class EarlyStopping(Callback):
    """Stop training when a monitored quantity has stopped improving (Keras semantics).

    monitor: key of the epoch logs, e.g. ``"val_loss"``, ``"loss"``, ``"val_accuracy"``.
    min_delta: smallest change that counts as an improvement.
    patience: epochs without improvement after which training stops.
    mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like names, min otherwise).
    restore_best_weights: at the end of training, put back the weights of the best epoch.

    Unlike Keras, which only warns, a monitored key missing from the epoch logs (e.g. "val_loss"
    without validation data) is a ValueError: the callback could never stop training.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto",
                 restore_best_weights=False, verbose=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.restore_best_weights = bool(restore_best_weights)
        self.verbose = verbose
        if mode == "auto":
            name = monitor.lower()
            mode = "max" if name.endswith(("acc", "accuracy", "auc")) else "min"
        self.mode = mode
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf if self.mode == "min" else -np.inf
        self.best_epoch = 0
        self.best_weights = None

    def _is_improvement(self, current, reference):
        if self.mode == "min":
            return current + self.min_delta < reference
        return current - self.min_delta > reference

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r}, but the epoch logs only have "
                f"{sorted(logs)}; pass validation_data/validation_split to fit or choose another "
                f"monitor")
        current = float(logs[self.monitor])
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)
