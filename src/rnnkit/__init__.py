"""rnnkit: fast CPU recurrent neural networks (SimpleRNN, LSTM, GRU) with native forward and BPTT kernels.

- ``rnnkit.ops``: kernel-level functions (``simple_rnn_forward``/``_backward``, ``lstm_*``, ``gru_*``)
  that validate their arguments and run the active backend.
- ``rnnkit.reference``: the NumPy oracle with the same canonical signatures.
- ``get_backend()`` / ``set_backend("native" | "python")``: which implementation ``ops`` runs
  (initially the ``RNNKIT_BACKEND`` environment variable, else native when it is built).
- ``get_num_threads()`` / ``set_num_threads(n)``: threads of the native kernels (default: all cores).
- ``release_memory()``: return the native kernels' cache of freed large blocks to the system.
"""

__version__ = "0.1.0"

from ._backend import get_backend, get_num_threads, release_memory, set_backend, set_num_threads
from . import ops, reference

__all__ = [
    "__version__",
    "ops",
    "reference",
    "get_backend",
    "set_backend",
    "get_num_threads",
    "set_num_threads",
    "release_memory",
]

# --- public API re-exports (layers, models, training) ---
from .layers import SimpleRNN, LSTM, GRU, LayerNormLSTM, LayerNormGRU, Bidirectional
__all__ += ["SimpleRNN", "LSTM", "GRU", "LayerNormLSTM", "LayerNormGRU", "Bidirectional"]
from .layers import Dense, Embedding, Flatten, Dropout, Masking, RepeatVector, TimeDistributed
__all__ += ["Dense", "Embedding", "Flatten", "Dropout", "Masking", "RepeatVector", "TimeDistributed"]
from .layers import Concatenate, Add, Multiply, Average, Input
__all__ += ["Concatenate", "Add", "Multiply", "Average", "Input"]
from . import initializers
from . import activations
from . import losses
from . import optimizers
from . import callbacks
from . import datasets
from . import metrics
from .models import Model, Sequential, load_model
__all__ += ["callbacks", "datasets", "metrics", "optimizers", "losses", "initializers", "activations",
            "Model", "Sequential", "load_model"]
