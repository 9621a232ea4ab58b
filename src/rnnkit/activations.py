"""Activations by name: forward/backward pairs, pure NumPy.

Every activation is an :class:`Activation` with

- ``forward(x) -> y`` and
- ``backward(dy, x, y) -> dx``: the gradient with respect to the input, given the gradient ``dy``
  with respect to the output. Every derivative here is computed from the cached *output* ``y``
  (as in haste's ``d_tanh(tanh_output)``), so ``x`` may be None; it is in the signature so that a
  future activation whose derivative needs the input can use it.

Names (lower case, as the ops layer expects): ``linear``, ``relu``, ``tanh``, ``sigmoid``,
``softmax`` (over the last axis), ``hard_sigmoid`` (Keras 3: ``clip(x / 6 + 0.5, 0, 1)``).
``get(None)`` is ``linear``, as in Keras.

A plain Python callable is accepted for forward-only use (``predict``); it has no derivative, so
``backward`` raises a ValueError that asks for a name. Only named activations serialise
(``serialize(act) -> name``).

Arrays keep their floating dtype (float32 stays float32); other inputs are computed in float64.
``linear`` returns its input (forward) and ``dy`` (backward) themselves, without a copy.

The element-wise math (all but softmax) and the tanh/sigmoid derivatives are those of
:mod:`rnnkit.reference.activations`, the test oracle; this module adds softmax, the float
conversion, the name registry and the forward/backward :class:`Activation` objects.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from .reference import activations as _ref

__all__ = ["Activation", "get", "serialize", "deserialize", "names",
           "linear", "relu", "tanh", "sigmoid", "softmax", "hard_sigmoid"]


def _as_float(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    return x


# -- forward functions (also the Keras-style module-level API: ``activations.relu(x)``) ----------
# The element-wise ones are the reference's (rnnkit.reference.activations); these wrappers only add
# the float conversion of non-float inputs and stay distinct functions, so that ``get(relu)`` finds
# its named, trainable activation.

def linear(x):
    """Identity. Returns ``x`` itself (as an array), no copy."""
    return _ref.linear(_as_float(x))


def relu(x):
    """max(x, 0)."""
    return _ref.relu(_as_float(x))


def tanh(x):
    return _ref.tanh(_as_float(x))


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow: only exp(-|x|) <= 1 is ever formed."""
    return _ref.sigmoid(_as_float(x))


def softmax(x):
    """exp(x) / sum(exp(x)) along the last axis; the row maximum is subtracted first."""
    x = _as_float(x)
    with np.errstate(over="ignore"):  # x - max <= 0 can only overflow to -inf; exp(-inf) = 0 is right
        e = x - np.max(x, axis=-1, keepdims=True)
    np.exp(e, out=e)
    e /= np.sum(e, axis=-1, keepdims=True)
    return e


def hard_sigmoid(x):
    """Keras 3's piecewise-linear sigmoid: clip(x / 6 + 0.5, 0, 1)."""
    return _ref.hard_sigmoid(_as_float(x))


# -- backward functions: dx from dy and the cached output y -------------------------------------
# tanh and sigmoid multiply by the reference's derivative-from-output. linear, relu and hard_sigmoid
# do not multiply by their 0/1 (or 0/one-sixth) derivative: linear returns dy itself, and the other
# two select dy where the slope is nonzero, so a dead unit passes exactly 0 even for an inf/NaN dy.

def _linear_backward(dy, x, y):
    return dy


def _relu_backward(dy, x, y):
    # y > 0 exactly where x > 0; the derivative at 0 is taken as 0 (TensorFlow's convention).
    return np.where(y > 0, dy, 0).astype(dy.dtype, copy=False)


def _tanh_backward(dy, x, y):
    return dy * _ref.d_tanh(y)


def _sigmoid_backward(dy, x, y):
    return dy * _ref.d_sigmoid(y)


def _softmax_backward(dy, x, y):
    # Jacobian-vector product of softmax: dx = y * (dy - sum(dy * y))  (per row, last axis)
    s = np.sum(dy * y, axis=-1, keepdims=True)
    return y * (dy - s)


def _hard_sigmoid_backward(dy, x, y):
    # slope 1/6 on the linear piece (0 < y < 1, i.e. -3 < x < 3), 0 where clipped
    inside = (y > 0) & (y < 1)
    return np.where(inside, dy / 6, 0).astype(dy.dtype, copy=False)


_BUILTIN = {
    "linear": (linear, _linear_backward),
    "relu": (relu, _relu_backward),
    "tanh": (tanh, _tanh_backward),
    "sigmoid": (sigmoid, _sigmoid_backward),
    "softmax": (softmax, _softmax_backward),
    "hard_sigmoid": (hard_sigmoid, _hard_sigmoid_backward),
}


def names() -> list:
    """The valid activation names, sorted."""
    return sorted(_BUILTIN)


class Activation:
    """A named activation (forward and backward) or a wrapped callable (forward only)."""

    def __init__(self, name: str, forward_fn: Callable, backward_fn: Optional[Callable] = None):
        self.name = name
        self._forward = forward_fn
        self._backward = backward_fn

    @property
    def has_backward(self) -> bool:
        """False for a wrapped Python callable: it can run forward but cannot be trained through."""
        return self._backward is not None

    def forward(self, x):
        """y = act(x), same shape; floating dtype preserved."""
        y = self._forward(x)
        return y if isinstance(y, np.ndarray) else np.asarray(y)

    __call__ = forward

    def backward(self, dy, x, y):
        """dx = dy * act'(x) (softmax: its Jacobian-vector product), same shape as ``dy``.

        ``y`` is the output of ``forward(x)``; ``x`` may be None (every built-in derivative uses ``y``).
        """
        if self._backward is None:
            raise ValueError(
                f"activation={self.name!r} is a Python callable: it can be used forward only "
                f"(inference); training needs its derivative, so pass one of the names "
                f"{names()} instead")
        dy = _as_float(dy)
        y = np.asarray(y)
        if dy.shape != y.shape:
            raise ValueError(f"dy must have the shape of y {y.shape}, got {dy.shape}")
        return self._backward(dy, x, y)

    def get_config(self) -> str:
        return serialize(self)

    def __eq__(self, other):
        if isinstance(other, Activation):
            return self.name == other.name and self._forward is other._forward
        return NotImplemented

    def __hash__(self):
        return hash((self.name, id(self._forward)))

    def __reduce__(self):
        # A built-in activation pickles (and deep-copies) as its name and comes back as the same
        # shared instance, which ``serialize`` (a layer's get_config) insists on. A wrapped callable
        # pickles with its function (by reference: a module-level function pickles, a lambda not).
        if _INSTANCES.get(self.name) is self:
            return (get, (self.name,))
        return (Activation, (self.name, self._forward, self._backward))

    def __repr__(self):
        kind = "" if self.has_backward else " (callable, forward only)"
        return f"<Activation {self.name}{kind}>"


_INSTANCES = {name: Activation(name, f, b) for name, (f, b) in _BUILTIN.items()}
_BY_FUNCTION = {f: _INSTANCES[name] for name, (f, _) in _BUILTIN.items()}


def get(identifier=None, argument: str = "activation") -> Activation:
    """The :class:`Activation` for a name (case-insensitive), None (linear), an Activation, or a
    callable. rnnkit's own functions (``activations.relu``) map to their named, trainable activation;
    any other callable is wrapped for forward-only use. ``argument`` names the argument in errors
    (e.g. ``"recurrent_activation"``)."""
    if identifier is None:
        return _INSTANCES["linear"]
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str):
        act = _INSTANCES.get(identifier.strip().lower())
        if act is None:
            raise ValueError(f"{argument} must be one of {names()} (or a callable for forward-only "
                             f"use), got {identifier!r}")
        return act
    if callable(identifier):
        builtin = _BY_FUNCTION.get(identifier)
        if builtin is not None:
            return builtin
        name = getattr(identifier, "__name__", None) or type(identifier).__name__
        return Activation(name, identifier, None)
    raise TypeError(f"{argument} must be a name from {names()}, None or a callable, "
                    f"got {type(identifier).__name__} {identifier!r}")


def serialize(activation) -> str:
    """The name of a built-in activation (what ``get`` accepts back)."""
    act = get(activation)
    if not act.has_backward or _INSTANCES.get(act.name) is not act:
        raise ValueError(f"activation {act.name!r} is a Python callable and cannot be serialised; "
                         f"use one of {names()}")
    return act.name


def deserialize(name) -> Activation:
    return get(name)
