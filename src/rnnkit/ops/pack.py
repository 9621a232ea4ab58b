"""Weights packed once for many inference calls: :class:`WeightPack` and :func:`pack_weights`.

A forward pass packs ``kernel`` and ``recurrent_kernel`` into the native micro-kernels' panel layout
before it runs. For training-sized batches that is a small part of a call; for serving — batch 1,
often one time step per call — it is most of it. A :class:`WeightPack` holds the two arrays
*read-only* and lets the native backend keep their packed layouts between calls::

    pack = rnnkit.ops.pack_weights("lstm", kernel, recurrent_kernel)      # read-only copies
    out, h, c, _ = rnnkit.ops.lstm_forward(x, pack.kernel, pack.recurrent_kernel, bias,
                                           pack=pack, training=False)

Because the pack owns read-only copies, it can never disagree with the arrays it is used with (the
forward functions insist on ``pack.kernel`` / ``pack.recurrent_kernel`` themselves). To change the
weights, make a new pack. Layers do all of this on their own (see ``RNN.__call__``); the NumPy
reference ignores packs.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_array, format_shape, weight_dtype

__all__ = ["WeightPack", "pack_weights"]

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


class WeightPack:
    """``kernel`` (I, G·H) and ``recurrent_kernel`` (H, G·H) of one ``cell``, read-only, with their
    native packed layouts made on first use (and kept while the pack lives).

    Attributes: ``cell``, ``gates`` (G), ``kernel``, ``recurrent_kernel``, ``packed_bytes`` (memory
    of the layouts made so far; 0 before the first native call)."""

    __slots__ = ("cell", "gates", "kernel", "recurrent_kernel", "_native")

    def __init__(self, cell, kernel, recurrent_kernel):
        """Copies ``kernel`` and ``recurrent_kernel`` (use :func:`pack_weights`)."""
        if cell not in GATES:
            raise ValueError(f"cell must be one of {sorted(GATES)}, got {cell!r}")
        kernel = as_array(kernel, "kernel")
        dtype = weight_dtype(kernel, "kernel")
        gates = GATES[cell]
        if kernel.ndim != 2 or kernel.shape[0] < 1 or kernel.shape[1] < gates or kernel.shape[1] % gates:
            raise ValueError(f"kernel must have shape (input_dim, {gates} * units), got "
                             f"{format_shape(kernel.shape)}")
        units = kernel.shape[1] // gates
        recurrent_kernel = as_array(recurrent_kernel, "recurrent_kernel")
        if recurrent_kernel.shape != (units, gates * units):
            raise ValueError(f"recurrent_kernel must have shape {format_shape((units, gates * units))}, got "
                             f"{format_shape(recurrent_kernel.shape)}")
        # one copy each, converted to the kernel's native-order dtype on the way
        self._init(cell, np.array(kernel, dtype=dtype, order="C", copy=True),
                   np.array(recurrent_kernel, dtype=dtype, order="C", copy=True))
        self.kernel.flags.writeable = False
        self.recurrent_kernel.flags.writeable = False

    def _init(self, cell, kernel, recurrent_kernel):
        self.cell = cell
        self.gates = GATES[cell]
        self.kernel = kernel
        self.recurrent_kernel = recurrent_kernel
        self._native = None

    @classmethod
    def _of_locked(cls, cell, kernel, recurrent_kernel) -> "WeightPack":
        """A pack of a layer's own weights, without copies: they are locked read-only and the layer
        makes a new pack whenever rnnkit writes into them (rnnkit._weights)."""
        pack = cls.__new__(cls)
        pack._init(cell, kernel, recurrent_kernel)
        return pack

    def native(self):
        """The ``rnnkit._native.WeightPack`` (made on the first native call)."""
        if self._native is None:
            from .. import _native
            self._native = _native.WeightPack(self.kernel, self.recurrent_kernel, self.gates)
        return self._native

    @property
    def packed_bytes(self) -> int:
        return 0 if self._native is None else int(self._native.packed_bytes)

    def __reduce__(self):  # a pickled pack is its weights; the layouts are made again
        return (WeightPack, (self.cell, self.kernel, self.recurrent_kernel))

    def __repr__(self):
        return (f"<WeightPack {self.cell} kernel {format_shape(self.kernel.shape)} "
                f"recurrent_kernel {format_shape(self.recurrent_kernel.shape)} {self.kernel.dtype}>")


def pack_weights(cell, kernel, recurrent_kernel) -> WeightPack:
    """A :class:`WeightPack` of read-only copies of ``kernel`` and ``recurrent_kernel`` for ``cell``
    ("simple_rnn" | "lstm" | "gru"); pass ``pack.kernel``, ``pack.recurrent_kernel`` and ``pack=pack``
    to the forward function."""
    return WeightPack(cell, kernel, recurrent_kernel)


def check_pack(pack, cell, kernel, recurrent_kernel) -> WeightPack:
    """``pack`` for a ``cell`` forward called with these (canonical) arrays, or a clear error."""
    if not isinstance(pack, WeightPack):
        raise TypeError(f"pack must be a rnnkit.ops.WeightPack or None, got {type(pack).__name__}")
    if pack.cell != cell:
        raise ValueError(f"pack holds {pack.cell} weights, this is {cell}_forward")
    if pack.kernel is not kernel or pack.recurrent_kernel is not recurrent_kernel:
        raise ValueError("pack was not made from this kernel and recurrent_kernel: pass pack.kernel "
                         "and pack.recurrent_kernel (the read-only arrays the pack holds)")
    return pack
