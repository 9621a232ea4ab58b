"""Callbacks that watch one quantity of the epoch logs: EarlyStopping, ModelCheckpoint,
ReduceLROnPlateau (Keras 3's arguments and decisions).

Shared rules (Keras's ``MonitorCallback``): ``mode="min"`` / ``"max"`` say which way is better;
``"auto"`` takes it from the name without its ``val_`` prefix — ``loss`` (and rnnkit's per-output
``<output>_loss``), ``mae``, ``mse`` and their long names are minimised, the accuracy metrics
maximised, and another name is a ValueError when the first epoch ends, as in Keras. A value is an
improvement when it beats the reference by more than ``min_delta``:
``current - min_delta > best`` (max) or ``current + min_delta < best`` (min); the first value is
always one (``best`` starts as None, or at ``baseline`` / ``initial_value_threshold``).

Unlike Keras, which only warns, a monitored key missing from the epoch logs (e.g. "val_loss"
without validation data) is a ValueError: the callback could never act.
"""

from __future__ import annotations

import os

import numpy as np

from .base import Callback

__all__ = ["EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau"]

_MINIMISED = ("loss", "mae", "mean_absolute_error", "mse", "mean_squared_error")
_MAXIMISED = ("accuracy", "acc", "binary_accuracy", "categorical_accuracy",
              "sparse_categorical_accuracy")


def _direction(monitor):
    """"min", "max" or None (unknown) for a log key, from its name."""
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name in _MINIMISED or name.endswith("_loss"):
        return "min"
    if name in _MAXIMISED or name.endswith(tuple("_" + m for m in _MAXIMISED)):
        return "max"
    if name.endswith(tuple("_" + m for m in _MINIMISED)):
        return "min"
    return None


class _MonitorCallback(Callback):
    def __init__(self, monitor, mode, min_delta, best=None):
        super().__init__()
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a log key such as 'val_loss', got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.mode = (_direction(monitor) or "auto") if mode == "auto" else mode
        self.best = best

    def _check_mode(self):
        if self.mode == "auto":
            raise ValueError(f"{type(self).__name__} received monitor={self.monitor!r}, but rnnkit "
                             f"isn't able to determine whether it should be maximized or minimized; "
                             f"pass mode='max' or mode='min'")

    def _is_improvement(self, current, reference):
        if reference is None:
            return True
        if self.mode == "min":
            return current + self.min_delta < reference
        return current - self.min_delta > reference

    def _current(self, logs):
        self._check_mode()
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(
                f"{type(self).__name__} monitors {self.monitor!r}, but the epoch logs only have "
                f"{sorted(logs)}; pass validation_data/validation_split to fit or choose another "
                f"monitor")
        return float(logs[self.monitor])


class EarlyStopping(_MonitorCallback):
    """Stop training when a monitored quantity has stopped improving (Keras 3's EarlyStopping).

    monitor: key of the epoch logs, e.g. ``"val_loss"``, ``"loss"``, ``"val_accuracy"``.
    min_delta: smallest change that counts as an improvement.
    patience: epochs without improvement after which training stops (never after the first epoch).
    mode: ``"min"``, ``"max"`` or ``"auto"`` (see the module docstring).
    baseline: the value to beat: ``wait`` restarts only on values better than both the best so far
        and the baseline, so training stops after ``patience`` epochs that do not reach it.
    restore_best_weights: when training ends (stopped or not), put back the weights of the best
        epoch (those of the first monitored epoch if none improved).
    start_from_epoch: epochs to wait before monitoring (warm-up).
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta)
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_epoch = 0
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        current = self._current(logs)
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()   # the current weights are the best so far
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
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


def _check_rnnkit_path(filepath, weights_only):
    path = os.fspath(filepath)
    if not isinstance(path, str):
        raise TypeError(f"filepath must be a str or os.PathLike, got {filepath!r}")
    if path.endswith((".keras", ".h5")):
        what = "save_weights" if weights_only else "save"
        raise ValueError(f"filepath {path!r}: rnnkit's model.{what} writes its own .npz format, "
                         f"not a Keras file; use a name ending in .npz (e.g. 'best.npz')")
    return path


class ModelCheckpoint(_MonitorCallback):
    """Save the model (``model.save``) or its weights (``model.save_weights``) during training.

    filepath: where to save; may hold ``{epoch}`` (1-based, e.g. ``{epoch:02d}``) and any key of
        the logs (``{val_loss:.3f}``), formatted for each save. rnnkit writes ``.npz`` files
        (a ``.keras`` / ``.h5`` name is refused at construction with a ValueError).
    monitor, mode: the quantity that decides ``save_best_only`` (see the module docstring).
    save_best_only: save only when the monitored value improves on the best so far (strictly,
        no min_delta); the best is kept across ``fit`` calls, as in Keras.
    save_weights_only: ``model.save_weights(path)`` instead of ``model.save(path)``.
    save_freq: ``"epoch"`` (after every epoch) or an integer: after every that many batches
        (monitoring the batch logs, i.e. the epoch's running means).
    initial_value_threshold: the best value to beat before the first save (save_best_only).
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__(monitor, mode, 0.0,
                         None if initial_value_threshold is None else float(initial_value_threshold))
        self.filepath = _check_rnnkit_path(filepath, save_weights_only)
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                                     or save_freq < 1):
            raise ValueError(f"save_freq must be 'epoch' or a positive integer number of batches, "
                             f"got {save_freq!r}")
        self.save_freq = save_freq
        self._batches_since_save = 0
        self._current_epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch, batch, logs):
        fields = dict(logs or {})
        if batch is not None:
            fields.setdefault("batch", batch + 1)
        try:
            return self.filepath.format(epoch=epoch + 1, **fields)
        except (KeyError, IndexError) as exc:
            raise KeyError(f"Failed to format this callback filepath: {self.filepath!r}. "
                           f"Reason: {exc!r} is not in the logs {sorted(fields)}") from None

    def _save(self, epoch, batch, logs):
        path = self._path(epoch, batch, logs)
        if self.save_best_only:
            current = self._current(logs)
            if not self._is_improvement(current, self.best):
                if self.verbose > 0:
                    best = "None" if self.best is None else f"{self.best:.5f}"
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
                return
            if self.verbose > 0:
                best = "None" if self.best is None else f"{self.best:.5f}"
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, "
                      f"saving model to {path}")
            self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class ReduceLROnPlateau(_MonitorCallback):
    """Multiply the learning rate by ``factor`` when the monitored quantity stops improving.

    After ``patience`` epochs without an improvement of more than ``min_delta``, the rate becomes
    ``max(lr · factor, min_lr)`` (only while lr > min_lr), then ``cooldown`` epochs pass before
    waiting starts again. Adds ``learning_rate`` (the rate before any change at this epoch end) to
    the epoch logs, as Keras does. Needs an optimizer with a float learning rate (not a schedule).
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor = float(factor)
        self.patience = int(patience)
        self.verbose = verbose
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if logs is not None:
            logs["learning_rate"] = float(optimizer.learning_rate)
        current = self._current(logs)
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(optimizer.learning_rate)
                if old_lr > float(np.float32(self.min_lr)):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0
