"""rnnkit.interop: models in from Keras 3 and PyTorch, out to Keras 3 and ONNX (docs/INTEROP.md).

- :func:`from_keras` (a Keras 3 model object, a ``.keras`` file or a ``.weights.h5`` file; the files
  are read with ``zipfile``, ``json`` and ``h5py``, without Keras) and :func:`to_keras`;
- :func:`from_torch`: ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` / ``Linear`` -> rnnkit layers;
- :func:`to_onnx`: an rnnkit model -> ONNX, with ONNX's own RNN / LSTM / GRU operators.

``import rnnkit`` does not import this package, and this package imports keras, h5py, torch and onnx
only inside the function that needs them (``pip install "rnnkit[interop]"``: h5py, onnx,
onnxruntime; Keras itself only for the Keras-object routes).
"""

from __future__ import annotations

__all__ = ["from_keras", "to_keras", "from_torch", "to_onnx"]


def from_keras(source, model=None):
    """Keras 3 -> ``rnnkit.Sequential``; see :func:`rnnkit.interop.keras.from_keras`."""
    from .keras import from_keras as impl
    return impl(source, model=model)


def to_keras(model):
    """``rnnkit.Sequential`` -> ``keras.Sequential``; see :func:`rnnkit.interop.keras.to_keras`."""
    from .keras import to_keras as impl
    return impl(model)


def from_torch(module):
    """``torch.nn`` RNN/LSTM/GRU/Linear -> rnnkit layers; see :func:`rnnkit.interop.torch.from_torch`."""
    from .torch import from_torch as impl
    return impl(module)


def to_onnx(model, path=None, opset=None, dynamic_batch=True, dynamic_time=True, **options):
    """rnnkit model -> ONNX; see :func:`rnnkit.interop.onnx.to_onnx`."""
    from .onnx import to_onnx as impl
    return impl(model, path, opset=opset, dynamic_batch=dynamic_batch, dynamic_time=dynamic_time,
                **options)
