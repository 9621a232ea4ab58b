"""Merge layers (Keras's): combine a list of inputs of one shape into one output.

``Concatenate(axis=-1)`` joins along an axis (the other axes equal); ``Add``, ``Multiply`` and
``Average`` combine element-wise (equal shapes). ``backward(d_output)`` returns the list of input
gradients. Masks: the output mask is the AND of the inputs' masks that exist (Keras).
"""

from __future__ import annotations

import numpy as np

from .._validation import as_array, format_shape
from .base import Layer, check_d_output, register_layer, training_cache
from .symbolic import is_symbolic, symbolic_call

__all__ = ["Concatenate", "Add", "Multiply", "Average"]


class _Merge(Layer):
    _training_cache_attrs = ("_inputs", "_output_shape")

    def __init__(self, dtype="float32", name=None):
        super().__init__(dtype=dtype, name=name)
        self.built = True
        self._inputs = None
        self._output_shape = None

    def build(self, input_shape=None) -> None:
        if input_shape is not None:
            self._check_shapes(input_shape)
        self.built = True

    def _check_shapes(self, shapes):
        if not isinstance(shapes, (list, tuple)) or len(shapes) < 2 or not all(
                isinstance(s, (list, tuple)) for s in shapes):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) must be called on a list of "
                             f"at least 2 inputs, got {shapes!r}")
        first = tuple(shapes[0])
        for i, s in enumerate(shapes[1:], 1):
            if not self._compatible(first, tuple(s)):
                raise ValueError(f"layer {self.name!r} ({type(self).__name__}): input {i} has shape "
                                 f"{format_shape(tuple(s))}, incompatible with input 0's "
                                 f"{format_shape(first)}{self._rule}")

    _rule = " (element-wise merges need equal shapes)"

    @staticmethod
    def _dims_agree(a, b):
        return a is None or b is None or a == b

    def _compatible(self, a, b):
        return len(a) == len(b) and all(self._dims_agree(x, y) for x, y in zip(a, b))

    def __call__(self, inputs, training=False, mask=None):
        if is_symbolic(inputs):
            self._check_shapes([getattr(t, "shape", None) for t in inputs])
            return symbolic_call(self, list(inputs))
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) must be called on a list of "
                             f"inputs, got {type(inputs).__name__}")
        arrays = [as_array(x, f"inputs[{i}]") for i, x in enumerate(inputs)]
        self._check_shapes([a.shape for a in arrays])
        y = self._merge(arrays)
        if training:
            self._inputs = arrays
            self._output_shape = y.shape
        return y

    def backward(self, d_output):
        inputs = training_cache(self, self._inputs)
        d_output = check_d_output(d_output, self._output_shape)
        self.grads = []
        return self._unmerge(d_output, inputs)

    def compute_mask(self, mask):
        if not isinstance(mask, (list, tuple)):
            return mask
        masks = [m for m in mask if m is not None]
        if not masks:
            return None
        out = masks[0]
        for m in masks[1:]:
            if np.shape(m) == np.shape(out):
                out = out & m
        return out

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        return tuple(next((d for d in dims if d is not None), None) for dims in zip(*shapes))


@register_layer
class Add(_Merge):
    """Element-wise sum of the inputs."""

    def _merge(self, arrays):
        y = arrays[0]
        for a in arrays[1:]:
            y = y + a
        return y

    def _unmerge(self, d, inputs):
        return [d.copy() for _ in inputs]


@register_layer
class Average(_Merge):
    """Element-wise mean of the inputs."""

    def _merge(self, arrays):
        y = arrays[0]
        for a in arrays[1:]:
            y = y + a
        return y / y.dtype.type(len(arrays)) if y.dtype.kind == "f" else y / len(arrays)

    def _unmerge(self, d, inputs):
        return [d / d.dtype.type(len(inputs)) for _ in inputs]


@register_layer
class Multiply(_Merge):
    """Element-wise product of the inputs."""

    def _merge(self, arrays):
        y = arrays[0]
        for a in arrays[1:]:
            y = y * a
        return y

    def _unmerge(self, d, inputs):
        grads = []
        for i in range(len(inputs)):
            g = d
            for j, x in enumerate(inputs):
                if j != i:
                    g = g * x
            grads.append(g)
        return grads


@register_layer
class Concatenate(_Merge):
    """Join the inputs along ``axis`` (default the last); the other axes must agree."""

    _rule = " (Concatenate needs equal shapes except along its axis)"

    def __init__(self, axis=-1, dtype="float32", name=None):
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis must be an int, got {axis!r}")
        self.axis = int(axis)
        super().__init__(dtype=dtype, name=name)

    def _compatible(self, a, b):
        if len(a) != len(b):
            return False
        axis = self.axis % len(a)
        if axis == 0:
            return False
        return all(i == axis or self._dims_agree(x, y) for i, (x, y) in enumerate(zip(a, b)))

    def _merge(self, arrays):
        return np.concatenate(arrays, axis=self.axis)

    def _unmerge(self, d, inputs):
        sizes = np.cumsum([x.shape[self.axis] for x in inputs])[:-1]
        return [np.ascontiguousarray(part) for part in np.split(d, sizes, axis=self.axis)]

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        axis = self.axis % len(shapes[0])
        out = list(super().compute_output_shape(shapes))
        sizes = [s[axis] for s in shapes]
        out[axis] = None if None in sizes else sum(sizes)
        return tuple(out)

    def compute_mask(self, mask):
        # masks describe (B, T); concatenating along the feature axis keeps them
        if self.axis not in (-1, 2) and isinstance(mask, (list, tuple)) and any(m is not None for m in mask):
            return None
        return super().compute_mask(mask)

    def get_config(self) -> dict:
        config = super().get_config()
        config["axis"] = self.axis
        return config
