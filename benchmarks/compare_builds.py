"""Time the main table's rows through ``rnnkit.ops`` in this process's rnnkit build, to compare two
builds (e.g. before and after a kernel change) interleaved, each in its own process::

    for i in 1 2; do
        /path/to/old-venv/bin/python benchmarks/compare_builds.py > old_$i.json
        /path/to/new-venv/bin/python benchmarks/compare_builds.py > new_$i.json
    done
    python benchmarks/compare_builds.py --compare old_1.json old_2.json -- new_1.json new_2.json

``--cells gru,gru_reset_before`` times only those cells (``gru_reset_before``: GRU reset_after=False).
Prints one JSON object {"<cell> <size> <fwd|train>": median ms}; with --compare, a Markdown table of
the best median per build and their ratio. float32, the default thread count, 15 calls per row
(3 at the large size) after 2 warm-up calls.
"""

import json
import sys
import time

import numpy as np

SIZES = {"seed-numpy": (32, 100, 32, 64), "mnist-rows": (150, 28, 28, 150),
         "medium": (64, 100, 128, 256), "large": (128, 100, 512, 1024)}
CELLS = {"simple_rnn": 1, "lstm": 4, "gru": 3, "gru_reset_before": 3}  # the last: GRU reset_after=False


def median_ms(fn, n, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def measure(cells=None):
    from rnnkit import ops
    rng = np.random.default_rng(0)
    results = {}
    for cell, gates in CELLS.items():
        if cells and cell not in cells:
            continue
        op = "gru" if cell.startswith("gru") else cell
        forward, backward = getattr(ops, op + "_forward"), getattr(ops, op + "_backward")
        options = {"reset_after": False} if cell == "gru_reset_before" else {}
        for size, (B, T, I, H) in SIZES.items():
            kernel = (rng.standard_normal((I, gates * H)) / np.sqrt(I)).astype(np.float32)
            recurrent = (rng.standard_normal((H, gates * H)) / np.sqrt(H)).astype(np.float32)
            bias = np.zeros((2, gates * H) if cell == "gru" else gates * H, np.float32)
            if cell == "gru_reset_before":
                bias = (0.1 * rng.standard_normal(gates * H)).astype(np.float32)
            x = rng.standard_normal((B, T, I)).astype(np.float32)
            d_out = rng.standard_normal((B, T, H)).astype(np.float32)
            n = 3 if size == "large" else 15
            results[f"{cell} {size} fwd"] = median_ms(lambda: forward(x, kernel, recurrent, bias, training=False, **options), n)

            def train():
                out = forward(x, kernel, recurrent, bias, training=True, **options)
                states = (None, None) if cell == "lstm" else (None,)
                backward(d_out, *states, out[-1])

            results[f"{cell} {size} train"] = median_ms(train, n)
    return results


def compare(old_files, new_files):
    old = [json.load(open(f)) for f in old_files]
    new = [json.load(open(f)) for f in new_files]
    print("| cell | size | mode | old ms | new ms | new / old |\n|---|---|---|---:|---:|---:|")
    for key in old[0]:
        o, n = min(r[key] for r in old), min(r[key] for r in new)
        print(f"| {' | '.join(key.split())} | {o:.3f} | {n:.3f} | {n / o:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--compare":
        files = sys.argv[2:]
        cut = files.index("--")
        compare(files[:cut], files[cut + 1:])
    elif len(sys.argv) > 2 and sys.argv[1] == "--cells":
        print(json.dumps(measure(sys.argv[2].split(","))))
    else:
        print(json.dumps(measure()))
