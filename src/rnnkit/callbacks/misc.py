"""LearningRateScheduler, CSVLogger, TerminateOnNaN and LambdaCallback (Keras 3's arguments and
behaviour)."""

from __future__ import annotations

import collections.abc
import csv
import math
import os

import numpy as np

from .base import Callback

__all__ = ["LearningRateScheduler", "CSVLogger", "TerminateOnNaN", "LambdaCallback"]


class LearningRateScheduler(Callback):
    """At the start of every epoch, set the learning rate to ``schedule(epoch, lr)`` (epoch counted
    from 0, ``lr`` the current rate); a ``schedule(epoch)`` taking one argument works too (Keras
    tries the two-argument form first and falls back on a TypeError). The result must be a float
    (ValueError otherwise). Adds ``learning_rate`` to the epoch logs. Needs an optimizer with a
    float learning rate (not a LearningRateSchedule)."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be a function (epoch, lr) -> lr, got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # the one-argument form
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {lr!r}")
        optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


def _csv_value(v):
    if isinstance(v, str):
        return v
    if isinstance(v, collections.abc.Iterable) and not (isinstance(v, np.ndarray) and v.ndim == 0):
        return f'"[{", ".join(map(str, v))}]"'
    return v


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` (from 0) and the epoch logs in sorted key order.

    The columns are fixed by the first epoch: its keys, sorted, plus ``val_<key>`` for each when
    there were no ``val_`` keys (Keras's rule); a key missing later is written as ``NA``.
    ``append=True`` adds to an existing file (writing the header only when the file is empty).
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator must be a one-character string, got {separator!r}")
        self.sep = separator
        self.append = bool(append)
        self.keys = None
        self.append_header = True
        self._file = None
        self._writer = None

    def __getstate__(self):
        state = super().__getstate__()
        state["_file"] = state["_writer"] = None
        return state

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not f.readline()
            mode = "a"
        else:
            mode = "w"
        self._close()
        self._file = open(self.filename, mode, newline="")
        self._writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self._writer is None:
            sep = self.sep

            class Dialect(csv.excel):
                delimiter = sep

            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self.keys], dialect=Dialect)
            if self.append_header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, _csv_value(logs.get(k, "NA"))) for k in self.keys)
        self._writer.writerow(row)
        self._file.flush()

    def _close(self):
        if self._file is not None and not self._file.closed:
            self._file.close()

    def on_train_end(self, logs=None):
        self._close()
        self._writer = None


class TerminateOnNaN(Callback):
    """Stop training after a batch whose running loss is NaN or infinite (``raise_error=True``:
    raise RuntimeError instead). Training ends after that batch (the epoch's ``on_epoch_end`` and
    ``on_train_end`` still run)."""

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = bool(raise_error)

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                   f"Terminating training immediately.")
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from plain functions: ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``,
    ``on_train_begin(logs)``, ``on_train_end(logs)``, ``on_train_batch_begin(batch, logs)``,
    ``on_train_batch_end(batch, logs)``; other hooks (e.g. ``on_batch_end``) by keyword as well."""

    _HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end",
              "on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end",
              "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
              "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end")

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if name not in self._HOOKS:
                raise TypeError(f"LambdaCallback got an unknown hook {name!r}; hooks: {self._HOOKS}")
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"{name} must be a function, got {fn!r}")
            setattr(self, name, fn)
