"""The kernel-level API: plain forward/backward functions on NumPy arrays.

Each function validates its arguments (clear TypeError/ValueError naming the argument), converts
them to canonical form and runs the active backend (``rnnkit.set_backend``). Shapes and semantics:
docs/ARCHITECTURE.md and docs/SPEC.md.
"""

from .recurrent import (
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    simple_rnn_backward,
    simple_rnn_forward,
)

from .dense import dense_backward, dense_forward
from .pack import WeightPack, pack_weights

__all__ = [
    "simple_rnn_forward",
    "simple_rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    "dense_forward",
    "dense_backward",
    "WeightPack",
    "pack_weights",
]
