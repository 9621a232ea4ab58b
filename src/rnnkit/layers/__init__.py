"""Keras-like layers: each is a forward ``__call__`` and a ``backward`` around a list of weights.

- base.py       the :class:`Layer` contract, the registry used by ``load_model`` and the helpers the
                layers share (seed and input-size checks, weight initialisation, backward checks)
- recurrent.py  SimpleRNN, LSTM, GRU (math in ``rnnkit.ops``)
- wrappers.py   Bidirectional
- core.py       Dense, Embedding, Flatten, Dropout, ...
"""

from .base import Layer, get_layer_class, register_layer
from .cells import GRU, LSTM, LayerNormGRU, LayerNormLSTM, SimpleRNN
from .recurrent import RNN
from .wrappers import Bidirectional

# --- core layers (core.py) ---
from .core import Dense, Dropout, Embedding, Flatten, Masking

__all__ = ["Layer", "register_layer", "get_layer_class", "RNN", "SimpleRNN", "LSTM", "GRU", "LayerNormLSTM", "LayerNormGRU", "Bidirectional",
           "Dense", "Embedding", "Flatten", "Dropout", "Masking"]
