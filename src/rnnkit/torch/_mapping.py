"""PyTorch <-> rnnkit weight layouts (docs/SPEC.md §16).

PyTorch keeps per layer and direction ``weight_ih`` (G·H, I), ``weight_hh`` (G·H, H) and two biases
``bias_ih``, ``bias_hh`` (G·H,); rnnkit's kernels take the Keras layout: ``kernel`` (I, G·H) =
``weight_ih.T``, ``recurrent_kernel`` (H, G·H) = ``weight_hh.T``, with gate blocks in Keras order.

- RNN, LSTM: the gate blocks agree (LSTM i, f, g, o); the kernels take one bias (G·H,) =
  ``bias_ih + bias_hh``, so both PyTorch biases receive its gradient.
- GRU: PyTorch's cell is Keras's ``reset_after=True`` with the first two blocks swapped (PyTorch r, z,
  n; Keras z, r, h); its bias is (2, 3H) = [``bias_ih``, ``bias_hh``], each permuted.

The swap of the first two of three blocks is its own inverse, so one function maps both ways.
Everything here works on (detached) torch tensors and returns C-contiguous tensors, whose ``.numpy()``
views rnnkit reads without copies.
"""

from __future__ import annotations

import torch

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def to_kernel(cell: str, w: torch.Tensor) -> torch.Tensor:
    """``weight_ih`` (G·H, I) or ``weight_hh`` (G·H, H) -> rnnkit (I or H, G·H), C-contiguous."""
    if cell != "gru":
        return w.t().contiguous()
    h = w.shape[0] // 3
    out = torch.empty((w.shape[1], w.shape[0]), dtype=w.dtype)
    out[:, :h].copy_(w[h:2 * h].t())
    out[:, h:2 * h].copy_(w[:h].t())
    out[:, 2 * h:].copy_(w[2 * h:].t())
    return out


def from_kernel(cell: str, k: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`to_kernel` (for gradients): (I, G·H) -> (G·H, I), C-contiguous."""
    if cell != "gru":
        return k.t().contiguous()
    h = k.shape[1] // 3
    out = torch.empty((k.shape[1], k.shape[0]), dtype=k.dtype)
    out[:h].copy_(k[:, h:2 * h].t())
    out[h:2 * h].copy_(k[:, :h].t())
    out[2 * h:].copy_(k[:, 2 * h:].t())
    return out


def swap_gru_blocks(v: torch.Tensor) -> torch.Tensor:
    """Swap the first two of three blocks along the last axis (PyTorch r, z, n <-> Keras z, r, h)."""
    h = v.shape[-1] // 3
    return torch.cat([v[..., h:2 * h], v[..., :h], v[..., 2 * h:]], dim=-1)


def to_bias(cell: str, b_ih: torch.Tensor | None, b_hh: torch.Tensor | None) -> torch.Tensor | None:
    """PyTorch's two biases -> rnnkit's bias: (G·H,) sum for RNN/LSTM, (2, 3H) for GRU; None without."""
    if b_ih is None:
        return None
    if cell == "gru":
        return swap_gru_blocks(torch.stack([b_ih, b_hh]))
    return b_ih + b_hh


def from_bias(cell: str, d_bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """rnnkit's bias gradient -> (d_bias_ih, d_bias_hh) (two separate tensors)."""
    if cell == "gru":
        d = swap_gru_blocks(d_bias)
        return d[0], d[1]
    return d_bias, d_bias.clone()
