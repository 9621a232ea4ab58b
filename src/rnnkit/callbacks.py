"""Training callbacks: hooks that ``fit`` calls around epochs and batches.

``fit`` calls, in order: ``set_model``, ``set_params`` (``{"epochs", "steps", "verbose"}``),
``on_train_begin``, then per epoch ``on_epoch_begin``, per batch ``on_batch_begin``/``on_batch_end``
(``on_train_batch_*`` are the same hooks), ``on_epoch_end`` (whose ``logs`` hold the epoch's mean
loss, metrics and ``val_*`` values), and finally ``on_train_end``. A callback may stop training by
setting ``self.model.stop_training = True``; training then ends after the current epoch.
``evaluate`` calls ``on_test_begin`` / ``on_test_batch_begin`` / ``on_test_batch_end`` /
``on_test_end`` and ``predict`` the ``on_predict_*`` namesakes.

The progress display is a callback too (:class:`ProgbarLogger`, as in Keras): ``fit``,
``evaluate`` and ``predict`` add one when ``verbose`` is not 0.

Callbacks pickle and ``copy.deepcopy`` without their model: ``model`` is None in the copy (``fit``
sets it again when the callback is used). So a pickled ``History`` holds its ``history`` dict and
``epoch`` list but not the model it was recorded for — except the one a model keeps in
``model.history``: pickling the model pickles that History along, and it points to the unpickled
model again.
"""

from __future__ import annotations

import sys
import time

import numpy as np


class Callback:
    """Base class: every hook does nothing. ``self.model`` is set by ``fit`` before training."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params) -> None:
        self.params = dict(params)

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

    # Keras's names of the training batch hooks: the same hooks
    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass


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


class Progbar:
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


#: entries of the batch logs that are not running means (not shown by the progress bar)
_BATCH_ONLY_KEYS = ("size", "batch_loss")


class ProgbarLogger(Callback):
    """The progress display of ``fit`` / ``evaluate`` / ``predict`` (Keras's ``ProgbarLogger``).

    ``fit``: "Epoch e/E", then a :class:`Progbar` over the epoch's steps showing the running loss
    and metrics; its final line (written when the epoch ends) includes the ``val_*`` values.
    verbose 1: a bar rewritten in place; 2: one line per epoch. ``fit`` / ``evaluate`` /
    ``predict`` add one themselves when their ``verbose`` is not 0 (from ``params["verbose"]``).
    """

    def __init__(self):
        super().__init__()
        self._bar = None

    def __getstate__(self):
        state = super().__getstate__()
        state["_bar"] = None   # holds a stream
        return state

    @property
    def _verbose(self):
        return self.params.get("verbose", 1)

    def on_epoch_begin(self, epoch, logs=None):
        if self._verbose:
            print(f"Epoch {epoch + 1}/{self.params.get('epochs')}", flush=True)
        self._bar = Progbar(self.params.get("steps"), self._verbose)

    def on_batch_end(self, batch, logs=None):
        # the last step is shown when the epoch ends, with the validation values
        if batch + 1 < self._bar.total:
            self._bar.update(batch + 1, {k: v for k, v in (logs or {}).items()
                                         if k not in _BATCH_ONLY_KEYS})

    def on_epoch_end(self, epoch, logs=None):
        self._bar.update(self._bar.total, dict(logs or {}), final=True)

    def on_test_begin(self, logs=None):
        self._bar = Progbar(self.params.get("steps"), self._verbose)

    def on_test_batch_end(self, batch, logs=None):
        self._bar.update(batch + 1, dict(logs or {}), final=batch + 1 == self._bar.total)

    on_predict_begin = on_test_begin

    def on_predict_batch_end(self, batch, logs=None):
        self._bar.update(batch + 1, {}, final=batch + 1 == self._bar.total)


class History(Callback):
    """Records the per-epoch logs: ``history.history["loss"][e]`` is the mean loss of epoch ``e``.

    ``fit`` always attaches one and returns it.
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
