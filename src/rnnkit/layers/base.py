"""The Layer base class shared by every rnnkit layer.

A layer is a pair of functions, ``__call__`` (forward) and ``backward``, around a list of parameter
arrays. The contract every layer keeps:

- ``layer(x, training=False, mask=None, ...)`` returns the output; with ``training=True`` it keeps
  what ``backward`` needs.
- ``layer.backward(d_output)`` returns the gradient with respect to the input of the last training
  call and *overwrites* ``layer.grads`` (same order and shapes as ``get_weights()``).
- ``layer.weights`` lists the live parameter arrays. They are read-only (rnnkit._weights): the
  routes that change them are ``set_weights()`` (checks shapes and copies in), an optimizer step
  (updates them in place) and, on recurrent layers, assigning ``layer.kernel`` etc. — so a packed
  copy of the weights can never go stale. ``get_weights()`` returns writeable copies.
- ``compute_mask(mask)`` says which mask (if any) the next layer receives.
- ``get_config()`` returns the constructor arguments (JSON-serialisable) for ``save``/``load_model``.
- Called on symbolic tensors (``rnnkit.Input`` or another layer's output on one) a layer records a
  graph node instead of computing (layers/symbolic.py; ``rnnkit.Model(inputs, outputs)``).
- ``input_shape=`` (the sample shape, without the batch axis) or ``input_dim=`` (the features) may
  be given to any layer's constructor, as in Keras 2: a ``Sequential`` whose first layer has one is
  built at once. ``input_dim=I`` means ``input_shape=(None, I)`` for recurrent layers (sequences of
  any length) and ``(I,)`` otherwise; Embedding's own ``input_dim`` stays its vocabulary size.
- ``clear_training_cache()`` forgets what the last call kept (``fit`` / ``evaluate`` /
  ``predict`` call it on every layer when they finish), so a trained layer holds only its weights.
- Layers pickle and ``copy.deepcopy``: configuration, weights and the state a call depends on
  (stateful states, a Dropout's random stream) go along; the training cache and attributes derived
  from the weights (rebuilt lazily) do not. A layer unpickled from a training call needs another
  training call before ``backward``.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from .. import _weights as weight_locks
from .._validation import as_array, check_positive_int, format_shape

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


# -- helpers shared by the layer implementations (core.py, recurrent.py) ----------------------------

def check_seed(seed, name="seed"):
    """A constructor's ``seed``: None or a non-negative int (bools rejected) -> None or int."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be a non-negative integer or None, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{name} must be a non-negative integer or None, got {seed}")
    return int(seed)


def build_input_dim(layer, input_shape):
    """For ``build``: the input size I of ``input_shape`` (an int I, or a shape tuple whose last entry
    is I; checked >= 1), or None when ``layer`` is already built for that I (nothing to do). A layer
    built for another I raises ValueError. ``layer`` has ``name``, ``built`` and ``input_dim``."""
    if isinstance(input_shape, (tuple, list)):
        if not input_shape:
            raise ValueError(f"{layer.name}: input_shape must be an int or a non-empty shape tuple, "
                             f"got {input_shape!r}")
        input_shape = input_shape[-1]
    input_dim = check_positive_int(input_shape, "input_shape")
    if layer.built:
        if input_dim != layer.input_dim:
            raise ValueError(f"layer {layer.name!r} was built for {layer.input_dim} input features, "
                             f"got input_shape with {input_dim}")
        return None
    return input_dim


def checked_weight(value, shape, dtype, label):
    """What an initializer returned, as an owned C-contiguous ``dtype`` array of ``shape``.

    Initializers may be user callables: insist on the shape (``label`` names the initializer in the
    error) and never keep a reference to the returned object."""
    arr = np.array(value, dtype=dtype, order="C")
    if arr.shape != shape:
        raise ValueError(f"{label} returned an array of shape {format_shape(arr.shape)}, "
                         f"expected {format_shape(shape)}")
    return arr


def initialized_weight(initializer, shape, dtype, rng, label):
    """A new weight ``initializer(shape, dtype, rng)``, checked by :func:`checked_weight`."""
    return checked_weight(initializer(shape, dtype, rng), shape, dtype, label)


def training_cache(layer, value):
    """``value`` (what the last training call kept), or the ValueError of a backward without one."""
    if value is None:
        raise ValueError(f"layer {layer.name!r}: call the layer with training=True before backward")
    return value


def check_d_output(d_output, shape):
    """``d_output`` as an array of the given shape (that of the last training call's output)."""
    d_output = as_array(d_output, "d_output")
    if d_output.shape != shape:
        raise ValueError(f"d_output must have shape {format_shape(shape)} (the output of the last "
                         f"training call), got {format_shape(d_output.shape)}")
    return d_output


class Layer:
    """Base class. Subclasses set ``self._weights`` (list of arrays) in ``build`` and implement
    ``call``-style ``__call__``, ``backward``, ``compute_output_shape`` and ``get_config``."""

    #: names of the weights, in ``get_weights()`` order (e.g. ["kernel", "recurrent_kernel", "bias"])
    weight_names: tuple = ()
    #: attributes holding what the last call kept: for ``backward`` after a training call (the ops
    #: cache, shapes, masks), or for the model right after any call (``Dense.logits``, the mask an
    #: Embedding / Masking layer produced). ``clear_training_cache()`` sets them to None; pickles and
    #: deep copies leave them out (None after unpickling). Each layer class lists its own.
    _training_cache_attrs: tuple = ()
    #: attributes derived from the weights and rebuilt lazily when None (e.g. packed weights):
    #: pickles and deep copies leave them out and the copy starts with None.
    _derived_attrs: tuple = ()
    #: results of the last ``backward`` (gradients with respect to weights and initial states):
    #: kept in pickles, set to None by ``clear_training_cache()``
    _gradient_attrs: tuple = ("grads",)

    #: the sample shape given by ``input_shape=`` / ``input_dim=`` (without the batch axis), or None
    declared_input_shape = None
    #: ``input_dim=I`` means ``input_shape=(None, I)`` (set by layers reading sequences)
    _input_dim_is_per_step = False

    def __init_subclass__(cls, **kwargs):
        """Let every layer constructor take Keras 2's ``input_shape=`` / ``input_dim=`` keywords
        (unless the class has its own ``input_dim`` argument, like Embedding)."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        takes_input_dim = "input_dim" in inspect.signature(init).parameters

        @functools.wraps(init)
        def __init__(self, *args, input_shape=None, **kw):
            input_dim = None if takes_input_dim else kw.pop("input_dim", None)
            init(self, *args, **kw)
            if input_shape is not None or input_dim is not None:
                self._declare_input_shape(input_shape, input_dim)

        cls.__init__ = __init__

    def _declare_input_shape(self, input_shape, input_dim):
        if input_shape is not None and input_dim is not None:
            raise ValueError(f"layer {self.name!r}: pass input_shape or input_dim, not both")
        if input_dim is not None:
            input_dim = check_positive_int(input_dim, "input_dim")
            shape = (None, input_dim) if self._input_dim_is_per_step else (input_dim,)
        else:
            if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
                input_shape = (input_shape,)
            if not isinstance(input_shape, (tuple, list)) or not input_shape:
                raise TypeError(f"input_shape must be the shape of one sample (without the batch "
                                f"axis), e.g. (time, features), got {input_shape!r}")
            shape = tuple(None if d is None else check_positive_int(d, f"input_shape[{i}]")
                          for i, d in enumerate(input_shape))
        self.declared_input_shape = shape

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
        """The live weight arrays (read-only; a new list each time, in ``get_weights()`` order)."""
        return list(self._weights)

    def _own_weights(self, arrays) -> list:
        """Make ``arrays`` (new, owning their data) this layer's weights: locked read-only."""
        self._weights = [weight_locks.lock(a) for a in arrays]
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
        self._write_weights(range(len(weights)), weights)

    def _write_weights(self, indices, values) -> None:
        """Copy ``values`` into the live weights at ``indices`` (shapes checked first, nothing written
        on an error), through rnnkit's write route (new stamps: packed copies are remade)."""
        values = [np.asarray(v) for v in values]
        for i, new in zip(indices, values):
            cur = self._weights[i]
            if new.shape != cur.shape:
                label = self.weight_names[i] if i < len(self.weight_names) else f"#{i}"
                raise ValueError(
                    f"weights[{i}] ({label}) of layer {self.name!r} must have shape {cur.shape}, "
                    f"got {new.shape}")
        targets = [self._weights[i] for i in indices]
        with weight_locks.unlocked(targets):
            for cur, new in zip(targets, values):
                cur[...] = new.astype(self.dtype, copy=False)

    def count_params(self) -> int:
        return int(sum(w.size for w in self._weights))

    # -- training cache, pickling and copies ---------------------------------------------------
    def clear_training_cache(self) -> None:
        """Forget what the last call kept (``_training_cache_attrs``) and the gradients of the last
        ``backward``, so the layer holds only its weights and configuration. ``backward`` then
        raises ValueError until the next call with ``training=True``."""
        for name in self._training_cache_attrs + self._gradient_attrs:
            setattr(self, name, None)

    def __getstate__(self):
        """The state pickled and deep-copied: everything but the training cache and the attributes
        derived from the weights. Arrays shared between attributes (``weights`` and the arrays an
        optimizer holds slots for) stay shared within one pickle or ``deepcopy``."""
        dropped = set(self._training_cache_attrs) | set(self._derived_attrs)
        return {k: v for k, v in self.__dict__.items() if k not in dropped}

    def __setstate__(self, state):
        self.__dict__.update(state)
        for name in self._training_cache_attrs + self._derived_attrs:
            setattr(self, name, None)
        # Unpickled dtypes are equal to, but not, NumPy's canonical dtype objects, which the kernels'
        # fast paths test by identity (else every call would copy the weights); see _weights.owned.
        self.dtype = np.dtype(self.dtype.name)
        # the copies come back writeable (or over immutable buffers): own and lock them
        self._weights = [weight_locks.lock(weight_locks.owned(w)) for w in self._weights]

    # -- per-call caches (a layer called several times in one graph) ----------------------------
    def _sublayers(self) -> list:
        """Layers this one runs inside (wrappers: Bidirectional, TimeDistributed)."""
        return []

    def _cache_state(self):
        """What the last call kept for ``backward`` (here and in sublayers), to restore with
        :meth:`_set_cache_state` before the backward of that call when other calls came between."""
        return ([getattr(self, a) for a in self._training_cache_attrs],
                [layer._cache_state() for layer in self._sublayers()])

    def _set_cache_state(self, state) -> None:
        values, sub = state
        for attr, value in zip(self._training_cache_attrs, values):
            setattr(self, attr, value)
        for layer, sub_state in zip(self._sublayers(), sub):
            layer._set_cache_state(sub_state)

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
