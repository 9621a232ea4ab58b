"""Argument checking shared by ``rnnkit.ops`` and the layers.

Every helper raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, wrong shape or
range) with a message that names the argument and says what was expected and what arrived::

    x must have shape (batch, time, 3), got (4, 7, 5)
    kernel must be a float32 or float64 array, got int64

Shape specs are tuples whose entries are ints (that size is required) or strings (a named dimension
of any size, printed as is), e.g. ``("batch", "time", 3)``.

The ``canonical_*`` helpers return arrays in the form the implementations require (C-contiguous,
native byte order, a given dtype). They return the argument itself when it is already canonical, so
a well-behaved caller pays no copy.
"""

from __future__ import annotations

import operator

import numpy as np

FLOAT32 = np.dtype(np.float32)
FLOAT64 = np.dtype(np.float64)
#: the dtypes weights may have, keyed by scalar type (so that '>f8' maps to native float64)
_WEIGHT_DTYPES = {np.float32: FLOAT32, np.float64: FLOAT64}
BOOL = np.dtype(np.bool_)

#: activations of SimpleRNN and of the candidate/output path of LSTM and GRU (docs/SPEC.md §3)
ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")
#: gate activations of LSTM and GRU (ARCHITECTURE.md)
RECURRENT_ACTIVATIONS = ("sigmoid", "hard_sigmoid", "tanh", "relu", "linear")

# dtype kinds accepted for data that is converted to the weights' dtype: bool, ints, floats
_NUMERIC_KINDS = "biuf"


def format_shape(shape) -> str:
    """``(4, 7, 5)`` -> ``"(4, 7, 5)"``; ``("batch", "time", 3)`` -> ``"(batch, time, 3)"``."""
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _type_name(value) -> str:
    return type(value).__name__


def as_array(value, name: str) -> np.ndarray:
    """Return ``value`` as an ndarray (no copy when it already is one).

    Raises TypeError naming ``name`` for values NumPy cannot turn into a numeric array
    (ragged lists, strings, objects). ndarrays are returned as they are: call :func:`check_numeric`
    (or a dtype check) on them.
    """
    if type(value) is np.ndarray:
        return value
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array, got {_type_name(value)} ({exc})") from None
    check_numeric(arr, name)
    return arr


def check_ndim(arr: np.ndarray, name: str, shape_spec) -> None:
    """Raise ValueError unless ``arr.ndim == len(shape_spec)`` (message shows the expected shape)."""
    if arr.ndim != len(shape_spec):
        raise ValueError(
            f"{name} must have shape {format_shape(shape_spec)} ({len(shape_spec)}-D), "
            f"got {arr.ndim}-D array of shape {format_shape(arr.shape)}"
        )


def check_shape(arr: np.ndarray, name: str, shape_spec, hint: str = "") -> None:
    """Raise ValueError unless ``arr.shape`` matches ``shape_spec``.

    String entries of the spec match any size; int entries must match exactly. ``hint`` is appended
    to the message (e.g. ``"for reset_after=True"``).
    """
    shape = arr.shape
    if shape == shape_spec:  # fast path: fully specified and matching
        return
    ok = len(shape) == len(shape_spec) and all(
        isinstance(want, str) or want == got for want, got in zip(shape_spec, shape)
    )
    if not ok:
        suffix = f" {hint}" if hint else ""
        raise ValueError(f"{name} must have shape {format_shape(shape_spec)}{suffix}, got {format_shape(shape)}")


def weight_dtype(arr: np.ndarray, name: str) -> np.dtype:
    """Return the native-byte-order float dtype of a weight array.

    Raises TypeError naming ``name`` unless ``arr`` is a float32 or float64 array (any byte order).
    Weights are never converted silently from integers: an integer kernel is almost always a bug.
    """
    dt = _WEIGHT_DTYPES.get(arr.dtype.type)
    if dt is None:
        raise TypeError(f"{name} must be a float32 or float64 array, got {arr.dtype}")
    return dt


def check_same_dtype(arr: np.ndarray, name: str, dtype: np.dtype, reference_name: str = "kernel") -> None:
    """Raise TypeError unless weight ``arr`` is float32/float64 and has the same dtype as ``reference_name``."""
    dt = weight_dtype(arr, name)
    if dt is not dtype:
        raise TypeError(f"{name} must have the same dtype as {reference_name} ({dtype}), got {arr.dtype}")


def check_numeric(arr: np.ndarray, name: str) -> None:
    """Raise TypeError unless ``arr`` holds bools, integers or floats (data that may be converted)."""
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"{name} must be a numeric array (bool, integer or float), got dtype {arr.dtype}")


def canonical(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Return ``arr`` as a C-contiguous array of ``dtype`` in native byte order.

    No copy when it already is one. ``dtype`` must be a native-order dtype object such as
    ``FLOAT32``; the conversion handles integers, float16, big-endian and strided inputs.
    """
    if arr.dtype is dtype and arr.flags.c_contiguous:
        return arr
    return np.ascontiguousarray(arr, dtype=dtype)


def canonical_data(value, name: str, dtype: np.dtype, shape_spec, hint: str = "") -> np.ndarray:
    """Check a data argument (x, h0, c0, incoming gradients) and convert it to ``dtype``.

    ``value`` may be any numeric array-like; it must have shape ``shape_spec`` (all ints here).
    """
    if (type(value) is np.ndarray and value.dtype is dtype and value.shape == shape_spec
            and value.flags.c_contiguous):
        return value  # fast path: already canonical
    arr = as_array(value, name)
    check_numeric(arr, name)
    check_shape(arr, name, shape_spec, hint)
    return canonical(arr, dtype)


def canonical_weight(value, name: str, dtype: np.dtype, shape_spec, hint: str = "") -> np.ndarray:
    """Check a weight array (float32/float64 of ``dtype``, shape ``shape_spec``) and make it C-contiguous."""
    if (type(value) is np.ndarray and value.dtype is dtype and value.shape == shape_spec
            and value.flags.c_contiguous):
        return value  # fast path: already canonical
    arr = as_array(value, name)
    check_same_dtype(arr, name, dtype)
    check_shape(arr, name, shape_spec, hint)
    return canonical(arr, dtype)


def canonical_mask(mask, batch: int, time: int) -> np.ndarray:
    """Check a mask (bool or integer array of shape (batch, time); nonzero = step used) -> C-contiguous bool."""
    arr = as_array(mask, "mask")
    if arr.dtype.kind not in "biu":
        raise TypeError(f"mask must be a boolean array of shape (batch, time), got dtype {arr.dtype}")
    check_shape(arr, "mask", (batch, time), hint="(batch, time)")
    if arr.dtype is BOOL and arr.flags.c_contiguous:
        return arr
    return np.ascontiguousarray(arr != 0)


def lengths_to_mask(lengths, batch: int, time: int) -> np.ndarray:
    """Check ``lengths`` (integers of shape (batch,), each in [0, time]) and return the bool mask
    ``arange(time) < lengths[:, None]`` of shape (batch, time)."""
    arr = as_array(lengths, "lengths")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an integer array of shape (batch,), got dtype {arr.dtype}")
    check_shape(arr, "lengths", (batch,), hint="(batch,)")
    if batch and (arr.min() < 0 or arr.max() > time):
        row = int(np.flatnonzero((arr < 0) | (arr > time))[0])
        raise ValueError(f"lengths must be in [0, time] = [0, {time}], got {arr[row]} at row {row}")
    return np.arange(time) < arr[:, None]


def sequence_mask(mask, lengths, batch: int, time: int):
    """The (batch, time) bool mask given by ``mask`` or ``lengths`` (shorthand for one), or None."""
    if lengths is not None:
        if mask is not None:
            raise ValueError("pass either mask or lengths, not both (lengths is shorthand for a mask)")
        return lengths_to_mask(lengths, batch, time)
    return None if mask is None else canonical_mask(mask, batch, time)


def check_activation(value, name: str = "activation", valid=ACTIVATIONS) -> str:
    """Return the lower-case activation name; ``None`` means ``"linear"`` (as in Keras).

    Raises TypeError for non-strings, ValueError naming ``name`` and listing ``valid`` for unknown names.
    """
    if type(value) is str and value in valid:  # already canonical (the common case)
        return value
    if value is None:
        key = "linear"
    elif isinstance(value, str):
        key = value.lower()
    else:
        raise TypeError(f"{name} must be a string (one of {', '.join(valid)}), got {_type_name(value)}")
    if key not in valid:
        raise ValueError(f"{name} must be one of {', '.join(valid)}, got {value!r}")
    return key


def check_cache(cache, cache_type: type, forward_name: str):
    """Return ``cache`` if it is a ``cache_type`` (what ``forward_name(..., training=True)`` returns).

    ValueError for None (forward ran with training=False), TypeError for anything else.
    """
    if type(cache) is cache_type:
        return cache
    if cache is None:
        raise ValueError(f"cache is None: call {forward_name}(..., training=True) to keep what backward needs")
    raise TypeError(
        f"cache must be the cache returned by {forward_name}(..., training=True), got {_type_name(cache)}"
    )


def check_bool(value, name: str) -> bool:
    """Return ``value`` as a Python bool; raise TypeError naming ``name`` unless it is a bool or numpy bool."""
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {_type_name(value)}")


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as an int >= 1 (Python or NumPy integer; bools rejected).

    TypeError naming ``name`` for non-integers, ValueError for values < 1.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a positive integer, got bool")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a positive integer, got {_type_name(value)}") from None
    if n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n}")
    return n
