"""Activation functions by name, with derivatives written from the activation's *output*.

Backward passes keep the activation output ``y = f(x)`` (it is also the value the forward pass needs)
and compute ``f'(x)`` from it, as haste's ``d_tanh(tanh_output)`` does:

| name         | f(x)                       | f'(x) written from y = f(x)  |
|--------------|----------------------------|------------------------------|
| tanh         | tanh(x)                    | 1 - y**2                     |
| sigmoid      | 1 / (1 + exp(-x))          | y * (1 - y)                  |
| relu         | max(x, 0)                  | 1 where y > 0, else 0        |
| linear       | x                          | 1                            |
| hard_sigmoid | clip(x / 6 + 0.5, 0, 1)    | 1/6 where 0 < y < 1, else 0  |

At the kinks of relu and hard_sigmoid the derivative is taken as 0 (the one-sided choice Keras and
PyTorch make). Every function keeps the dtype of its argument (float32 stays float32).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


def tanh(x):
    return np.tanh(x)


def d_tanh(y):
    return 1 - y * y


def sigmoid(x):
    # exp(-|x|) lies in (0, 1], so neither branch can overflow for large |x|.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def d_sigmoid(y):
    return y * (1 - y)


def relu(x):
    return np.maximum(x, 0)


def d_relu(y):
    return (y > 0).astype(y.dtype)


def linear(x):
    return x


def d_linear(y):
    return np.ones_like(y)


def hard_sigmoid(x):
    return np.clip(x / 6 + 0.5, 0, 1)


def d_hard_sigmoid(y):
    one_sixth, zero = y.dtype.type(1 / 6), y.dtype.type(0)
    return np.where((y > 0) & (y < 1), one_sixth, zero)


class Activation(NamedTuple):
    """An activation: ``forward(x)`` and ``derivative(y)`` where ``y = forward(x)``."""

    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]


ACTIVATIONS = {
    "tanh": Activation("tanh", tanh, d_tanh),
    "sigmoid": Activation("sigmoid", sigmoid, d_sigmoid),
    "relu": Activation("relu", relu, d_relu),
    "linear": Activation("linear", linear, d_linear),
    "hard_sigmoid": Activation("hard_sigmoid", hard_sigmoid, d_hard_sigmoid),
}


def get_activation(name: str, argument: str = "activation") -> Activation:
    """Look an activation up by name; ``argument`` names the parameter in the error message."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        known = ", ".join(repr(n) for n in sorted(ACTIVATIONS))
        raise ValueError(f"{argument} must be one of {known}, got {name!r}") from None
