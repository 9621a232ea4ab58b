"""The data of ``fit`` / ``evaluate`` / ``predict``: checked, masked and cut into batches.

x (N, ...), y (N, ...), sample_weight (N,) or (N, T) and the (N, T) bool mask (from ``lengths=`` or
``mask=``) travel together as one :class:`Data`; ``Data.batches`` slices them alike (views when in
order, a gathered copy per batch when shuffled).
"""

from __future__ import annotations

import numpy as np

from ._validation import canonical_mask, lengths_to_mask

__all__ = ["Data", "prepare_data", "prepare_inputs", "split_validation", "check_verbose", "check_epochs", "as_data",
           "data_mask"]


def check_verbose(verbose):
    if verbose == "auto":
        return 1
    if isinstance(verbose, (bool, np.bool_)) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0 (silent), 1 (progress bar), 2 (one line per epoch) or "
                         f"'auto', got {verbose!r}")
    return int(verbose)


def check_epochs(epochs):
    if isinstance(epochs, (bool, np.bool_)) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    return int(epochs)


def as_data(value, name):
    if value is None:
        raise ValueError(f"{name} must be an array, got None")
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{name} must have a sample axis (shape (N, ...)), got a scalar")
    return arr


def data_mask(x, lengths, mask, n):
    """The (N, T) bool mask from ``lengths`` (N,) or ``mask`` (N, T), or None."""
    if lengths is None and mask is None:
        return None
    if lengths is not None and mask is not None:
        raise ValueError("pass either mask or lengths, not both (lengths is shorthand for a mask)")
    if x.ndim < 2:
        raise ValueError(f"lengths/mask need sequence inputs x of shape (N, T, ...), got x of shape "
                         f"{x.shape}")
    if lengths is not None:
        return lengths_to_mask(lengths, n, x.shape[1])
    return canonical_mask(mask, n, x.shape[1])


def _take(arr, index):
    if arr is None:
        return None
    if isinstance(arr, list):   # several inputs or outputs
        return [a[index] for a in arr]
    return arr[index]


class Data:
    """x, y, sample_weight and mask of one data set, sliced together into batches. ``x`` / ``y``
    are arrays, or lists of arrays for models with several inputs / outputs."""

    def __init__(self, x, y=None, sample_weight=None, mask=None):
        self.x, self.y, self.sample_weight, self.mask = x, y, sample_weight, mask

    def __len__(self):
        return len(self.x[0] if isinstance(self.x, list) else self.x)

    def take(self, index):
        return Data(_take(self.x, index), _take(self.y, index), _take(self.sample_weight, index),
                    _take(self.mask, index))

    def batches(self, batch_size, order=None):
        """Yield batches in ``order`` (an index permutation) or sequentially (views, no copies)."""
        n = len(self)
        for start in range(0, n, batch_size):
            if order is None:
                yield self.take(slice(start, start + batch_size))
            else:
                yield self.take(order[start:start + batch_size])


def _as_data_list(value, name):
    """An array, or (a list given for several inputs/outputs) a list of arrays of equal length."""
    if not isinstance(value, list):
        return as_data(value, name)
    arrays = [as_data(v, f"{name}[{i}]") for i, v in enumerate(value)]
    for i, a in enumerate(arrays[1:], 1):
        if len(a) != len(arrays[0]):
            raise ValueError(f"{name}[{i}] has {len(a)} samples but {name}[0] has {len(arrays[0])}; "
                             f"every array must have one row per sample")
    return arrays


def _first(value):
    return value[0] if isinstance(value, list) else value


def prepare_inputs(x, lengths, mask):
    """``model(x)``'s inputs: (x checked, the mask) — any number of samples, zero included."""
    x = _as_data_list(x, "x")
    first = _first(x)
    return x, data_mask(first, lengths, mask, len(first))


def prepare_data(x, y, sample_weight, lengths, mask, need_y=True):
    """Check and bundle the data. ``x`` / ``y`` may be lists (several inputs / outputs; the model
    turned tuples and dicts into lists); ``lengths`` / ``mask`` describe the first input."""
    x = _as_data_list(x, "x")
    n = len(_first(x))
    if n == 0:
        raise ValueError("x must hold at least one sample, got 0")
    if need_y:
        y = _as_data_list(y, "y")
        if len(_first(y)) != n:
            raise ValueError(f"x and y must have the same number of samples, got {n} and "
                             f"{len(_first(y))}")
    if sample_weight is not None:
        sample_weight = as_data(sample_weight, "sample_weight")
        if len(sample_weight) != n:
            raise ValueError(f"sample_weight must have one entry per sample ({n}), "
                             f"got {len(sample_weight)}")
    return Data(x, y, sample_weight, data_mask(_first(x), lengths, mask, n))


def split_validation(data, validation_data, validation_split, prepare=prepare_data):
    """``fit``'s (training data, validation data or None): ``validation_data`` wins over
    ``validation_split`` (the *last* samples, before shuffling), as in Keras. ``prepare`` checks
    validation_data (the model's, which knows its inputs and outputs)."""
    if isinstance(validation_split, (bool, np.bool_)) or not isinstance(
            validation_split, (int, float, np.integer, np.floating)):
        raise TypeError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
    if not 0.0 <= float(validation_split) < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (x_val, y_val) or "
                             "(x_val, y_val, sample_weight_val)")
        val_sw = validation_data[2] if len(validation_data) == 3 else None
        return data, prepare(validation_data[0], validation_data[1], val_sw, None, None)
    if validation_split > 0:
        n = len(data)
        split_at = int(n * (1.0 - validation_split))
        if split_at == 0 or split_at == n:
            raise ValueError(f"validation_split={validation_split} of {n} samples leaves "
                             f"{split_at} for training and {n - split_at} for validation; "
                             f"both must be >= 1")
        return data.take(slice(0, split_at)), data.take(slice(split_at, n))
    return data, None
