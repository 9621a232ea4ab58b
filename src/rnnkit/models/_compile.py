"""What ``compile`` resolves: one loss, weight, metric list and fused-softmax twin per output."""

from __future__ import annotations

from .. import losses as losses_module
from .. import metrics as metrics_module


def per_output(value, names, argument, single_ok=True):
    """``value`` (one for all, a list in output order or a dict by output name) -> a list."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        missing = [n for n in names if n not in value]
        if unknown or missing:
            raise ValueError(f"{argument}: the keys must be the output names {names}, got "
                             f"{sorted(value)}")
        return [value[n] for n in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"{argument}: expected one entry per output ({len(names)}: {names}), "
                             f"got {len(value)}")
        return list(value)
    if not single_ok:
        raise TypeError(f"{argument} must be a list or a dict by output name, got {value!r}")
    return [value] * len(names)


def resolve(names, loss, metrics, loss_weights):
    """(model.loss, per-output losses, loss weights, metrics_names_requested, per-output metric
    names, per-output from_logits twins of softmax cross-entropies or None)."""
    if loss is None:
        raise ValueError("loss must be given, e.g. compile(optimizer='adam', loss='mse')")
    losses = [losses_module.get(spec) for spec in per_output(loss, names, "loss")]
    weights = [1.0] * len(names) if loss_weights is None else [
        float(w) for w in per_output(loss_weights, names, "loss_weights", single_ok=False)]
    if isinstance(loss, (list, tuple)):
        model_loss = losses
    elif isinstance(loss, dict):
        model_loss = dict(zip(names, losses))
    else:
        model_loss = losses[0]
    each_output = len(names) > 1 and (isinstance(metrics, dict) or (
        isinstance(metrics, (list, tuple)) and metrics
        and all(m is None or isinstance(m, (list, tuple)) for m in metrics)))
    if each_output:   # one list of names per output (a list of lists or a dict by output name)
        metric_names = [metrics_module.check_names(m) for m in per_output(metrics, names, "metrics")]
        requested = [list(m) for m in metric_names]
    else:
        requested = metrics_module.check_names(metrics)
        metric_names = [requested] * len(names)
    twins = []
    for fn in losses:
        twin = None
        if getattr(fn, "logits_activation", None) == "softmax" and not fn.from_logits:
            twin = type(fn).from_config(dict(fn.get_config(), from_logits=True))
        twins.append(twin)
    return model_loss, losses, weights, requested, metric_names, twins
