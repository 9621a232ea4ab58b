"""Training callbacks: hooks that ``fit`` calls around epochs and batches.

``fit`` calls, in order: ``set_model``, ``set_params`` (``{"epochs", "steps", "verbose"}``),
``on_train_begin``, then per epoch ``on_epoch_begin``, per batch ``on_batch_begin``/``on_batch_end``
(``on_train_batch_*`` are the same hooks), ``on_epoch_end`` (whose ``logs`` hold the epoch's mean
loss, metrics and ``val_*`` values), and finally ``on_train_end``. A callback may stop training by
setting ``self.model.stop_training = True``: training then ends after the current batch (set in a
batch hook; the epoch still ends with ``on_epoch_end``) or epoch, as in Keras 3.
``evaluate`` calls ``on_test_begin`` / ``on_test_batch_begin`` / ``on_test_batch_end`` /
``on_test_end`` and ``predict`` the ``on_predict_*`` namesakes.

Callbacks run in Keras's order: the progress display, the caller's callbacks in their order, then
the History. So a callback that adds to the epoch logs (``learning_rate``: ReduceLROnPlateau,
LearningRateScheduler) is seen by the ones after it and recorded in ``history.history``.

Modules: base.py (Callback, History), progbar.py (Progbar, ProgbarLogger), monitor.py (the
callbacks watching a logged quantity: EarlyStopping, ModelCheckpoint, ReduceLROnPlateau), misc.py
(LearningRateScheduler, CSVLogger, TerminateOnNaN, LambdaCallback).

The progress display is a callback too (:class:`ProgbarLogger`, as in Keras): ``fit``,
``evaluate`` and ``predict`` add one when ``verbose`` is not 0.

Callbacks pickle and ``copy.deepcopy`` without their model: ``model`` is None in the copy (``fit``
sets it again when the callback is used). So a pickled ``History`` holds its ``history`` dict and
``epoch`` list but not the model it was recorded for — except the one a model keeps in
``model.history``: pickling the model pickles that History along, and it points to the unpickled
model again.
"""

from .base import Callback, History
from .misc import CSVLogger, LambdaCallback, LearningRateScheduler, TerminateOnNaN
from .monitor import EarlyStopping, ModelCheckpoint, ReduceLROnPlateau
from .progbar import Progbar, ProgbarLogger

__all__ = ["Callback", "History", "ProgbarLogger", "Progbar", "EarlyStopping", "ModelCheckpoint",
           "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN",
           "LambdaCallback"]
