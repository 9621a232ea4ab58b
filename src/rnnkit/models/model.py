"""``Model``: what every rnnkit model is (layers, weights, calls, summary, saving); its training loop
(compile / fit / evaluate / predict) is the :class:`~rnnkit.models.trainer.Trainer` it inherits.

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



from .. import saving
from .._data import prepare_data, prepare_inputs
from ..layers.base import _unique_name
from ._summary import print_summary
from .trainer import Trainer

__all__ = ["Model"]


class Model(Trainer):
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
