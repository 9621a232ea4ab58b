"""Losses with Keras 3 semantics and exact gradients, pure NumPy.

Shapes: ``y_pred`` is (B, C) or (B, T, C) (any leading shape works; the last axis is the feature /
class axis C). The *per-sample loss* has shape ``y_pred.shape[:-1]`` — (B,) or (B, T):

- mean_squared_error:  mean over the last axis of (y_pred - y_true)**2
- binary_crossentropy: mean over the last axis of the element-wise crossentropy
- categorical_crossentropy / sparse_categorical_crossentropy: sum over the classes

Reduction ``"sum_over_batch_size"`` (Keras's default) then averages the per-sample losses over all
remaining entries (batch, and time for sequence outputs)::

    loss = sum(per_sample * w) / N

``w`` is ``sample_weight`` (broadcastable to the per-sample shape; (B,) is expanded to (B, 1) for
sequence outputs, a trailing axis of 1 is dropped) times the mask. ``N`` is the number of entries
without a mask and the number of *unmasked* entries with one, so padded steps neither add to nor
dilute the loss (Keras 3 does the same, through mask weights total/valid). Sample weights do not
change ``N`` (Keras: sum_over_batch_size divides by the count, not by the sum of the weights).
A batch with no unmasked entry has loss 0 and gradient 0. ``reduction="sum"`` uses ``N = 1``.

Masked entries are ignored entirely: their predictions and labels (e.g. a padding label -1) are not
validated and contribute exactly 0 to the loss and its gradient, even if not finite.

Numerics (as Keras): probabilities are clipped to [eps, 1 - eps], eps = 1e-7 (the clip has zero
derivative outside that range); categorical predictions are first renormalised to sum to 1 per row;
``from_logits=True`` uses log-sigmoid / log-sum-exp forms that stay finite for any finite logits.

Fast path: a model whose last activation is ``loss.logits_activation`` ("softmax" for the
categorical losses, "sigmoid" for binary crossentropy) can skip that activation's backward and call
``loss.gradient_wrt_logits(y_true, logits)`` / ``loss.value_and_gradient_wrt_logits(...)``, which
evaluate the from-logits form (gradient ``softmax(z) - y``) whatever ``from_logits`` says. This is
what Keras's TensorFlow backend does when it finds a softmax/sigmoid output.

The value is a Python float; gradients have the shape of ``y_pred`` and its floating dtype.
"""

from __future__ import annotations

import numpy as np

from . import activations
from ._config import Configurable, deserialize_from, serialized

__all__ = ["Loss", "MeanSquaredError", "BinaryCrossentropy", "CategoricalCrossentropy",
           "SparseCategoricalCrossentropy", "get", "serialize", "deserialize", "EPSILON",
           "mean_squared_error", "binary_crossentropy", "categorical_crossentropy",
           "sparse_categorical_crossentropy"]

EPSILON = 1e-7  # Keras's backend.epsilon(): probability clip
_REDUCTIONS = ("sum_over_batch_size", "sum")


# -- small helpers --------------------------------------------------------------------------------

def _float_dtype(a: np.ndarray) -> np.dtype:
    return a.dtype if a.dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _log_sum_exp(z: np.ndarray) -> np.ndarray:
    """log(sum(exp(z), -1)) with keepdims, max-subtracted."""
    zmax = np.max(z, axis=-1, keepdims=True)
    return zmax + np.log(np.sum(np.exp(_shifted(z, zmax)), axis=-1, keepdims=True))


def _shifted(z: np.ndarray, zmax: np.ndarray) -> np.ndarray:
    # z - zmax <= 0; it can only overflow to -inf (for |z| near the dtype's max), whose exp is the
    # correct limit 0
    with np.errstate(over="ignore"):
        return z - zmax


def _match_rank(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Keras's squeeze_or_expand_to_same_rank for labels: (B,) vs (B, 1) and the converse."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        return y_true[..., None]
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        return y_true[..., 0]
    return y_true


class Loss(Configurable):
    """Base class. Subclasses implement ``_terms``; see the module docstring for the semantics."""

    #: the output activation whose backward the from-logits fast path replaces (None: no fast path)
    logits_activation = None
    _default_name = "loss"

    def __init__(self, reduction: str = "sum_over_batch_size", name: str | None = None):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {list(_REDUCTIONS)}, got {reduction!r}")
        self.reduction = reduction
        self.name = name or self._default_name

    # -- public API ------------------------------------------------------------------------------
    def __call__(self, y_true, y_pred, sample_weight=None, mask=None) -> float:
        """The scalar loss."""
        return self._evaluate(y_true, y_pred, sample_weight, mask, False, need_grad=False)[0]

    def gradient(self, y_true, y_pred, sample_weight=None, mask=None) -> np.ndarray:
        """d(loss)/d(y_pred): same shape as y_pred."""
        return self._evaluate(y_true, y_pred, sample_weight, mask, False, need_grad=True)[1]

    def value_and_gradient(self, y_true, y_pred, sample_weight=None, mask=None):
        """(loss, d(loss)/d(y_pred)) in one pass."""
        return self._evaluate(y_true, y_pred, sample_weight, mask, False, need_grad=True)

    def per_sample(self, y_true, y_pred) -> np.ndarray:
        """The unreduced loss, shape ``y_pred.shape[:-1]`` (Keras's ``call``)."""
        yt, yp, _ = self._prepare(y_true, y_pred, None, False)
        return self._terms(yt, yp, None, False, need_grad=False)[0]

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}


    # -- machinery ---------------------------------------------------------------------------------
    def _prepare(self, y_true, y_pred, used, from_logits):
        """Validated (y_true, y_pred) in the compute dtype, plus the per-sample shape."""
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind not in "fiu":
            raise TypeError(f"y_pred must be a numeric array, got dtype {y_pred.dtype}")
        if y_pred.ndim < 1:
            raise ValueError("y_pred must have at least 1 dimension (the last one holds the "
                             "features/classes), got a scalar")
        y_pred = y_pred.astype(_float_dtype(y_pred), copy=False)
        y_true = self._check_labels(np.asarray(y_true), y_pred, used)
        return y_true, y_pred, y_pred.shape[:-1]

    def _check_labels(self, y_true, y_pred, used):
        if y_true.dtype.kind not in "fiub":
            raise TypeError(f"y_true must be a numeric array, got dtype {y_true.dtype}")
        y_true = _match_rank(y_true, y_pred)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"y_true must have the shape of y_pred {y_pred.shape}, "
                             f"got {y_true.shape}")
        return y_true.astype(y_pred.dtype, copy=False)

    def _weights(self, shape, sample_weight, mask):
        """(w, used, N): per-sample weights (None = all 1), bool array of used entries (None = all)
        and the divisor of the reduction."""
        used = None
        if mask is not None:
            m = np.asarray(mask)
            if m.dtype != np.bool_:
                if m.dtype.kind not in "iuf" or not np.all((m == 0) | (m == 1)):
                    raise ValueError("mask must be boolean (True = the entry counts), "
                                     f"got dtype {m.dtype}")
                m = m != 0
            if m.shape != shape:
                raise ValueError(f"mask must have the per-sample loss shape {shape} "
                                 f"(y_pred.shape[:-1]), got {m.shape}")
            used = m
        w = None
        if sample_weight is not None:
            sw = np.asarray(sample_weight)
            if sw.dtype.kind not in "fiub":
                raise TypeError(f"sample_weight must be numeric, got dtype {sw.dtype}")
            sw = sw.astype(np.float64, copy=False)
            if sw.ndim == len(shape) + 1 and sw.shape[-1] == 1:
                sw = sw[..., 0]
            while 0 < sw.ndim < len(shape):
                sw = sw[..., None]  # (B,) -> (B, 1): one weight per sequence
            try:
                w = np.broadcast_to(sw, shape)
            except ValueError:
                raise ValueError(f"sample_weight of shape {np.shape(sample_weight)} cannot be "
                                 f"broadcast to the per-sample loss shape {shape}") from None
        if self.reduction == "sum":
            n = 1
        elif used is None:
            n = int(np.prod(shape, dtype=np.int64))
        else:
            n = int(np.count_nonzero(used))
        if used is not None:
            w = used.astype(np.float64) if w is None else np.where(used, w, 0.0)
        return w, used, n

    def _evaluate(self, y_true, y_pred, sample_weight, mask, from_logits, need_grad):
        y_pred_arr = np.asarray(y_pred)
        shape = y_pred_arr.shape[:-1] if y_pred_arr.ndim >= 1 else ()
        w, used, n = self._weights(shape, sample_weight, mask)
        yt, yp, _ = self._prepare(y_true, y_pred_arr, used, from_logits)
        if n == 0:  # empty batch or every entry masked
            return 0.0, (np.zeros_like(yp) if need_grad else None)
        if used is not None:
            # Masked entries are ignored: give them harmless values so that nothing in them
            # (garbage predictions at padded steps) can produce NaN/inf or a warning.
            keep = used[..., None]
            yp = np.where(keep, yp, 0.5 if self.logits_activation == "sigmoid" else 1.0)
            yt = np.where(keep, yt, 0) if yt.shape == yp.shape else yt
        losses, d_losses = self._terms(yt, yp, used, from_logits, need_grad)
        if w is None:
            value = float(np.sum(losses, dtype=np.float64)) / n
        else:
            value = float(np.sum(losses * w, dtype=np.float64)) / n
        if not need_grad:
            return value, None
        scale = (1.0 / n) if w is None else (w / n).astype(yp.dtype)[..., None]
        d_losses *= scale
        return value, d_losses

    def _terms(self, y_true, y_pred, used, from_logits, need_grad):
        """(per-sample losses, d per-sample loss / d y_pred or None). Overridden."""
        raise NotImplementedError


class MeanSquaredError(Loss):
    """mean((y_pred - y_true)**2, axis=-1), then the reduction."""

    _default_name = "mean_squared_error"

    def _terms(self, y_true, y_pred, used, from_logits, need_grad):
        diff = y_pred - y_true
        c = diff.shape[-1] if diff.ndim else 1
        losses = np.mean(diff * diff, axis=-1)
        if not need_grad:
            return losses, None
        diff *= 2 / c
        return losses, diff


class _Crossentropy(Loss):
    def __init__(self, from_logits: bool = False, reduction: str = "sum_over_batch_size",
                 name: str | None = None):
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"from_logits must be a bool, got {from_logits!r}")
        super().__init__(reduction=reduction, name=name)
        self.from_logits = bool(from_logits)

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits}

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None) -> float:
        return self._evaluate(y_true, y_pred, sample_weight, mask, self.from_logits, False)[0]

    def gradient(self, y_true, y_pred, sample_weight=None, mask=None) -> np.ndarray:
        return self._evaluate(y_true, y_pred, sample_weight, mask, self.from_logits, True)[1]

    def value_and_gradient(self, y_true, y_pred, sample_weight=None, mask=None):
        return self._evaluate(y_true, y_pred, sample_weight, mask, self.from_logits, True)

    def per_sample(self, y_true, y_pred) -> np.ndarray:
        yt, yp, _ = self._prepare(y_true, y_pred, None, self.from_logits)
        return self._terms(yt, yp, None, self.from_logits, need_grad=False)[0]

    def gradient_wrt_logits(self, y_true, logits, sample_weight=None, mask=None) -> np.ndarray:
        """d(loss)/d(logits) of the from-logits form, whatever ``from_logits`` says: for a model whose
        last activation is ``logits_activation``, this replaces loss gradient + activation backward."""
        return self._evaluate(y_true, logits, sample_weight, mask, True, True)[1]

    def value_and_gradient_wrt_logits(self, y_true, logits, sample_weight=None, mask=None):
        """(loss from logits, d(loss)/d(logits)) in one pass; see ``gradient_wrt_logits``."""
        return self._evaluate(y_true, logits, sample_weight, mask, True, True)


class BinaryCrossentropy(_Crossentropy):
    """mean over the last axis of -(y log p + (1 - y) log(1 - p)), then the reduction.

    from_logits: max(z, 0) - z y + log1p(exp(-|z|)) (TensorFlow's sigmoid_cross_entropy_with_logits),
    gradient (sigmoid(z) - y) / C. Probabilities: p clipped to [eps, 1 - eps]."""

    logits_activation = "sigmoid"
    _default_name = "binary_crossentropy"

    def _terms(self, y_true, y_pred, used, from_logits, need_grad):
        c = y_pred.shape[-1]
        if from_logits:
            z = y_pred
            elem = np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))
            losses = np.mean(elem, axis=-1)
            if not need_grad:
                return losses, None
            d = activations.sigmoid(z)
            d -= y_true
            d /= c
            return losses, d
        p = np.clip(y_pred, EPSILON, 1 - EPSILON)
        elem = -(y_true * np.log(p) + (1 - y_true) * np.log1p(-p))
        losses = np.mean(elem, axis=-1)
        if not need_grad:
            return losses, None
        # d/dp = (p - y) / (p (1 - p)); the clip passes the gradient only inside [eps, 1 - eps]
        inside = (y_pred >= EPSILON) & (y_pred <= 1 - EPSILON)
        d = np.where(inside, (p - y_true) / (p * (1 - p)), 0).astype(y_pred.dtype, copy=False)
        d /= c
        return losses, d


class CategoricalCrossentropy(_Crossentropy):
    """-sum(y log p) over the classes (last axis), then the reduction; y_true one-hot (or soft).

    from_logits: sum(y) logsumexp(z) - sum(y z), gradient sum(y) softmax(z) - y.
    Probabilities (Keras): p = y_pred / sum(y_pred, -1), clipped to [eps, 1 - eps]."""

    logits_activation = "softmax"
    _default_name = "categorical_crossentropy"

    def _terms(self, y_true, y_pred, used, from_logits, need_grad):
        if from_logits:
            z = y_pred
            lse = _log_sum_exp(z)
            y_sum = np.sum(y_true, axis=-1, keepdims=True)
            losses = (y_sum * lse)[..., 0] - np.sum(y_true * z, axis=-1)
            if not need_grad:
                return losses, None
            d = activations.softmax(z)
            d *= y_sum
            d -= y_true
            return losses, d
        s = _row_sums(y_pred)
        q = y_pred / s
        p = np.clip(q, EPSILON, 1 - EPSILON)
        losses = -np.sum(y_true * np.log(p), axis=-1)
        if not need_grad:
            return losses, None
        # g = dL/dq (zero where clipped); through q = y_pred / s: dL/dy_pred_k = (g_k - sum(g q)) / s
        g = np.where((q >= EPSILON) & (q <= 1 - EPSILON), -y_true / p, 0).astype(y_pred.dtype,
                                                                                 copy=False)
        d = g - np.sum(g * q, axis=-1, keepdims=True)
        d /= s
        return losses, d


class SparseCategoricalCrossentropy(_Crossentropy):
    """Categorical crossentropy with integer labels: y_true has shape y_pred.shape[:-1] (or that
    with a trailing 1) and values in [0, C)."""

    logits_activation = "softmax"
    _default_name = "sparse_categorical_crossentropy"

    def _check_labels(self, y_true, y_pred, used):
        shape = y_pred.shape[:-1]
        if y_true.shape == shape + (1,) and y_true.shape != shape:
            y_true = y_true[..., 0]
        if y_true.shape != shape:
            raise ValueError(f"y_true must hold integer class labels of shape {shape} (y_pred.shape"
                             f"[:-1], optionally with a trailing 1), got {y_true.shape}; for one-hot "
                             "labels use categorical_crossentropy")
        if y_true.dtype.kind == "f":
            if not np.all(np.isfinite(y_true) & (y_true == np.round(y_true)) | _unused(used)):
                raise ValueError("y_true must hold integer class labels, got non-integral values")
            y_true = np.where(_unused(used), 0, y_true).astype(np.int64)
        elif y_true.dtype.kind in "iu":
            y_true = y_true.astype(np.int64, copy=False)
        else:
            raise TypeError(f"y_true must hold integer class labels, got dtype {y_true.dtype}")
        c = y_pred.shape[-1]
        if used is not None:
            y_true = np.where(used, y_true, 0)  # padding labels (e.g. -1) are ignored
        if y_true.size and (y_true.min() < 0 or y_true.max() >= c):
            bad = y_true[(y_true < 0) | (y_true >= c)]
            raise ValueError(f"y_true labels must be in [0, {c}) for y_pred with {c} classes, "
                             f"got {int(bad.flat[0])}")
        return y_true

    def _terms(self, y_true, y_pred, used, from_logits, need_grad):
        idx = y_true[..., None]
        if from_logits:
            z = y_pred
            lse = _log_sum_exp(z)
            losses = (lse - np.take_along_axis(z, idx, axis=-1))[..., 0]
            if not need_grad:
                return losses, None
            d = activations.softmax(z)
            np.put_along_axis(d, idx, np.take_along_axis(d, idx, axis=-1) - 1, axis=-1)
            return losses, d
        s = _row_sums(y_pred)
        q_l = np.take_along_axis(y_pred, idx, axis=-1) / s
        p_l = np.clip(q_l, EPSILON, 1 - EPSILON)
        losses = -np.log(p_l)[..., 0]
        if not need_grad:
            return losses, None
        # only the label's q enters: L = -log(q_l), q_l = y_pred_l / s
        g = np.where((q_l >= EPSILON) & (q_l <= 1 - EPSILON), -1 / p_l, 0).astype(y_pred.dtype,
                                                                                  copy=False)
        d = np.broadcast_to(-(g * q_l) / s, y_pred.shape).copy()
        np.put_along_axis(d, idx, np.take_along_axis(d, idx, axis=-1) + g / s, axis=-1)
        return losses, d


def _unused(used):
    return False if used is None else ~used


def _row_sums(y_pred):
    s = np.sum(y_pred, axis=-1, keepdims=True)
    if not np.all(s > 0):
        raise ValueError("y_pred must hold probabilities with a positive sum over the last axis "
                         "(pass from_logits=True for logits)")
    return s


# -- Keras-style functions: per-sample (unreduced) losses ---------------------------------------

def mean_squared_error(y_true, y_pred):
    return MeanSquaredError().per_sample(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False):
    return BinaryCrossentropy(from_logits=from_logits).per_sample(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False):
    return CategoricalCrossentropy(from_logits=from_logits).per_sample(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    return SparseCategoricalCrossentropy(from_logits=from_logits).per_sample(y_true, y_pred)


# -- lookup and serialisation ----------------------------------------------------------------------

_CLASSES = {cls.__name__: cls for cls in (MeanSquaredError, BinaryCrossentropy,
                                          CategoricalCrossentropy, SparseCategoricalCrossentropy)}
_FUNCTIONS = {mean_squared_error: MeanSquaredError, binary_crossentropy: BinaryCrossentropy,
              categorical_crossentropy: CategoricalCrossentropy,
              sparse_categorical_crossentropy: SparseCategoricalCrossentropy}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "")


# Keras names and aliases, matched case- and underscore-insensitively:
# "mse" / "MSE" / "mean_squared_error" / "MeanSquaredError", "bce", ...
_BY_NAME = {_key(cls.__name__): cls for cls in _CLASSES.values()}
_BY_NAME.update({_key(cls._default_name): cls for cls in _CLASSES.values()})
_BY_NAME.update({"mse": MeanSquaredError, "bce": BinaryCrossentropy})


def get(identifier) -> Loss:
    """A :class:`Loss` from a name ("mse", "categorical_crossentropy", "SparseCategoricalCrossentropy"
    ...), a Loss instance (returned as is), a loss class, one of this module's functions, or a
    ``serialize`` dict. Custom callables are refused: training needs the gradient."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(_key(identifier))
        if cls is None:
            raise ValueError(f"loss must be one of {sorted(_CLASSES)} or their snake_case names "
                             f"(aliases 'mse', 'bce'), got {identifier!r}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier) and identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    raise TypeError(f"loss must be a name, an rnnkit.losses.Loss or a serialized dict, got "
                    f"{identifier!r}; plain callables are not supported because training needs "
                    "the loss gradient (subclass rnnkit.losses.Loss instead)")


def serialize(loss) -> dict:
    return serialized(get(loss))


def deserialize(config: dict) -> Loss:
    return deserialize_from(_CLASSES, config, "loss")
