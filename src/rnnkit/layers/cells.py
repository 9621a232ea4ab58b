"""The recurrent layers users build: SimpleRNN, LSTM, GRU and the layer-normalised LSTM / GRU. Each
says which cell it runs, its gate blocks and states, and how its bias (and any extra weights) are
shaped and initialised; everything else is :class:`rnnkit.layers.recurrent.RNN` (see its module
docstring for shapes and the calling convention; semantics: docs/SPEC.md §4–§11, §18)."""

from __future__ import annotations

import numpy as np

from .._validation import (RECURRENT_ACTIVATIONS, check_activation,
                           check_bool)
from .base import (register_layer)
from .recurrent import RNN

__all__ = ["SimpleRNN", "LSTM", "GRU", "LayerNormLSTM", "LayerNormGRU"]


@register_layer
class SimpleRNN(RNN):
    """Fully-connected RNN: ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``.

    Weights: kernel (I, H), recurrent_kernel (H, H), bias (H,); I·H + H·H + H parameters.
    """

    cell = "simple_rnn"
    gates = 1
    state_names = ("h",)

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, dtype="float32", seed=None,
                 name=None, dropout=0.0, recurrent_dropout=0.0, zoneout_h=0.0):
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, return_sequences, return_state, go_backwards, stateful,
                         dtype, seed, name, dropout=dropout, recurrent_dropout=recurrent_dropout,
                         zoneout_h=zoneout_h)


@register_layer
class LSTM(RNN):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), Keras gate order i, f, c, o.

    Weights: kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,); 4(I·H + H·H + H) parameters.
    States [h, c]. ``unit_forget_bias=True`` initialises the forget-gate block of the bias to 1.
    """

    cell = "lstm"
    gates = 4
    state_names = ("h", "c")

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 unit_forget_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, dtype="float32", seed=None,
                 name=None, dropout=0.0, recurrent_dropout=0.0, zoneout_h=0.0, zoneout_c=0.0,
                 proj_units=None):
        self.unit_forget_bias = check_bool(unit_forget_bias, "unit_forget_bias")
        recurrent_activation = check_activation(recurrent_activation, "recurrent_activation",
                                                RECURRENT_ACTIVATIONS)
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, return_sequences, return_state, go_backwards, stateful,
                         dtype, seed, name, cell_kwargs={"recurrent_activation": recurrent_activation},
                         dropout=dropout, recurrent_dropout=recurrent_dropout, zoneout_h=zoneout_h,
                         zoneout_c=zoneout_c, proj_units=proj_units)
        self.recurrent_activation = recurrent_activation

    def _init_bias(self, rng):
        if not self.unit_forget_bias:
            return super()._init_bias(rng)
        # Keras: bias_initializer for i, ones for f, bias_initializer for c and o.
        H = self.units
        return np.concatenate([self.bias_initializer((H,), self.dtype, rng), np.ones(H, self.dtype),
                               self.bias_initializer((2 * H,), self.dtype, rng)])

    def get_config(self) -> dict:
        config = super().get_config()
        config["unit_forget_bias"] = self.unit_forget_bias
        if self.zoneout_c:
            config["zoneout_c"] = self.zoneout_c
        if self.proj_units:
            config["proj_units"] = self.proj_units
        return config


@register_layer
class GRU(RNN):
    """Gated recurrent unit (Cho et al. 2014), Keras gate order z, r, h.

    Weights: kernel (I, 3H), recurrent_kernel (H, 3H), bias (2, 3H) with reset_after=True (row 0
    input bias, row 1 recurrent bias; the PyTorch/cuDNN variant) or (3H,) with reset_after=False.
    Parameters 3(I·H + H·H + 2H), resp. 3(I·H + H·H + H).
    """

    cell = "gru"
    gates = 3
    state_names = ("h",)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, reset_after=True, dtype="float32", seed=None,
                 name=None, dropout=0.0, recurrent_dropout=0.0, zoneout_h=0.0):
        recurrent_activation = check_activation(recurrent_activation, "recurrent_activation",
                                                RECURRENT_ACTIVATIONS)
        reset_after = check_bool(reset_after, "reset_after")
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, return_sequences, return_state, go_backwards, stateful,
                         dtype, seed, name,
                         cell_kwargs={"recurrent_activation": recurrent_activation,
                                      "reset_after": reset_after},
                         dropout=dropout, recurrent_dropout=recurrent_dropout, zoneout_h=zoneout_h)
        self.recurrent_activation = recurrent_activation
        self.reset_after = reset_after

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)


def _layer_norm_weights(layer, cell_norm):
    """LayerNorm{LSTM,GRU}: gamma_x, beta_x, gamma_h, beta_h (G·H,) [+ gamma_c, beta_c (H,)];
    gammas ones, betas zeros."""
    GH, H, dt = layer.gates * layer.units, layer.units, layer.dtype
    ones = lambda shape, rng: np.ones(shape, dt)    # noqa: E731
    zeros = lambda shape, rng: np.zeros(shape, dt)  # noqa: E731
    out = [("gamma_x", (GH,), ones), ("beta_x", (GH,), zeros), ("gamma_h", (GH,), ones), ("beta_h", (GH,), zeros)]
    if cell_norm:
        out += [("gamma_c", (H,), ones), ("beta_c", (H,), zeros)]
    return out


@register_layer
class LayerNormLSTM(LSTM):
    """LSTM with layer normalisation (haste's LayerNormLSTM, Ba et al. 2016; docs/SPEC.md §18.4):
    ``z = LN(x_t @ kernel; gamma_x, beta_x) + LN(h_{t-1} @ recurrent_kernel; gamma_h, beta_h) + bias``,
    ``h_t = o ⊙ act(LN(c_t; gamma_c, beta_c))`` (c_t itself is carried unnormalised), epsilon 1e-5.

    Weights: kernel, recurrent_kernel, bias (as LSTM), then gamma_x, beta_x, gamma_h, beta_h (4H,)
    and gamma_c, beta_c (H,); gammas start at 1, betas at 0. Runs on the NumPy reference for now
    (no native kernel yet: slow). Every LSTM argument applies (dropout, zoneout, proj_units...).
    """

    def _extra_weights(self):
        return super()._extra_weights() + _layer_norm_weights(self, True)


@register_layer
class LayerNormGRU(GRU):
    """GRU with layer normalisation (haste's LayerNormGRU; docs/SPEC.md §18.4), reset_after=True:
    ``xw = LN(x_t @ kernel; gamma_x, beta_x)``, ``hw = LN(h_{t-1} @ recurrent_kernel; gamma_h, beta_h)``,
    then the GRU of ``xw + bias[0]`` and ``hw + bias[1]``; epsilon 1e-5.

    Weights: kernel, recurrent_kernel, bias (2, 3H), then gamma_x, beta_x, gamma_h, beta_h (3H,).
    Runs on the NumPy reference for now (no native kernel yet: slow).
    """

    def __init__(self, units, *args, reset_after=True, **kwargs):
        if reset_after is not True:
            raise ValueError("LayerNormGRU: reset_after must be True (haste's layer-normalised GRU "
                             f"normalises h_{{t-1}} @ recurrent_kernel before the reset gate), got {reset_after!r}")
        super().__init__(units, *args, reset_after=True, **kwargs)

    def _extra_weights(self):
        return _layer_norm_weights(self, False)
