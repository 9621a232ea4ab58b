"""The progress display: :class:`Progbar` (one line) and :class:`ProgbarLogger` (the callback)."""

from __future__ import annotations

import sys
import time

from .base import Callback


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
