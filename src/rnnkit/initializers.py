"""Weight initializers (Keras-compatible names, formulas and defaults).

An initializer is a callable ``init(shape, dtype, rng) -> np.ndarray``:

- ``shape`` a tuple of ints, ``dtype`` "float32" or "float64" (anything ``np.dtype`` accepts);
- ``rng`` a ``numpy.random.Generator`` supplied by the layer, so that a layer built with ``seed=s``
  always gets the same weights. An initializer constructed with its own ``seed`` ignores ``rng`` and
  returns the same values on every call (Keras semantics for seeded initializers); with neither, a
  fresh unseeded generator is used.

``get(identifier)`` turns a name ("glorot_uniform", "GlorotUniform", ...), a serialised config
``{"class_name": ..., "config": {...}}``, an instance or any callable into an initializer.
``serialize(init)`` is its inverse (used by the layers' ``get_config``).

Fan computation (``fan_in``, ``fan_out``) follows Keras: for a 2-D shape (I, O) they are I and O;
for more dimensions the leading dimensions are the receptive field.
"""

from __future__ import annotations

import math

import numpy as np

from ._config import Configurable, serialized

__all__ = [
    "Initializer", "GlorotUniform", "Orthogonal", "Identity", "Zeros", "Ones",
    "RandomNormal", "RandomUniform",
    "glorot_uniform", "orthogonal", "identity", "zeros", "ones", "random_normal", "random_uniform",
    "get", "serialize",
]


def _compute_fans(shape):
    """Keras's ``compute_fans``: (fan_in, fan_out) of a weight shape."""
    shape = tuple(shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer(Configurable):
    """Base class: subclasses implement ``__call__(shape, dtype="float32", rng=None)``."""

    #: True for initializers that draw random numbers (they accept ``seed``)
    seed = None

    def _rng(self, rng):
        # A seeded initializer is deterministic on its own; otherwise use the layer's generator.
        if self.seed is not None:
            return np.random.default_rng(self.seed)
        if rng is None:
            return np.random.default_rng()
        return rng

    def __call__(self, shape, dtype="float32", rng=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = None


class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype="float32", rng=None):
        return np.zeros(shape, dtype=dtype)


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype="float32", rng=None):
        return np.ones(shape, dtype=dtype)


class RandomNormal(Initializer):
    """Normal distribution N(mean, stddev²); Keras defaults mean 0, stddev 0.05."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = float(mean)
        self.stddev = float(stddev)
        self.seed = seed

    def __call__(self, shape, dtype="float32", rng=None):
        return self._rng(rng).normal(self.mean, self.stddev, size=shape).astype(dtype, copy=False)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    """Uniform distribution on [minval, maxval); Keras defaults -0.05, 0.05."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval = float(minval)
        self.maxval = float(maxval)
        self.seed = seed

    def __call__(self, shape, dtype="float32", rng=None):
        return self._rng(rng).uniform(self.minval, self.maxval, size=shape).astype(dtype, copy=False)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class GlorotUniform(Initializer):
    """Glorot/Xavier uniform: U(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out))."""

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype="float32", rng=None):
        fan_in, fan_out = _compute_fans(shape)
        limit = math.sqrt(6.0 / max(1.0, fan_in + fan_out))
        return self._rng(rng).uniform(-limit, limit, size=shape).astype(dtype, copy=False)

    def get_config(self):
        return {"seed": self.seed}


class Orthogonal(Initializer):
    """Orthogonal matrix times ``gain`` (Keras algorithm).

    The shape is flattened to (rows, cols) = (prod(shape[:-1]), shape[-1]); a normal matrix of shape
    (max, min) is QR-factorised, Q's columns get the signs of diag(R) (so the result is uniformly
    distributed over orthogonal matrices), and Q is transposed when rows < cols. Hence the result has
    orthonormal columns when rows >= cols and orthonormal rows otherwise — e.g. an LSTM recurrent
    kernel (H, 4H) has orthonormal rows.
    """

    def __init__(self, gain=1.0, seed=None):
        self.gain = float(gain)
        self.seed = seed

    def __call__(self, shape, dtype="float32", rng=None):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal initializer needs a shape with at least 2 dimensions, got {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self._rng(rng).normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        d = np.sign(np.diag(r))
        d[d == 0] = 1.0
        q *= d
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(dtype, copy=False)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """``gain`` times the identity; for a non-square 2-D shape, ``gain * eye(rows, cols)`` (Keras)."""

    def __init__(self, gain=1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype="float32", rng=None):
        shape = tuple(shape)
        if len(shape) != 2:
            raise ValueError(f"Identity initializer needs a 2-D shape, got {shape}")
        return (self.gain * np.eye(*shape)).astype(dtype, copy=False)

    def get_config(self):
        return {"gain": self.gain}


# Functional shorthands (Keras offers both spellings).
def glorot_uniform(shape, dtype="float32", rng=None):
    return GlorotUniform()(shape, dtype, rng)


def orthogonal(shape, dtype="float32", rng=None):
    return Orthogonal()(shape, dtype, rng)


def identity(shape, dtype="float32", rng=None):
    return Identity()(shape, dtype, rng)


def zeros(shape, dtype="float32", rng=None):
    return Zeros()(shape, dtype, rng)


def ones(shape, dtype="float32", rng=None):
    return Ones()(shape, dtype, rng)


def random_normal(shape, dtype="float32", rng=None):
    return RandomNormal()(shape, dtype, rng)


def random_uniform(shape, dtype="float32", rng=None):
    return RandomUniform()(shape, dtype, rng)


_CLASSES = {cls.__name__: cls for cls in
            (GlorotUniform, Orthogonal, Identity, Zeros, Ones, RandomNormal, RandomUniform)}

# Canonical (snake_case) names, as listed in error messages.
_NAMES = {
    "glorot_uniform": GlorotUniform, "orthogonal": Orthogonal, "identity": Identity,
    "zeros": Zeros, "ones": Ones, "random_normal": RandomNormal, "random_uniform": RandomUniform,
}
# Lookup key: lower case without underscores, so "glorot_uniform", "GlorotUniform" and
# "GLOROT_UNIFORM" all match; plus Keras's aliases.
_LOOKUP = {name.replace("_", ""): cls for name, cls in _NAMES.items()}
_LOOKUP.update({"zero": Zeros, "one": Ones, "normal": RandomNormal, "uniform": RandomUniform,
                "identityinitializer": Identity, "xavieruniform": GlorotUniform})


def get(identifier, argument="initializer"):
    """Return an initializer for ``identifier``.

    Accepts a name (case-insensitive, with or without underscores, Keras class names and aliases),
    a ``{"class_name": ..., "config": ...}`` dict as produced by :func:`serialize`, an
    :class:`Initializer` instance or any callable ``f(shape, dtype, rng)``. ``argument`` is the
    parameter name used in error messages (e.g. "kernel_initializer").
    """
    if isinstance(identifier, Initializer) or (callable(identifier) and not isinstance(identifier, type)):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"{argument}: unknown initializer class {identifier.get('class_name')!r}; "
                             f"valid: {sorted(_CLASSES)}")
        return cls.from_config(dict(identifier.get("config", {})))
    if isinstance(identifier, str):
        cls = _LOOKUP.get(identifier.lower().replace("_", ""))
        if cls is None:
            raise ValueError(f"{argument}: unknown initializer {identifier!r}; valid names: "
                             f"{', '.join(sorted(_NAMES))}")
        return cls()
    raise TypeError(f"{argument} must be an initializer name, instance or callable, "
                    f"got {type(identifier).__name__}")


def serialize(init, argument="initializer"):
    """JSON-serialisable form of an initializer, understood by :func:`get`.

    Only :class:`Initializer` instances can be serialised; a plain function cannot be rebuilt
    from a saved file, so it raises ValueError.
    """
    if isinstance(init, Initializer):
        return serialized(init)
    raise ValueError(f"{argument}: cannot serialise the custom callable {init!r}; "
                     f"use an rnnkit.initializers class to save this layer")
