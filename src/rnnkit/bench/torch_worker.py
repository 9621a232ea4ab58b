"""PyTorch side of ``rnnkit.bench``, run in its own process so that PyTorch's OpenMP pool never
competes with rnnkit's (both spin on the same cores and distort each other's timings)::

    python -m rnnkit.bench.torch_worker '{"dtype": "float32", "threads": 2, "timing": {...},
                                    "jobs": [{"cell": "simple_rnn", "size": "seed-tiny", "mode": "fwd",
                                              "shape": [B, T, I, H]}, ...]}'

Prints one JSON line on stdout: ``{"torch_version": ..., "threads": ..., "results": [...]}`` with, per
job in order, the timing summary of ``rnnkit.bench.summarize`` or ``{"error": message}``.

Models: ``nn.RNN(nonlinearity="tanh")``, ``nn.LSTM``, ``nn.GRU``, one layer, ``batch_first=True``,
biases on (PyTorch's default). ``fwd`` runs under ``torch.inference_mode()``; ``train`` runs the
forward with gradients enabled, then ``out.backward(d_out)`` (gradients
for the weights and the input x, as rnnkit's backward computes). ``step`` (the latency table's
streaming column) is one time step per call under ``torch.inference_mode()``: the module on x_t of
shape (B, 1, I) with the ``hx`` state it returned on the previous call (zeros at first); the calls
cycle through the T steps of x, and one sample is one step.
"""

from __future__ import annotations

import json
import sys

from rnnkit.bench import summarize, time_call

TORCH_MODULES = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def make_torch_call(torch, cell: str, shape, mode: str, dtype):
    """Return a no-argument function running one ``mode`` call of the PyTorch model of ``cell``."""
    batch, steps, features, units = shape
    module_class = getattr(torch.nn, TORCH_MODULES[cell])
    kwargs = {"nonlinearity": "tanh"} if cell == "simple_rnn" else {}
    model = module_class(features, units, num_layers=1, batch_first=True, **kwargs).to(dtype)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, steps, features, generator=generator, dtype=dtype)
    if mode == "fwd":
        def run():
            with torch.inference_mode():
                return model(x)
        return run
    if mode == "step":
        x_steps = [x[:, t:t + 1].contiguous() for t in range(steps)]  # (B, 1, I) each
        zeros = torch.zeros(1, batch, units, dtype=dtype)
        carried = {"t": 0, "hx": (zeros, zeros.clone()) if cell == "lstm" else zeros}

        def run():
            t = carried["t"]
            with torch.inference_mode():
                out, carried["hx"] = model(x_steps[t], carried["hx"])
            carried["t"] = t + 1 if t + 1 < steps else 0
            return out
        return run

    x.requires_grad_(True)
    d_out = torch.randn(batch, steps, units, generator=generator, dtype=dtype)
    parameters = list(model.parameters())

    def run():
        # fresh gradients every call, like rnnkit's backward (accumulating would add an extra add)
        x.grad = None
        for p in parameters:
            p.grad = None
        out, _ = model(x)
        out.backward(d_out)  # the same work as rnnkit's backward(d_outputs, ...): no extra loss ops
    return run


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m rnnkit.bench.torch_worker JSON_REQUEST", file=sys.stderr)
        return 2
    request = json.loads(argv[0])
    import torch

    torch.set_num_threads(int(request["threads"]))
    dtype = getattr(torch, request["dtype"])
    timing = request.get("timing", {})
    results = []
    for job in request["jobs"]:
        try:
            run = make_torch_call(torch, job["cell"], job["shape"], job["mode"], dtype)
            results.append(summarize(time_call(run, **timing)))
        except Exception as exc:  # report per job; one failing model should not hide the others
            results.append({"error": f"{type(exc).__name__}: {exc}"})
    print(json.dumps({"torch_version": torch.__version__, "threads": torch.get_num_threads(),
                      "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
