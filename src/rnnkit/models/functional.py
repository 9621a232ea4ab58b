"""Functional models: ``rnnkit.Model(inputs, outputs)`` over a graph of layer calls.

Calling layers on symbolic tensors (``rnnkit.Input``, layers/symbolic.py) records nodes; a model
takes the nodes between its inputs and outputs in topological order and runs them on data:

- forward: every node in order, its layer called on the values of its input tensors
  (``initial_state=`` from other tensors, e.g. an encoder's final states), the mask following each
  tensor as in Sequential (``lengths=`` / ``mask=`` describe the first input);
- backward: the nodes in reverse, each getting the sum of the gradients its output tensors received
  from all their consumers; a layer called in several nodes (shared) gets back the cache of that call
  before its backward (``Layer._cache_state``) and its weight gradients are summed over its calls.

Several inputs and outputs: x and y are lists (or dicts by input / output name); compile takes one
loss per output (list, dict, or one for all) and ``loss_weights``. Models built from the same layers
share those layers' weights (an encoder model and a one-step decoder model for seq2seq inference).

``save`` / ``load_model`` store the graph as the layers' configs plus the list of calls.
"""

from __future__ import annotations

import numpy as np

from ..layers.base import get_layer_class
from ..layers.recurrent import RNN
from ..layers.symbolic import Input, SymbolicTensor
from ..layers.wrappers import Bidirectional
from ._summary import shape_str
from .model import Model

__all__ = ["Functional"]


def _tensor_list(value, argument):
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError(f"{argument} must hold at least one tensor")
    for i, t in enumerate(items):
        if not isinstance(t, SymbolicTensor):
            raise TypeError(f"{argument}[{i}] must be a symbolic tensor (rnnkit.Input(...) or a layer "
                            f"called on one), got {type(t).__name__}")
    return items


def _unique(names):
    seen, out = {}, []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}_{k}")
    return out


class Functional(Model):
    """A model over a graph of layer calls: ``Model(inputs, outputs)`` (Keras's functional API).

    Args:
        inputs: an ``rnnkit.Input`` tensor or a list of them.
        outputs: a tensor (a layer's output on the inputs) or a list of them.
        name: model name (default "functional", made unique).
    """

    _default_name = "functional"

    def __init__(self, inputs, outputs, name=None):
        super().__init__(name)
        self._single_input = not isinstance(inputs, (list, tuple))
        self._single_output = not isinstance(outputs, (list, tuple))
        self.inputs = _tensor_list(inputs, "inputs")
        self.outputs = _tensor_list(outputs, "outputs")
        for i, t in enumerate(self.inputs):
            if t.node is not None:
                raise ValueError(f"inputs[{i}] must be an rnnkit.Input, got the output of layer "
                                 f"{t.node.layer.name!r}")
        if len({id(t) for t in self.inputs}) != len(self.inputs):
            raise ValueError("inputs must not list the same Input twice")
        self._nodes = self._topological_nodes()
        layers = []
        for node in self._nodes:
            if all(node.layer is not other for other in layers):
                layers.append(node.layer)
        names = [layer.name for layer in layers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"layer names must be unique in a model: {duplicates} name several layers")
        self._layers = layers
        self._node_caches = None
        self._input_names = _unique([t.name or "input" for t in self.inputs])
        self._output_names = _unique([
            t.node.layer.name if len(t.node.outputs) == 1 else f"{t.node.layer.name}_{t.index}"
            if t.node is not None else (t.name or "output") for t in self.outputs])
        # an output whose layer's logits belong to it alone (a layer called once, the tensor read by
        # no other node and listed once) can take the fused softmax + cross-entropy path
        uses = {}
        for node in self._nodes:
            uses[id(node.layer)] = uses.get(id(node.layer), 0) + 1
        consumed = {id(t) for node in self._nodes for t in node.input_tensors}
        self._fusable = [t.node is not None and uses[id(t.node.layer)] == 1 and id(t) not in consumed
                         and sum(o is t for o in self.outputs) == 1 for t in self.outputs]
        self.built = True

    def _topological_nodes(self):
        """The nodes between the inputs and the outputs, each after the nodes it reads from."""
        order, state = [], {}
        inputs = {id(t) for t in self.inputs}

        def visit(tensor, consumer):
            if tensor.node is None:
                if id(tensor) not in inputs:
                    raise ValueError(f"Graph disconnected: {tensor!r} (read by layer "
                                     f"{consumer!r}) is an Input that is not among the model's inputs")
                return
            node = tensor.node
            mark = state.get(id(node))
            if mark == "done":
                return
            if mark == "active":  # pragma: no cover - a symbolic call cannot create a cycle
                raise ValueError("the layer graph has a cycle")
            state[id(node)] = "active"
            for t in node.input_tensors:
                visit(t, node.layer.name)
            state[id(node)] = "done"
            order.append(node)

        for t in self.outputs:
            visit(t, "the outputs")
        return order

    # -- structure -------------------------------------------------------------------------------
    @property
    def layers(self) -> list:
        return list(self._layers)

    @property
    def input_names(self) -> list:
        return list(self._input_names)

    @property
    def output_names(self) -> list:
        return list(self._output_names)

    def _ensure_built(self, x):
        pass

    def _output_layer(self, i=0):
        return self.outputs[i].node.layer if self._fusable[i] else None

    def _standardize(self, value, names, argument):
        """x or y as the model takes it: an array (one input/output) or a list in model order
        (from a list, a tuple or a dict by name)."""
        if value is None:
            return None
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(names))
            missing = [n for n in names if n not in value]
            if unknown or missing:
                raise ValueError(f"{argument}: the keys must be the model's names {names}, got "
                                 f"{sorted(value)}")
            value = [value[n] for n in names]
        if len(names) == 1:   # an array; a list holding one array is unwrapped
            if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], np.ndarray):
                return value[0]
            return value
        if not isinstance(value, (list, tuple)) or len(value) != len(names):
            got = f"{len(value)} arrays" if isinstance(value, (list, tuple)) else type(value).__name__
            raise ValueError(f"{argument}: model {self.name!r} has {len(names)} "
                             f"{'inputs' if argument == 'x' else 'outputs'} {names}; pass a list of "
                             f"{len(names)} arrays or a dict by name, got {got}")
        return list(value)

    def _standardize_x(self, x):
        return self._standardize(x, self._input_names, "x")

    def _standardize_y(self, y):
        return self._standardize(y, self._output_names, "y")

    # -- forward / backward --------------------------------------------------------------------------
    def _forward(self, x, mask, training):
        xs = x if isinstance(x, list) else [x]
        values, masks = {}, {}
        for i, t in enumerate(self.inputs):
            values[id(t)] = xs[i]
            masks[id(t)] = mask if i == 0 else None
        caches = [] if training else None
        for node in self._nodes:
            layer = node.layer
            if isinstance(node.inputs, list):
                inp = [values[id(t)] for t in node.inputs]
                in_mask = [masks[id(t)] for t in node.inputs]
            else:
                inp = values[id(node.inputs)]
                in_mask = masks[id(node.inputs)]
            if node.initial_state is not None:
                out = layer(inp, initial_state=[values[id(t)] for t in node.initial_state],
                            mask=in_mask, training=training)
            else:
                out = layer(inp, training=training, mask=in_mask)
            out_mask = layer.compute_mask(in_mask)
            if len(node.outputs) > 1:
                out_masks = out_mask if isinstance(out_mask, list) else [out_mask] * len(node.outputs)
                for t, v, m in zip(node.outputs, out, out_masks):
                    values[id(t)] = v
                    masks[id(t)] = m
            else:
                values[id(node.outputs[0])] = out
                masks[id(node.outputs[0])] = out_mask[0] if isinstance(out_mask, list) else out_mask
            if training:
                caches.append(layer._cache_state())
        self._node_caches = caches
        outputs = [values[id(t)] for t in self.outputs]
        out_masks = [masks[id(t)] for t in self.outputs]
        if self._multi_output:
            return outputs, out_masks
        return outputs[0], out_masks[0]

    def _backward(self, d_output, from_logits=False):
        if self._node_caches is None:
            raise ValueError(f"model {self.name!r}: run a training forward before backward")
        ds = d_output if self._multi_output else [d_output]
        fl = from_logits if self._multi_output else [from_logits]
        grads, logits_grads = {}, {}

        def add(tensor, g):
            if g is None or tensor.node is None:   # the gradient of an Input is not needed
                return
            prev = grads.get(id(tensor))
            grads[id(tensor)] = g if prev is None else prev + g

        for t, d, f in zip(self.outputs, ds, fl):
            if f:
                logits_grads[id(t.node)] = d
            else:
                add(t, d)
        layer_grads = {}
        for k in range(len(self._nodes) - 1, -1, -1):
            node = self._nodes[k]
            layer = node.layer
            d_outs = [grads.pop(id(t), None) for t in node.outputs]
            d_logits = logits_grads.get(id(node))
            if d_logits is None and all(d is None for d in d_outs):
                continue   # nothing downstream of this call reaches the loss
            layer._set_cache_state(self._node_caches[k])
            if d_logits is not None:
                dx = layer.backward(d_logits, from_logits=True)
            else:
                dx = self._node_backward(layer, d_outs)
            if layer.grads:
                acc = layer_grads.get(id(layer))
                layer_grads[id(layer)] = (list(layer.grads) if acc is None else
                                          [a if g is None else g if a is None else a + g
                                           for a, g in zip(acc, layer.grads)])
            if isinstance(node.inputs, list):
                for t, g in zip(node.inputs, dx):
                    add(t, g)
            else:
                add(node.inputs, dx)
            if node.initial_state is not None:
                for t, g in zip(node.initial_state, layer.d_initial_state):
                    add(t, g)
        for layer in self._layers:
            if id(layer) in layer_grads:
                layer.grads = layer_grads[id(layer)]
            elif layer.weights:  # not on a path to the loss
                layer.grads = [np.zeros_like(w) for w in layer.weights]

    @staticmethod
    def _node_backward(layer, d_outs):
        """``layer.backward`` of one call, from the gradients of its outputs (None = zero)."""
        if isinstance(layer, (RNN, Bidirectional)):
            n_main = 2 if isinstance(layer, Bidirectional) and layer.merge_mode is None else 1
            d_main = d_outs[:n_main] if n_main == 2 else d_outs[0]
            d_state = d_outs[n_main:] if layer.return_state else None
            if d_state is not None and all(d is None for d in d_state):
                d_state = None
            return layer.backward(d_main, d_state)
        return layer.backward(d_outs[0])

    def clear_training_cache(self) -> None:
        super().clear_training_cache()
        self._node_caches = None

    def stream(self, batch_size=1):
        """A :class:`rnnkit.streaming.GraphStream`: one time step per call through the graph, for
        causal graphs (ValueError naming the layer otherwise)."""
        from ..streaming import GraphStream
        return GraphStream(self, batch_size)

    # -- summary, config -------------------------------------------------------------------------------
    def _tensor_ref(self, t):
        """A tensor as ["input", i] or ["node", k, j] (output j of the k-th node)."""
        if t.node is None:
            return ["input", next(i for i, x in enumerate(self.inputs) if x is t)]
        k = next(i for i, n in enumerate(self._nodes) if n is t.node)
        return ["node", k, t.index]

    def _summary_rows(self):
        node_index = {}   # id(node) -> its index among its layer's calls
        counts = {}
        for node in self._nodes:
            node_index[id(node)] = counts.get(id(node.layer), 0)
            counts[id(node.layer)] = node_index[id(node)] + 1

        def ref(t):
            if t.node is None:
                return f"{t.name}[0][0]"
            return f"{t.node.layer.name}[{node_index[id(t.node)]}][{t.index}]"

        rows = [(f"{t.name} (InputLayer)", shape_str(t.shape), "0", "-") for t in self.inputs]
        for layer in self._layers:
            nodes = [n for n in self._nodes if n.layer is layer]
            shapes = [o.shape for o in nodes[0].outputs]
            shape = shape_str(shapes[0] if len(shapes) == 1 else list(shapes))
            connected = ", ".join(ref(t) for n in nodes for t in n.input_tensors)
            rows.append((f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}",
                         connected))
        return rows, "Connected to"

    def get_config(self) -> dict:
        layer_index = {id(layer): i for i, layer in enumerate(self._layers)}
        nodes = []
        for node in self._nodes:
            inputs = ([self._tensor_ref(t) for t in node.inputs] if isinstance(node.inputs, list)
                      else self._tensor_ref(node.inputs))
            nodes.append({"layer": layer_index[id(node.layer)], "inputs": inputs,
                          "list_inputs": isinstance(node.inputs, list),
                          "initial_state": None if node.initial_state is None else
                          [self._tensor_ref(t) for t in node.initial_state]})
        return {
            "class_name": "Functional",
            "name": self.name,
            "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype.name}
                       for t in self.inputs],
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                       for layer in self._layers],
            "nodes": nodes,
            "outputs": [self._tensor_ref(t) for t in self.outputs],
            "single_input": self._single_input,
            "single_output": self._single_output,
        }

    @classmethod
    def from_config(cls, config) -> "Functional":
        """A new model (new weights) from :meth:`get_config`'s output."""
        inputs = [Input(tuple(spec["shape"][1:]), dtype=spec["dtype"], batch_size=spec["shape"][0],
                        name=spec["name"]) for spec in config["inputs"]]
        layers = []
        for i, spec in enumerate(config["layers"]):
            try:
                layers.append(get_layer_class(spec["class_name"]).from_config(dict(spec["config"])))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"layer {i} ({spec['class_name']}) has an invalid config: {exc}") from None
        outputs_of = []

        def tensor(ref):
            if ref[0] == "input":
                return inputs[ref[1]]
            return outputs_of[ref[1]][ref[2]]

        for spec in config["nodes"]:
            layer = layers[spec["layer"]]
            x = [tensor(r) for r in spec["inputs"]] if spec["list_inputs"] else tensor(spec["inputs"])
            if spec["initial_state"] is not None:
                out = layer(x, initial_state=[tensor(r) for r in spec["initial_state"]])
            else:
                out = layer(x)
            outputs_of.append(out if isinstance(out, list) else [out])
        outputs = [tensor(r) for r in config["outputs"]]
        return cls(inputs[0] if config["single_input"] else inputs,
                   outputs[0] if config["single_output"] else outputs, name=config.get("name"))

    def __repr__(self):
        return (f"<Functional name={self.name!r} inputs={len(self.inputs)} outputs={len(self.outputs)} "
                f"layers={len(self._layers)}>")
