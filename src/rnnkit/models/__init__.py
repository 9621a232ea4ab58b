"""rnnkit's models.

- model.py       :class:`Model`, the training loop every model shares (compile / fit / evaluate /
                 predict / summary / save)
- sequential.py  :class:`Sequential`, a stack of layers
- functional.py  :class:`Functional`, what ``Model(inputs, outputs)`` makes: a graph of layer calls
- _summary.py    the ``summary()`` table

Saving and loading: rnnkit/saving.py (``load_model`` is re-exported here).
"""

from ..saving import load_model
from .functional import Functional
from .model import Model
from .sequential import Sequential

__all__ = ["Model", "Sequential", "Functional", "load_model"]
