"""``model.summary()``: the Keras-style table of layers, output shapes and parameter counts."""

from __future__ import annotations


def shape_str(shape):
    if isinstance(shape, list):
        return "[" + ", ".join(shape_str(s) for s in shape) + "]"
    dims = ["None" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _count(weights):
    return int(sum(w.size for w in weights))


def _memory(weights):
    size = float(sum(w.nbytes for w in weights))
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"  # pragma: no cover


def print_summary(name, layers, rows, print_fn, extra_column=None):
    """Print the table: ``rows`` are (layer column, output shape, params[, extra]) strings,
    ``layers`` the model's distinct layers (for the totals), ``extra_column`` the header of a
    fourth column (the functional model's "Connected to") or None."""
    headers = ["Layer (type)", "Output Shape", "Param #"] + ([extra_column] if extra_column else [])
    widths = [max([29] + [len(r[0]) + 2 for r in rows]),
              max([26] + [len(r[1]) + 2 for r in rows]),
              max([10] + [len(r[2]) + 1 for r in rows])]
    if extra_column:
        widths.append(max([22] + [len(r[3]) + 2 for r in rows]))

    def line(cells):
        out = cells[0].ljust(widths[0]) + cells[1].ljust(widths[1]) + cells[2].rjust(widths[2])
        if extra_column:
            out += "  " + cells[3].ljust(widths[3] - 2)
        return " " + out

    width = 1 + sum(widths)
    print_fn(f'Model: "{name}"')
    print_fn("_" * width)
    print_fn(line(headers))
    print_fn("=" * width)
    for i, row in enumerate(rows):
        print_fn(line(row))
        if i < len(rows) - 1:
            print_fn(" " * width)
    print_fn("=" * width)
    trainable = [w for layer in layers if layer.trainable for w in layer.weights]
    frozen = [w for layer in layers if not layer.trainable for w in layer.weights]
    total = trainable + frozen
    print_fn(f"Total params: {_count(total):,} ({_memory(total)})")
    print_fn(f"Trainable params: {_count(trainable):,} ({_memory(trainable)})")
    print_fn(f"Non-trainable params: {_count(frozen):,} ({_memory(frozen)})")
    print_fn("_" * width)
