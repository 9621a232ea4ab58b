"""The benchmark problems: sizes, FLOP counts, random inputs and weights, and the timed ``rnnkit.ops`` calls."""

from __future__ import annotations

import contextlib
import importlib

import numpy as np

SIZES = {
    "seed-tiny": (1, 3, 2, 4),
    "seed-small": (32, 10, 8, 4),
    "seed-numpy": (32, 100, 32, 64),
    "mnist-rows": (150, 28, 28, 150),
    "medium": (64, 100, 128, 256),
    "large": (128, 100, 512, 1024),
}
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
CELLS = tuple(GATES)
MODES = ("fwd", "train")
DTYPES = ("float32", "float64")
# sizes at which the NumPy reference is skipped unless --reference-all (it takes seconds per call there)
REFERENCE_SKIPPED_SIZES = ("large",)
TRAIN_FLOP_FACTOR = 3  # forward + backward ≈ 3 × forward (backward ≈ 2 GEMMs per forward GEMM)


# --------------------------------------------------------------------------------------------------
# the problems and what is timed


def forward_flops(cell: str, size: str) -> int:
    """FLOPs of one forward pass: 2·B·T·G·H·(I + H)."""
    batch, steps, features, units = SIZES[size]
    return 2 * batch * steps * GATES[cell] * units * (features + units)


def flops(cell: str, size: str, mode: str) -> int:
    """FLOPs counted for one timed call of ``mode`` (``train`` = 3 × forward)."""
    return forward_flops(cell, size) * (TRAIN_FLOP_FACTOR if mode == "train" else 1)


def make_problem(cell: str, size, dtype: str = "float32", seed: int = 0, d_outputs: bool = True) -> dict:
    """Random inputs and weights in the canonical layouts (docs/SPEC.md §2) for one cell and size.

    ``size`` is a name of SIZES or a shape (B, T, I, H). Returns a dict with x (B,T,I), kernel (I,G·H),
    recurrent_kernel (H,G·H), bias ((2,3H) for GRU, else (G·H,)) and d_outputs (B,T,H) (None with
    ``d_outputs=False``), all C-contiguous arrays of ``dtype``. Weights are scaled by 1/sqrt(fan-in)
    so that activations stay in their non-saturated range, as in a trained network. The same
    (cell, shape, dtype, seed) gives the same arrays in every process (the ONNX Runtime worker and
    the latency table rely on it).
    """
    batch, steps, features, units = SIZES[size] if isinstance(size, str) else size
    gates = GATES[cell]
    rng = np.random.default_rng(seed)

    def normal(shape, scale=1.0):
        values = rng.standard_normal(shape, dtype=np.dtype(dtype))
        values *= scale
        return values

    bias_shape = (2, gates * units) if cell == "gru" else (gates * units,)
    return {
        "cell": cell,
        "size": size,
        "x": normal((batch, steps, features)),
        "kernel": normal((features, gates * units), 1.0 / np.sqrt(features)),
        "recurrent_kernel": normal((units, gates * units), 1.0 / np.sqrt(units)),
        "bias": normal(bias_shape, 0.1),
        "d_outputs": normal((batch, steps, units)) if d_outputs else None,
    }


def make_call(problem: dict, mode: str):
    """Return a no-argument function running one ``mode`` call of ``rnnkit.ops`` on ``problem``.

    ``fwd``: ``<cell>_forward(..., training=False, return_sequences=True)``.
    ``train``: ``<cell>_forward(..., training=True, return_sequences=True)`` then ``<cell>_backward``
    with the problem's random d_outputs (and no gradient for the final states).
    The backend is the one active when the function is *called*.
    """
    ops = importlib.import_module("rnnkit.ops")
    cell = problem["cell"]
    forward = getattr(ops, f"{cell}_forward")
    backward = getattr(ops, f"{cell}_backward")
    x, kernel, recurrent_kernel, bias = (problem[k] for k in ("x", "kernel", "recurrent_kernel", "bias"))
    d_outputs = problem["d_outputs"]
    if mode == "fwd":
        def run():
            return forward(x, kernel, recurrent_kernel, bias=bias, training=False, return_sequences=True)
    elif cell == "lstm":  # outputs, h_last, c_last, cache
        def run():
            result = forward(x, kernel, recurrent_kernel, bias=bias, training=True, return_sequences=True)
            return backward(d_outputs, None, None, result[-1])
    else:  # outputs, h_last, cache
        def run():
            result = forward(x, kernel, recurrent_kernel, bias=bias, training=True, return_sequences=True)
            return backward(d_outputs, None, result[-1])
    return run


def native_missing(cell: str, mode: str) -> str | None:
    """Why rnnkit's native backend cannot run ``cell`` in ``mode`` (None if it can)."""
    try:
        native = importlib.import_module("rnnkit._native")
    except Exception as exc:  # ImportError, or OSError from the dynamic loader
        return f"rnnkit._native does not import ({type(exc).__name__}: {exc})"
    needed = [f"{cell}_forward"] + ([f"{cell}_backward"] if mode == "train" else [])
    missing = [name for name in needed if not hasattr(native, name)]
    if missing:
        return f"rnnkit._native has no {', '.join(missing)}"
    return None


@contextlib.contextmanager
def using_backend(name: str):
    """Run the body with ``rnnkit.set_backend(name)``, restoring the previous backend afterwards."""
    import rnnkit

    previous = rnnkit.get_backend()
    rnnkit.set_backend(name)
    try:
        yield
    finally:
        rnnkit.set_backend(previous)
