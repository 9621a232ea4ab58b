"""``python -m rnnkit.bench --torch-modules`` (or ``python -m rnnkit.bench.torch_modules``): rnnkit.torch
against torch.nn inside PyTorch programs, side by side::

    python -m rnnkit.bench --torch-modules [--cells lstm,gru,simple_rnn] [--threads 2] [--repeat 5]
                                           [--parts train,packed,infer] [--json FILE]

Three tables, float32, every row timing the rnnkit.torch module and the torch.nn module built from
the same ``state_dict``, alternating call by call (medians of individually timed calls):

- ``train``: one full training step of ``RNN → Linear(H, 1)`` per time step (``batch_first=True``):
  ``zero_grad``, forward, MSE loss, ``backward()``, ``Adam.step()``; at seed-numpy, mnist-rows,
  medium and large.
- ``packed``: the same step on a PackedSequence (``enforce_sorted=False``) at medium, lengths uniform
  in [T/2, T]; the head runs on the packed data.
- ``infer``: ``torch.no_grad()`` forward at B = 1, T = 100, I = H in 256, 512, 1024 (serving sizes).

Both modules run in ONE process here (they are both PyTorch modules; there is no other way to
compare them inside a PyTorch program), so PyTorch's OpenMP pool and rnnkit's share the cores, as
they do for a user. The threads: ``torch.set_num_threads(threads)``; rnnkit.torch follows it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

TRAIN_SIZES = {"seed-numpy": (32, 100, 32, 64), "mnist-rows": (150, 28, 28, 150),
               "medium": (64, 100, 128, 256), "large": (128, 100, 512, 1024)}
SERVING_UNITS = (256, 512, 1024)
MODULES = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
PARTS = ("train", "packed", "infer")


def _models(torch, rt, cell, features, units, dtype):
    name = MODULES[cell]
    torch.manual_seed(0)
    reference = getattr(torch.nn, name)(features, units, batch_first=True).to(dtype)
    ours = getattr(rt, name)(features, units, batch_first=True).to(dtype)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def _train_step(torch, rnn, x, y, packed):
    torch.manual_seed(1)
    head = torch.nn.Linear(rnn.hidden_size, 1).to(y.dtype)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-4)
    mse = torch.nn.functional.mse_loss

    def step():
        opt.zero_grad(set_to_none=True)
        out, _ = rnn(x)
        loss = mse(head(out.data if packed else out), y)
        loss.backward()
        opt.step()
    return step


def _infer_call(torch, rnn, x):
    def call():
        with torch.no_grad():
            rnn(x)
    return call


def _time_pair(calls, repeat, warmup, max_time):
    """Time the two calls alternately (order swapped every round); return their sample lists."""
    perf_counter = time.perf_counter
    for _ in range(warmup):
        for fn in calls:
            fn()
    samples = [[] for _ in calls]
    start = perf_counter()
    for r in range(repeat):
        order = range(len(calls)) if r % 2 == 0 else reversed(range(len(calls)))
        for i in order:
            t0 = perf_counter()
            calls[i]()
            samples[i].append(perf_counter() - t0)
        if perf_counter() - start > max_time and r >= 2:
            break
    return samples


def run(args) -> dict:
    import numpy as np
    import torch

    import rnnkit
    import rnnkit.torch as rt

    torch.set_num_threads(args.threads)
    dtype = torch.float32
    rows = []

    def record(part, cell, size, shape, pair_samples, note=""):
        ours, theirs = (statistics.median(s) * 1e3 for s in pair_samples)
        row = dict(part=part, cell=cell, size=size, shape=list(shape), rnnkit_ms=ours, torch_ms=theirs,
                   speedup=theirs / ours, samples=len(pair_samples[0]), note=note)
        rows.append(row)
        print(f"  {part:6} {cell:10} {size:11} rnnkit.torch {ours:9.2f} ms  torch.nn {theirs:9.2f} ms  "
              f"{theirs / ours:5.2f}x", file=sys.stderr, flush=True)

    gen = torch.Generator().manual_seed(0)
    for cell in args.cells:
        if "train" in args.parts:
            for size in args.sizes:
                b, t, i, h = TRAIN_SIZES[size]
                x = torch.randn(b, t, i, generator=gen, dtype=dtype)
                y = torch.randn(b, t, 1, generator=gen, dtype=dtype)
                reference, ours = _models(torch, rt, cell, i, h, dtype)
                calls = [_train_step(torch, ours, x, y, False), _train_step(torch, reference, x, y, False)]
                big = size == "large"
                record("train", cell, size, (b, t, i, h),
                       _time_pair(calls, max(3, args.repeat // 2) if big else args.repeat, 1 if big else 2,
                                  args.max_time))
        if "packed" in args.parts:
            b, t, i, h = TRAIN_SIZES["medium"]
            rng = np.random.default_rng(0)
            lengths = torch.from_numpy(rng.integers(t // 2, t + 1, size=b))
            x = torch.randn(b, t, i, generator=gen, dtype=dtype)
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            y = torch.randn(packed.data.shape[0], 1, generator=gen, dtype=dtype)
            reference, ours = _models(torch, rt, cell, i, h, dtype)
            calls = [_train_step(torch, ours, packed, y, True), _train_step(torch, reference, packed, y, True)]
            record("packed", cell, "medium", (b, t, i, h), _time_pair(calls, args.repeat, 2, args.max_time),
                   note="lengths uniform in [T/2, T]")
        if "infer" in args.parts:
            for units in SERVING_UNITS:
                x = torch.randn(1, 100, units, generator=gen, dtype=dtype)
                reference, ours = _models(torch, rt, cell, units, units, dtype)
                calls = [_infer_call(torch, ours, x), _infer_call(torch, reference, x)]
                record("infer", cell, f"B=1 H={units}", (1, 100, units, units),
                       _time_pair(calls, 3 * args.repeat, 3, args.max_time))
    env = dict(torch=torch.__version__, rnnkit_threads=rt.get_num_threads(), torch_threads=torch.get_num_threads(),
               cpu=_cpu_name(), python=platform.python_version(),
               omp_env={k: v for k, v in os.environ.items() if k.startswith(("OMP_", "GOMP_"))},
               isa=_isa(rnnkit))
    return dict(env=env, rows=rows)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _isa(rnnkit) -> str:
    try:
        from rnnkit import _native
        return _native.isa()
    except Exception:
        return "-"


def format_table(result: dict) -> str:
    env = result["env"]
    lines = [f"rnnkit.torch vs torch.nn, float32, {env['torch_threads']} threads (rnnkit {env['rnnkit_threads']}), "
             f"torch {env['torch']}, {env['cpu']}, ISA {env['isa']}"
             + (f", {env['omp_env']}" if env["omp_env"] else ""),
             "",
             "| part | cell | size | B, T, I, H | rnnkit.torch ms | torch.nn ms | speedup |",
             "|---|---|---|---|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['part']} | {MODULES[r['cell']]} | {r['size']} | {', '.join(map(str, r['shape']))} | "
                     f"{r['rnnkit_ms']:.2f} | {r['torch_ms']:.2f} | {r['speedup']:.2f}x |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rnnkit.bench --torch-modules",
                                     description="rnnkit.torch vs torch.nn: training steps, PackedSequence, "
                                                 "B=1 inference (one process)")
    parser.add_argument("--cells", default="lstm,gru,simple_rnn", help="comma list of lstm, gru, simple_rnn")
    parser.add_argument("--sizes", default=",".join(TRAIN_SIZES), help="training sizes (comma list)")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma list of train, packed, infer")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeat", type=int, default=8, help="timed steps per module and row (default 8)")
    parser.add_argument("--max-time", type=float, default=60.0, help="seconds per row before stopping early")
    parser.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for option, known in (("cells", MODULES), ("sizes", TRAIN_SIZES), ("parts", PARTS)):
        values = [v.strip() for v in getattr(args, option).split(",") if v.strip()]
        unknown = [v for v in values if v not in known]
        if unknown:
            parser.error(f"--{option}: unknown {', '.join(unknown)} (known: {', '.join(known)})")
        setattr(args, option, values)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("rnnkit bench --torch-modules: torch is not installed (pip install \".[torch]\")", file=sys.stderr)
        return 1
    result = run(args)
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
