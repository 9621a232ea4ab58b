"""The Layer base class shared by every rnnkit layer.

A layer is a pair of functions, ``__call__`` (forward) and ``backward``, around a list of parameter
arrays. The contract every layer keeps:

- ``layer(x, training=False, mask=None, ...)`` returns the output; with ``training=True`` it keeps
  what ``backward`` needs.
- ``layer.backward(d_output)`` returns the gradient with respect to the input of the last training
  call and *overwrites* ``layer.grads`` (same order and shapes as ``get_weights()``).
- ``layer.weights`` is the list of live parameter arrays (optimizers update them in place);
  ``get_weights()`` returns copies, ``set_weights()`` checks shapes and copies in.
- ``compute_mask(mask)`` says which mask (if any) the next layer receives.
- ``get_config()`` returns the constructor arguments (JSON-serialisable) for ``save``/``load_model``.
"""

from __future__ import annotations

import numpy as np

_LAYER_REGISTRY: dict[str, type] = {}


def register_layer(cls):
    """Class decorator: make a layer class loadable by name (``load_model``)."""
    _LAYER_REGISTRY[cls.__name__] = cls
    return cls


def get_layer_class(name: str):
    try:
        return _LAYER_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown layer class {name!r}; known: {sorted(_LAYER_REGISTRY)}") from None


_name_counters: dict[str, int] = {}


def _unique_name(prefix: str) -> str:
    n = _name_counters.get(prefix, 0)
    _name_counters[prefix] = n + 1
    return prefix if n == 0 else f"{prefix}_{n}"


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i > 0 and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class Layer:
    """Base class. Subclasses set ``self._weights`` (list of arrays) in ``build`` and implement
    ``call``-style ``__call__``, ``backward``, ``compute_output_shape`` and ``get_config``."""

    #: names of the weights, in ``get_weights()`` order (e.g. ["kernel", "recurrent_kernel", "bias"])
    weight_names: tuple = ()

    def __init__(self, dtype="float32", name=None):
        dt = np.dtype(dtype)
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.dtype = dt
        self.name = name or _unique_name(_snake(type(self).__name__))
        self.built = False
        self._weights: list[np.ndarray] = []
        self.grads: list[np.ndarray] | None = None
        self.trainable = True

    # -- weights -----------------------------------------------------------------------------
    @property
    def weights(self) -> list[np.ndarray]:
        return self._weights

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self._weights]

    def set_weights(self, weights) -> None:
        weights = list(weights)
        if not self.built:
            raise ValueError(f"layer {self.name!r} is not built yet: call it on data or build() first")
        if len(weights) != len(self._weights):
            raise ValueError(
                f"weights: layer {self.name!r} expects {len(self._weights)} arrays "
                f"({', '.join(self.weight_names) or 'none'}), got {len(weights)}")
        for i, (cur, new) in enumerate(zip(self._weights, weights)):
            new = np.asarray(new)
            if new.shape != cur.shape:
                label = self.weight_names[i] if i < len(self.weight_names) else f"#{i}"
                raise ValueError(
                    f"weights[{i}] ({label}) of layer {self.name!r} must have shape {cur.shape}, "
                    f"got {new.shape}")
            cur[...] = new.astype(self.dtype, copy=False)

    def count_params(self) -> int:
        return int(sum(w.size for w in self._weights))

    # -- graph helpers -------------------------------------------------------------------------
    def build(self, input_shape) -> None:  # pragma: no cover - overridden
        self.built = True

    def compute_output_shape(self, input_shape):  # pragma: no cover - overridden
        return input_shape

    def compute_mask(self, mask):
        """The mask the next layer receives (default: unchanged)."""
        return mask

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype.name}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"
