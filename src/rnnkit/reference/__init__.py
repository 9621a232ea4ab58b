"""The NumPy reference implementation: the test oracle for the native kernels.

One module per cell, written for clarity rather than speed (plain loops over time, vectorised over
the batch), with the canonical signatures of docs/ARCHITECTURE.md. Its gradients are checked
against central finite differences in tests/test_reference.py.
"""

from .gru import gru_backward, gru_forward
from .lstm import lstm_backward, lstm_forward
from .simple_rnn import simple_rnn_backward, simple_rnn_forward

from .dense import dense_backward, dense_forward

__all__ = [
    "simple_rnn_forward", "simple_rnn_backward",
    "lstm_forward", "lstm_backward",
    "gru_forward", "gru_backward",
    "dense_forward", "dense_backward",
]
