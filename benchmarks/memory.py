"""Peak resident memory of one large-size call, inference vs training, each in a fresh process.

    python benchmarks/memory.py [--cell simple_rnn|lstm|gru] [--size large]

Reports the process's peak RSS growth over a baseline taken after the inputs exist, next to the
arrays the call must return (outputs) and, for training, the cache BPTT needs.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys
import numpy as np
import rnnkit
from rnnkit import bench, ops
cell, size, mode = sys.argv[1:4]
p = bench.make_problem(cell, size, "float32")
fwd = getattr(ops, cell + "_forward")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = fwd(p["x"], p["kernel"], p["recurrent_kernel"], bias=p["bias"], training=(mode == "train"),
             return_sequences=(mode != "fwd-last"))
if mode == "train":
    getattr(ops, cell + "_backward")(p["d_outputs"], *([None, None] if cell == "lstm" else [None]), result[-1])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_mb": (peak - base) / 1024.0}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="simple_rnn")
    parser.add_argument("--size", default="large")
    args = parser.parse_args()
    from rnnkit import bench
    b, t, i, h = bench.SIZES[args.size]
    g = bench.GATES[args.cell]
    mb = 4 / 2**20
    print(f"{args.cell} {args.size} (B,T,I,H = {b},{t},{i},{h}), float32")
    print(f"  outputs (B,T,H): {b * t * h * mb:.0f} MB;  per-step state (B,H): {b * h * mb:.2f} MB;"
          f"  gates over all steps (T,B,G·H): {t * b * g * h * mb:.0f} MB")
    for mode in ("fwd-last", "fwd", "train"):
        out = subprocess.run([sys.executable, "-c", CHILD, args.cell, args.size, mode], capture_output=True,
                             text=True, check=True)
        growth = json.loads(out.stdout.strip().splitlines()[-1])["growth_mb"]
        label = {"fwd-last": "inference, return_sequences=False", "fwd": "inference, return_sequences=True",
                 "train": "training forward + backward"}[mode]
        print(f"  {label:38s} peak RSS growth {growth:8.0f} MB")


if __name__ == "__main__":
    main()
