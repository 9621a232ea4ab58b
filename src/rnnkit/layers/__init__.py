"""Keras-like layers: each is a forward ``__call__`` and a ``backward`` around a list of weights.

- base.py       the :class:`Layer` contract, the registry used by ``load_model`` and the helpers the
                layers share (seed and input-size checks, weight initialisation, backward checks)
- recurrent.py  the RNN base every recurrent layer shares (math in ``rnnkit.ops``)
- cells.py      SimpleRNN, LSTM, GRU, LayerNormLSTM, LayerNormGRU
- wrappers.py   Bidirectional, TimeDistributed
- core.py       Dense, Embedding, Flatten, Dropout, Masking, RepeatVector
- merge.py      Concatenate, Add, Multiply, Average
- symbolic.py   Input and the symbolic tensors that record a layer graph (functional models)
"""

from .base import Layer, get_layer_class, register_layer
from .cells import GRU, LSTM, LayerNormGRU, LayerNormLSTM, SimpleRNN
from .recurrent import RNN
from .wrappers import Bidirectional, TimeDistributed

# --- core layers (core.py) ---
from .core import Dense, Dropout, Embedding, Flatten, Masking, RepeatVector
from .merge import Add, Average, Concatenate, Multiply
from .symbolic import Input, KerasTensor, SymbolicTensor

__all__ = ["Layer", "register_layer", "get_layer_class", "RNN", "SimpleRNN", "LSTM", "GRU", "LayerNormLSTM",
           "LayerNormGRU", "Bidirectional", "TimeDistributed", "Dense", "Embedding", "Flatten", "Dropout",
           "Masking", "RepeatVector", "Concatenate", "Add", "Multiply", "Average", "Input", "KerasTensor",
           "SymbolicTensor"]
