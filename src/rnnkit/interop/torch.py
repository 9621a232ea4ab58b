"""PyTorch -> rnnkit: :func:`from_torch` (docs/INTEROP.md §2; the layouts are docs/SPEC.md §16).

The weight mapping is ``rnnkit.torch._mapping``'s (the drop-in modules use the same one): kernels are
PyTorch's matrices transposed, GRU gate blocks r, z, n become z, r, h, and the two biases of an RNN /
LSTM add up to rnnkit's one, while a GRU's become the two rows of its (2, 3H) bias.
"""

from __future__ import annotations

__all__ = ["from_torch", "SUPPORTED_MODULES"]

SUPPORTED_MODULES = ("torch.nn.RNN", "torch.nn.LSTM", "torch.nn.GRU", "torch.nn.Linear")

_CELLS = {"RNN_TANH": ("SimpleRNN", "simple_rnn", "tanh"), "RNN_RELU": ("SimpleRNN", "simple_rnn", "relu"),
          "LSTM": ("LSTM", "lstm", "tanh"), "GRU": ("GRU", "gru", "tanh")}


def _numpy(t):
    return t.detach().cpu().contiguous().numpy()


def _dtype(module):
    import torch

    dtypes = {p.dtype for p in module.parameters()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in (torch.float32, torch.float64):
        raise ValueError(f"{type(module).__name__}: parameters must all be float32 or all float64, got "
                         f"{sorted(str(d) for d in dtypes)}")
    return "float32" if dtypes == {torch.float32} else "float64"


def _direction_layer(module, cls_name, cell, activation, k, suffix, input_size, dtype, go_backwards):
    from .. import layers as L
    from ..torch import _mapping

    kwargs = dict(activation=activation, use_bias=bool(module.bias), return_sequences=True,
                  go_backwards=go_backwards, dtype=dtype)
    if cls_name == "GRU":
        kwargs["reset_after"] = True   # PyTorch's GRU is Keras's reset_after=True (docs/SPEC.md §16)
    layer = getattr(L, cls_name)(module.hidden_size, **kwargs)
    layer.build(input_size)
    w_ih = getattr(module, f"weight_ih_l{k}{suffix}").detach().cpu()
    w_hh = getattr(module, f"weight_hh_l{k}{suffix}").detach().cpu()
    weights = [_mapping.to_kernel(cell, w_ih), _mapping.to_kernel(cell, w_hh)]
    if module.bias:
        weights.append(_mapping.to_bias(cell, getattr(module, f"bias_ih_l{k}{suffix}").detach().cpu(),
                                        getattr(module, f"bias_hh_l{k}{suffix}").detach().cpu()))
    layer.set_weights([_numpy(w) for w in weights])
    return layer


def from_torch(module):
    """A ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (any ``num_layers``, ``bidirectional``, ``bias``,
    ``batch_first``; ``nonlinearity`` tanh or relu) or a ``torch.nn.Linear`` -> a list of rnnkit layers
    with the same weights (float32 or float64, as the module's parameters).

    A recurrent module becomes one layer per PyTorch layer, each with ``return_sequences=True``
    (``bidirectional=True``: ``Bidirectional(..., merge_mode="concat")``), and ``Dropout(dropout)``
    between them when the module has dropout (active in training only, as in PyTorch), so that
    ``rnnkit.Sequential(from_torch(m)).predict(x)`` equals ``m(x)[0]`` for batch-first ``x``
    (rnnkit's layers are batch-major whatever ``batch_first`` says: give a time-major module's input
    as ``x.transpose(0, 1)``). ``torch.nn.Linear`` becomes ``Dense``. The final states are those of
    the layers' ``return_state`` / ``step`` APIs. ``proj_size`` > 0 and other modules raise ValueError.
    """
    import torch

    from .. import layers as L

    if isinstance(module, torch.nn.Linear):
        dtype = _dtype(module)
        layer = L.Dense(module.out_features, use_bias=module.bias is not None, dtype=dtype)
        layer.build(module.in_features)
        weights = [_numpy(module.weight).T.copy()]
        if module.bias is not None:
            weights.append(_numpy(module.bias))
        layer.set_weights(weights)
        return [layer]
    if not isinstance(module, torch.nn.RNNBase) or module.mode not in _CELLS:
        raise ValueError(f"{type(module).__name__} cannot be converted to rnnkit layers; supported: "
                         f"{', '.join(SUPPORTED_MODULES)}")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"{type(module).__name__} with proj_size={module.proj_size} cannot be converted: "
                         f"rnnkit's LSTM has no projection")
    dtype = _dtype(module)
    cls_name, cell, activation = _CELLS[module.mode]
    layers = []
    input_size = module.input_size
    for k in range(module.num_layers):
        if k > 0 and module.dropout > 0:
            layers.append(L.Dropout(float(module.dropout), dtype=dtype))
        forward = _direction_layer(module, cls_name, cell, activation, k, "", input_size, dtype, False)
        if module.bidirectional:
            backward = _direction_layer(module, cls_name, cell, activation, k, "_reverse", input_size,
                                        dtype, True)
            layers.append(L.Bidirectional(forward, merge_mode="concat", backward_layer=backward))
            input_size = 2 * module.hidden_size
        else:
            layers.append(forward)
            input_size = module.hidden_size
    return layers
