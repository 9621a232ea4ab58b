"""The Sequential model: a stack of layers, each fed the previous one's output.

The training loop (compile / fit / evaluate / predict) is :class:`Model`'s (models/trainer.py),
summary and save too (models/model.py); this module says how the stack is built, run forwards and backwards, and
configured for ``save`` / ``load_model``.
"""

from __future__ import annotations

from ..layers.base import Layer, get_layer_class
from ..layers.symbolic import SymbolicTensor
from ._summary import shape_str
from .model import Model

__all__ = ["Sequential"]


class Sequential(Model):
    """A linear stack of layers (Keras's ``keras.Sequential``).

    Args:
        layers: optional list of layers, added in order (see :meth:`add`); the first element may
            be an ``rnnkit.Input(shape)`` (or the first layer have ``input_shape=``): the model is
            then built at once.
        name: model name (default "sequential", made unique).

    The model builds on its first data (or an explicit ``build((None, T, I))``), must be compiled
    before ``fit``/``evaluate`` and can be saved to one ``.npz`` file.
    """

    _default_name = "sequential"

    def __init__(self, layers=None, name=None):
        super().__init__(name)
        self._layers: list[Layer] = []
        self._build_input_shape = None   # (None, *sample shape) given to build
        self._input_shape = None         # from an Input or the first layer's input_shape=
        self._output_shapes = []         # per layer, after build
        for layer in layers or ():
            self.add(layer)

    # -- structure -------------------------------------------------------------------------------
    @property
    def layers(self) -> list:
        return list(self._layers)

    def add(self, layer) -> None:
        """Append a layer. Each layer must have one output (no ``return_state``, no
        ``Bidirectional(merge_mode=None)``) and a name not used by another layer of this model."""
        if isinstance(layer, SymbolicTensor):   # rnnkit.Input(shape): only the input shape
            if self._layers or self._input_shape is not None:
                raise ValueError("an rnnkit.Input can only be the first element of a Sequential model")
            if layer.node is not None:
                raise ValueError(f"a Sequential model starts with an rnnkit.Input, not with the output "
                                 f"of layer {layer.node.layer.name!r}")
            self._input_shape = tuple(layer.shape)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"layer must be an rnnkit Layer instance, got {type(layer).__name__}")
        if getattr(layer, "return_state", False) or getattr(layer, "merge_mode", "concat") is None:
            raise ValueError(f"layer {layer.name!r} returns several arrays (return_state or "
                             f"merge_mode=None); a Sequential model needs one output per layer")
        if any(other.name == layer.name for other in self._layers):
            raise ValueError(f"layer names must be unique in a model: {layer.name!r} is already used")
        self._layers.append(layer)
        if not self.built:
            if (len(self._layers) == 1 and self._input_shape is None
                    and layer.declared_input_shape is not None):   # Keras 2's input_shape=
                self._input_shape = (None, *layer.declared_input_shape)
            if self._input_shape is not None:
                self.build(self._input_shape)
        else:
            # extend the known shapes; the new layer builds from the previous output
            shape = self._output_shapes[-1] if self._output_shapes else self._build_input_shape
            layer.build(shape)
            self._output_shapes.append(tuple(layer.compute_output_shape(shape)))

    def build(self, input_shape) -> None:
        """Create every layer's weights for inputs of ``input_shape`` = (batch, ...) — batch (and
        time) may be None, e.g. ``(None, 20, 1)`` — and record each layer's output shape."""
        if not self._layers:
            raise ValueError("cannot build an empty Sequential model: add() layers first")
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 2:
            raise ValueError(f"input_shape must be a tuple (batch, ...) such as (None, time, features), "
                             f"got {input_shape!r}")
        shape = tuple(None if d is None else int(d) for d in input_shape)
        shapes = []
        for layer in self._layers:
            layer.build(shape)
            shape = tuple(layer.compute_output_shape(shape))
            shapes.append(shape)
        self._build_input_shape = (None, *tuple(input_shape)[1:])
        self._output_shapes = shapes
        self.built = True

    def _ensure_built(self, x):
        if not self.built:
            self.build((None, *x.shape[1:]))

    def _output_layer(self, i=0):
        return self._layers[-1]

    # -- forward / backward --------------------------------------------------------------------------
    def _forward(self, x, mask, training):
        """Run every layer; returns (output, mask after the last layer)."""
        for layer in self._layers:
            x = layer(x, training=training, mask=mask)
            mask = layer.compute_mask(mask)
        return x, mask

    def _backward(self, d, from_logits=False):
        layers = self._layers
        if from_logits:
            d = layers[-1].backward(d, from_logits=True)
            remaining = layers[-2::-1]
        else:
            remaining = layers[::-1]
        for i, layer in enumerate(remaining):
            if d is None:
                raise ValueError(f"layer {remaining[i - 1].name!r} has no input gradient (an Embedding "
                                 f"must be the first layer), so layer {layer.name!r} cannot be trained")
            d = layer.backward(d)

    # -- summary, config -------------------------------------------------------------------------------
    def _summary_rows(self):
        rows = [(f"{layer.name} ({type(layer).__name__})", shape_str(shape), f"{layer.count_params():,}")
                for layer, shape in zip(self._layers, self._output_shapes)]
        return rows, None

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "input_shape": None if self._build_input_shape is None else list(self._build_input_shape),
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                       for layer in self._layers],
        }

    @classmethod
    def from_config(cls, config) -> "Sequential":
        """A new model (new weights) from :meth:`get_config`'s output."""
        layers = []
        for i, spec in enumerate(config["layers"]):
            layer_cls = get_layer_class(spec["class_name"])
            try:
                layers.append(layer_cls.from_config(dict(spec["config"])))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"layer {i} ({spec['class_name']}) has an invalid config: {exc}") from None
        model = cls(layers, name=config.get("name"))
        input_shape = config.get("input_shape")
        if input_shape is not None:
            model.build(tuple(input_shape))
        return model

    def __repr__(self):
        return f"<Sequential name={self.name!r} layers={len(self._layers)} built={self.built}>"
