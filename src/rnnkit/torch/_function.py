"""One recurrent layer in one direction: rnnkit's native forward and BPTT behind a
``torch.autograd.Function`` (training), or a plain forward call (inference).

Tensors cross to NumPy and back without copies: ``tensor.numpy()`` and ``torch.from_numpy`` share
memory for CPU tensors, so rnnkit reads PyTorch's contiguous inputs in place and PyTorch takes
ownership of rnnkit's result arrays. The only copies are the weight layout changes of
:mod:`rnnkit.torch._mapping` (one transpose per weight and call: the weights change every optimizer
step) and the batch-major transpose of a time-major input (done by the caller).
"""

from __future__ import annotations

import weakref

import numpy as np
import torch
from torch._C import _functions as _torch_functions

from rnnkit import ops
from rnnkit.ops.pack import WeightPack
from rnnkit.torch import _mapping

_FORWARD = {"simple_rnn": ops.simple_rnn_forward, "lstm": ops.lstm_forward, "gru": ops.gru_forward}
_BACKWARD = {"simple_rnn": ops.simple_rnn_backward, "lstm": ops.lstm_backward, "gru": ops.gru_backward}


class Spec:
    """What one call computes besides its tensors: ``cell`` ("simple_rnn" | "lstm" | "gru"),
    ``activation`` ("tanh" | "relu"), ``go_backwards``, ``lengths`` (NumPy int64 (B,) or None)."""

    __slots__ = ("cell", "activation", "go_backwards", "lengths")

    def __init__(self, cell, activation, go_backwards, lengths):
        self.cell = cell
        self.activation = activation
        self.go_backwards = go_backwards
        self.lengths = lengths


def _np(t: torch.Tensor | None):
    """A NumPy view of a contiguous CPU tensor (None passes through)."""
    if t is None:
        return None
    return t.detach().contiguous().numpy()


def _tensor(a):
    """A tensor sharing ``a``'s memory (rnnkit's results are fresh, writeable, C-contiguous arrays)."""
    if a is None:
        return None
    if not (a.flags.writeable and a.flags.c_contiguous):
        a = np.array(a, order="C", copy=True)
    return torch.from_numpy(a)


def _call(spec: Spec, x, h0, c0, w_ih, w_hh, b_ih, b_hh, training: bool):
    """Run rnnkit's forward. Returns (outputs (B,T,H), h_last, c_last | None, cache | None) as tensors
    (the cache stays rnnkit's)."""
    cell = spec.cell
    with torch.no_grad():
        kernel = _mapping.to_kernel(cell, w_ih.detach())
        recurrent_kernel = _mapping.to_kernel(cell, w_hh.detach())
        bias = _mapping.to_bias(cell, None if b_ih is None else b_ih.detach(),
                                None if b_hh is None else b_hh.detach())
    args = dict(activation=spec.activation, go_backwards=spec.go_backwards, lengths=spec.lengths,
                training=training)
    xs = _np(x)
    if cell == "lstm":
        out, h, c, cache = ops.lstm_forward(xs, kernel.numpy(), recurrent_kernel.numpy(), _np(bias),
                                            _np(h0), _np(c0), **args)
    elif cell == "gru":
        out, h, cache = ops.gru_forward(xs, kernel.numpy(), recurrent_kernel.numpy(), _np(bias), _np(h0),
                                        reset_after=True, **args)
        c = None
    else:
        out, h, cache = ops.simple_rnn_forward(xs, kernel.numpy(), recurrent_kernel.numpy(), _np(bias),
                                               _np(h0), **args)
        c = None
    # the cache refers to kernel / recurrent_kernel's arrays; they stay alive through it
    return _tensor(out), _tensor(h), _tensor(c), cache


class _InferenceWeights:
    """The converted weights of one layer and direction for inference calls, with their native
    packed layouts (a WeightPack) and a copy of the PyTorch parameters they were made from."""

    __slots__ = ("source", "kernel", "recurrent_kernel", "bias", "pack")

    def __init__(self, cell, params):
        with torch.no_grad():
            self.source = tuple(None if p is None else p.detach().clone() for p in params)
            w_ih, w_hh, b_ih, b_hh = self.source
            kernel = _mapping.to_kernel(cell, w_ih).numpy()
            recurrent_kernel = _mapping.to_kernel(cell, w_hh).numpy()
            bias = _mapping.to_bias(cell, b_ih, b_hh)
        kernel.flags.writeable = False
        recurrent_kernel.flags.writeable = False
        self.kernel, self.recurrent_kernel = kernel, recurrent_kernel
        self.bias = None if bias is None else bias.numpy()
        self.pack = WeightPack._of_locked(cell, kernel, recurrent_kernel)

    def matches(self, params) -> bool:
        """True if every parameter still equals the copy (a full comparison, not a version check:
        writes through ``param.data`` or NumPy views do not bump PyTorch's version counters)."""
        # NumPy's comparison on zero-copy views reads both at memory speed (2.4x faster than
        # torch.equal on a 1 MB parameter here: 25 vs 61 µs)
        return all((p is None) == (s is None) and (
            p is None or (p.shape == s.shape and np.array_equal(p.detach().numpy(), s.numpy())))
                   for p, s in zip(params, self.source))


# module -> {layer-direction index: _InferenceWeights}; entries die with their module
_inference_weights: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def infer(spec, x, h0, c0, w_ih, w_hh, b_ih, b_hh, module=None, index=0):
    """Inference: no cache, no autograd graph. With ``module``, the converted and packed weights are
    kept between calls (keyed by ``module`` and ``index``) while the parameters stay equal."""
    if module is None:
        out, h, c, _ = _call(spec, x, h0, c0, w_ih, w_hh, b_ih, b_hh, training=False)
        return out, h, c
    params = (w_ih, w_hh, b_ih, b_hh)
    entries = _inference_weights.setdefault(module, {})
    entry = entries.get(index)
    if entry is None or not entry.matches(params):
        entry = entries[index] = _InferenceWeights(spec.cell, params)
    args = dict(activation=spec.activation, go_backwards=spec.go_backwards, lengths=spec.lengths,
                training=False, pack=entry.pack)
    weights = (_np(x), entry.kernel, entry.recurrent_kernel, entry.bias)
    if spec.cell == "lstm":
        out, h, c, _ = ops.lstm_forward(*weights, _np(h0), _np(c0), **args)
    elif spec.cell == "gru":
        out, h, _ = ops.gru_forward(*weights, _np(h0), reset_after=True, **args)
        c = None
    else:
        out, h, _ = ops.simple_rnn_forward(*weights, _np(h0), **args)
        c = None
    return _tensor(out), _tensor(h), _tensor(c)


_DOUBLE_BACKWARD = (b"rnnkit.torch does not support double backward (differentiating a gradient of its "
                    b"RNN/LSTM/GRU modules): rnnkit's BPTT runs natively and is not differentiable; "
                    b"use torch.nn's module for higher-order gradients")


class _CacheHolder:
    __slots__ = ("cache", "__weakref__")

    def __init__(self, cache):
        self.cache = cache

    def clear(self):
        self.cache = None


class RecurrentFunction(torch.autograd.Function):
    """``apply(spec, x, h0, c0, w_ih, w_hh, b_ih, b_hh)`` -> ``(outputs, h_last, c_last)``;
    ``outputs`` (B, T, H) in processing order (reversed in time for go_backwards), ``c_last`` a
    zero-size placeholder for RNN / GRU. h0, c0, b_ih, b_hh may be None."""

    @staticmethod
    def forward(ctx, spec, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        out, h, c, cache = _call(spec, x, h0, c0, w_ih, w_hh, b_ih, b_hh, training=True)
        ctx.spec = spec
        ctx.has = (h0 is not None, c0 is not None, b_ih is not None)
        # rnnkit's cache (activations for BPTT) lives as long as PyTorch's saved tensors of this node:
        # a sentinel tensor saved here dies when PyTorch frees them (after backward without
        # retain_graph, or with the graph), and its finalizer drops the cache then.
        ctx.holder = holder = _CacheHolder(cache)
        sentinel = x.new_empty(0)
        weakref.finalize(sentinel, holder.clear)
        # x too: rnnkit's cache reads x in place, and PyTorch's version check guards it
        ctx.save_for_backward(x, sentinel)
        ctx.set_materialize_grads(False)  # absent gradients reach rnnkit as None (= zero, no work)
        if c is None:
            c = out.new_empty(0)
            ctx.mark_non_differentiable(c)
        return out, h, c

    @staticmethod
    def backward(ctx, d_out, d_h, d_c):
        create_graph = torch.is_grad_enabled()  # backward(create_graph=True) runs with grad mode on
        with torch.no_grad():
            grads = RecurrentFunction._backward(ctx, d_out, d_h, d_c)
        if not create_graph:
            return grads
        # rnnkit's BPTT is not itself differentiable: gradients computed with create_graph=True
        # require grad, and differentiating them raises this error (as @once_differentiable does,
        # but also when the incoming gradients do not require grad)
        err_fn = _torch_functions.DelayedError(_DOUBLE_BACKWARD, len(grads))
        return err_fn(*[None if g is None else g.detach().requires_grad_(True) for g in grads])

    @staticmethod
    def _backward(ctx, d_out, d_h, d_c):
        ctx.saved_tensors  # noqa: B018 -- raises if x changed in place, or on a second backward
        spec, cache = ctx.spec, ctx.holder.cache
        cell = spec.cell
        d_out, d_h = _np(d_out), _np(d_h)
        if cell == "lstm":
            dx, dk, dr, db, dh0, dc0 = ops.lstm_backward(d_out, d_h, _np(d_c), cache)
        else:
            backward = ops.gru_backward if cell == "gru" else ops.simple_rnn_backward
            dx, dk, dr, db, dh0 = backward(d_out, d_h, cache)
            dc0 = None
        has_h0, has_c0, has_bias = ctx.has
        need = ctx.needs_input_grad
        d_w_ih = _mapping.from_kernel(cell, _tensor(dk)) if need[4] else None
        d_w_hh = _mapping.from_kernel(cell, _tensor(dr)) if need[5] else None
        d_b_ih = d_b_hh = None
        if has_bias and (need[6] or need[7]):
            d_b_ih, d_b_hh = _mapping.from_bias(cell, _tensor(db))
        return (None, _tensor(dx) if need[1] else None,
                _tensor(dh0) if has_h0 and need[2] else None,
                _tensor(dc0) if has_c0 and need[3] else None,
                d_w_ih, d_w_hh, d_b_ih if need[6] else None, d_b_hh if need[7] else None)
