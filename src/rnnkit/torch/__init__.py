"""``rnnkit.torch``: drop-in replacements for ``torch.nn.RNN``, ``torch.nn.LSTM`` and ``torch.nn.GRU``
on CPU, computed by rnnkit's kernels and trained by PyTorch's autograd::

    import rnnkit.torch as rnn            # instead of: from torch import nn as rnn
    lstm = rnn.LSTM(128, 256, num_layers=2, batch_first=True)
    out, (h_n, c_n) = lstm(x)             # the same contract, parameters and state_dict as torch.nn

The classes subclass their ``torch.nn`` namesakes (``isinstance(m, torch.nn.LSTM)`` holds) and keep
their constructors, parameters (names, shapes, registration order, initialisation), ``state_dict``,
``extra_repr`` and input checks; only ``forward`` changes. It runs every layer and direction through
rnnkit's native forward, and — when a gradient is needed — its native BPTT behind a
``torch.autograd.Function`` (``rnnkit.torch._function``). PyTorch's gate orders and two biases are
mapped onto rnnkit's Keras layout on every call (``rnnkit.torch._mapping``), so optimizers may change
the parameters freely. PackedSequence inputs run as rnnkit masks (lengths), not shrinking batches.

Supported: float32 and float64 CPU tensors; ``proj_size`` is not (ValueError). ``dropout`` between
layers as ``torch.nn`` (training mode only; the random masks differ from ``torch.nn``'s).

Threads: rnnkit's kernels use ``torch.get_num_threads()`` threads (read at every forward) unless
:func:`set_num_threads` or ``rnnkit.set_num_threads`` chose a number. See the README ("PyTorch
drop-in") about the two OpenMP runtimes in one process.

This package is imported only as ``import rnnkit.torch``; ``import rnnkit`` never imports PyTorch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit import _backend
from rnnkit.torch._function import RecurrentFunction, Spec, infer

__all__ = ["RNN", "LSTM", "GRU", "set_num_threads", "get_num_threads"]

_threads: int | None = None  # set_num_threads(n); None: follow torch.get_num_threads()
_applied: int | None = None  # the count last given to the native module from here


def set_num_threads(n: int | None) -> None:
    """Threads of rnnkit's kernels inside ``rnnkit.torch`` modules: a positive int, or None to follow
    ``torch.get_num_threads()`` (the default; read at every forward)."""
    global _threads
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int or None, got {n!r}")
        n = int(n)
    _threads = n


def get_num_threads() -> int:
    """The number of threads rnnkit's kernels will use in the next ``rnnkit.torch`` forward."""
    if _threads is not None:
        return _threads
    if _backend._requested_threads is not None:  # rnnkit.set_num_threads was called: respect it
        return _backend._requested_threads
    return torch.get_num_threads()


def _sync_threads() -> None:
    global _applied
    if _threads is None and _backend._requested_threads is not None:
        return  # the user chose rnnkit's thread count with rnnkit.set_num_threads
    want = get_num_threads()
    if want != _applied:
        native = _backend._load_native()
        if native is not None:
            native.set_num_threads(want)  # not rnnkit.set_num_threads: that would mark it explicit
        _applied = want


_CELLS = {"RNN_TANH": ("simple_rnn", "tanh"), "RNN_RELU": ("simple_rnn", "relu"),
          "LSTM": ("lstm", "tanh"), "GRU": ("gru", "tanh")}
_DTYPES = (torch.float32, torch.float64)


def _check_device(t: torch.Tensor, what: str) -> None:
    if t.device.type != "cpu":
        raise RuntimeError(f"rnnkit.torch computes on the CPU only; {what} is on {t.device} "
                           "(use torch.nn's module for other devices, or move the tensors with .cpu())")


def _check_device_arg(device) -> None:
    if device is not None and torch.device(device).type != "cpu":
        raise ValueError(f"rnnkit.torch modules live on the CPU only, got device={device!r}")


class _RnnkitRNNBase:
    """The shared forward of the three modules (mixed in before the torch.nn class)."""

    def _rnnkit_init_check(self):
        if self.proj_size:
            raise ValueError("rnnkit.torch.LSTM does not support proj_size > 0")

    def _layer_weights(self):
        return [[getattr(self, name) if hasattr(self, name) else None for name in names]
                for names in self._all_weights]

    def forward(self, input, hx=None):  # noqa: C901 -- mirrors torch.nn's forward, branch by branch
        cell, activation = _CELLS[self.mode]
        is_lstm = cell == "lstm"
        name = self.mode.split("_")[0]
        weights = self._layer_weights()
        dtype = weights[0][0].dtype
        for layer in weights:
            for w in layer:
                if w is not None:
                    _check_device(w, "a parameter")
        if dtype not in _DTYPES:
            raise TypeError(f"rnnkit.torch computes float32 and float64, this {name} has {dtype} "
                            "parameters (convert with .float() or .double())")
        directions = 2 if self.bidirectional else 1
        packed = isinstance(input, PackedSequence)
        hx_list = () if hx is None else (hx if is_lstm and isinstance(hx, (tuple, list)) else (hx,))
        for t in hx_list:
            _check_device(t, "hx")

        lengths = None
        if packed:
            data, batch_sizes, sorted_indices, unsorted_indices = input
            _check_device(data, "the input")
            self.check_input(data, batch_sizes)
            x, length_tensor = pad_packed_sequence(input, batch_first=True)  # original batch order
            lengths = length_tensor.numpy().astype(np.int64)
            if hx is not None:
                self.check_forward_args(data, hx, batch_sizes)
            is_batched = True
        else:
            if not isinstance(input, torch.Tensor):
                raise TypeError(f"input must be a torch.Tensor or a PackedSequence, got {type(input).__name__}")
            _check_device(input, "the input")
            if input.dim() not in (2, 3):
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D instead")
            is_batched = input.dim() == 3
            batch_dim = 0 if self.batch_first else 1
            if not is_batched:
                input = input.unsqueeze(batch_dim)
                if hx is not None:
                    if is_lstm:
                        if hx[0].dim() != 2 or hx[1].dim() != 2:
                            raise RuntimeError("For unbatched 2-D input, hx and cx should also be 2-D but got "
                                               f"({hx[0].dim()}-D, {hx[1].dim()}-D) tensors")
                        hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
                    else:
                        if hx.dim() != 2:
                            raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got "
                                               f"{hx.dim()}-D tensor")
                        hx = hx.unsqueeze(1)
            elif hx is not None:
                if is_lstm and (hx[0].dim() != 3 or hx[1].dim() != 3):
                    raise RuntimeError("For batched 3-D input, hx and cx should also be 3-D but got "
                                       f"({hx[0].dim()}-D, {hx[1].dim()}-D) tensors")
                if not is_lstm and hx.dim() != 3:
                    raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got {hx.dim()}-D tensor")
            if hx is None:
                self.check_input(input, None)
            else:
                self.check_forward_args(input, hx, None)
            x = input if self.batch_first else input.transpose(0, 1)
        x = x.contiguous()  # (B, T, I), batch-major as rnnkit's kernels read it

        h_all = c_all = None
        if hx is not None:
            h_all, c_all = (hx[0], hx[1]) if is_lstm else (hx, None)
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or any(w is not None and w.requires_grad for layer in weights for w in layer)
            or (h_all is not None and h_all.requires_grad) or (c_all is not None and c_all.requires_grad))
        _sync_threads()

        h_n, c_n = [], []
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                k = layer * directions + direction
                w_ih, w_hh, b_ih, b_hh = (weights[k] + [None, None])[:4]
                h0 = None if h_all is None else h_all[k]
                c0 = None if c_all is None else c_all[k]
                spec = Spec(cell, activation, direction == 1, lengths)
                if needs_grad:
                    out, h, c = RecurrentFunction.apply(spec, layer_input, h0, c0, w_ih, w_hh, b_ih, b_hh)
                else:
                    out, h, c = infer(spec, layer_input, h0, c0, w_ih, w_hh, b_ih, b_hh, self, k)
                if direction == 1:
                    out = out.flip(1)  # processing order -> input time order, as torch.nn returns it
                outputs.append(out)
                h_n.append(h)
                c_n.append(c)
            layer_input = outputs[0] if directions == 1 else torch.cat(outputs, 2)
            if self.dropout and self.training and layer + 1 < self.num_layers:
                layer_input = torch.nn.functional.dropout(layer_input, self.dropout, training=True)
        output = layer_input  # (B, T, D·H)
        hidden = torch.stack(h_n)
        if is_lstm:
            hidden = (hidden, torch.stack(c_n))

        if packed:
            length_tensor = torch.from_numpy(lengths)
            if sorted_indices is not None:
                output = output.index_select(0, sorted_indices)
                length_tensor = length_tensor.index_select(0, sorted_indices)
            data_out = pack_padded_sequence(output, length_tensor, batch_first=True, enforce_sorted=True).data
            return PackedSequence(data_out, batch_sizes, sorted_indices, unsorted_indices), hidden
        if not self.batch_first:
            output = output.transpose(0, 1).contiguous()
        if not is_batched:
            output = output.squeeze(batch_dim)
            hidden = (hidden[0].squeeze(1), hidden[1].squeeze(1)) if is_lstm else hidden.squeeze(1)
        return output, hidden


class RNN(_RnnkitRNNBase, torch.nn.RNN):
    """``torch.nn.RNN`` (tanh or relu) computed by rnnkit: the same arguments, parameters and results."""

    def __init__(self, *args, **kwargs):
        _check_device_arg(kwargs.get("device"))
        super().__init__(*args, **kwargs)


class LSTM(_RnnkitRNNBase, torch.nn.LSTM):
    """``torch.nn.LSTM`` computed by rnnkit (``proj_size`` unsupported): the same arguments, parameters
    and results."""

    def __init__(self, *args, **kwargs):
        _check_device_arg(kwargs.get("device"))
        super().__init__(*args, **kwargs)
        self._rnnkit_init_check()


class GRU(_RnnkitRNNBase, torch.nn.GRU):
    """``torch.nn.GRU`` computed by rnnkit: the same arguments, parameters and results."""

    def __init__(self, *args, **kwargs):
        _check_device_arg(kwargs.get("device"))
        super().__init__(*args, **kwargs)
