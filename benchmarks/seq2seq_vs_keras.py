"""Training speed of examples/seq2seq_reverse.py's encoder-decoder: rnnkit vs Keras 3 (torch backend).

The same model (Embedding(mask_zero) -> LSTM encoder whose states start an LSTM decoder -> Dense
softmax), the same generated data, the same optimizer and batch size, built by one function from
either library. Each side trains in its own process (PyTorch and rnnkit would share one OpenMP
runtime in one process), the two alternate ``--rounds`` times, and the table shows each round's
seconds per epoch (after one warm-up epoch) and the median ratio. The machine may be shared: compare
within a run, and look at the spread of the rounds.

    python benchmarks/seq2seq_vs_keras.py                       # 8000 samples, 3 rounds
    python benchmarks/seq2seq_vs_keras.py --samples 4000 --rounds 5 --threads 1 --json out.json

Needs keras and torch (``pip install torch==2.13.0 keras``) for the Keras column.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))


def build(lib, units, embed=32, vocab=13):
    L = lib.layers
    enc_in = lib.Input((None,), dtype="int32")
    dec_in = lib.Input((None,), dtype="int32")
    _, h, c = L.LSTM(units, return_state=True)(L.Embedding(vocab, embed, mask_zero=True)(enc_in))
    seq, _, _ = L.LSTM(units, return_sequences=True, return_state=True)(
        L.Embedding(vocab, embed, mask_zero=True)(dec_in), initial_state=[h, c])
    model = lib.Model([enc_in, dec_in], L.Dense(vocab, activation="softmax")(seq))
    model.compile(optimizer=lib.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return model


def worker(lib_name, samples, units, batch_size, epochs, threads):
    import seq2seq_reverse as example
    if lib_name == "keras":
        os.environ["KERAS_BACKEND"] = "torch"
        import warnings
        warnings.simplefilter("ignore")
        import keras as lib
        import torch
        if threads:
            torch.set_num_threads(threads)
    else:
        import rnnkit as lib
        if threads:
            lib.set_num_threads(threads)
    enc, dec_in, target, _ = example.make_data(samples, seed=0)
    model = build(lib, units)
    model.fit([enc, dec_in], target, epochs=1, batch_size=batch_size, verbose=0)   # warm-up
    start = time.perf_counter()
    model.fit([enc, dec_in], target, epochs=epochs, batch_size=batch_size, verbose=0)
    return (time.perf_counter() - start) / epochs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8000)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per round (after a warm-up)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="threads of each library (0: its default)")
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--worker", choices=["rnnkit", "keras"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps({"seconds_per_epoch": worker(args.worker, args.samples, args.units,
                                                       args.batch_size, args.epochs, args.threads)}))
        return
    results = {"rnnkit": [], "keras": []}
    for r in range(args.rounds):
        for lib_name in ("rnnkit", "keras"):
            cmd = [sys.executable, __file__, "--worker", lib_name, "--samples", str(args.samples),
                   "--units", str(args.units), "--batch-size", str(args.batch_size),
                   "--epochs", str(args.epochs), "--threads", str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{lib_name} worker failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                results[lib_name].append(None)
                continue
            seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds_per_epoch"]
            results[lib_name].append(seconds)
            print(f"round {r + 1}: {lib_name:6s} {seconds:8.2f} s/epoch", flush=True)
    med = {k: statistics.median([v for v in vals if v is not None]) if any(v is not None for v in vals)
           else None for k, vals in results.items()}
    steps = -(-args.samples // args.batch_size)
    print(f"\nseq2seq reverse, {args.samples} samples, LSTM {args.units}, batch {args.batch_size} "
          f"({steps} steps/epoch), threads {args.threads or 'default'}")
    for k in ("rnnkit", "keras"):
        if med[k] is not None:
            print(f"  {k:6s} median {med[k]:.2f} s/epoch ({med[k] / steps * 1e3:.1f} ms/step)")
    if med["rnnkit"] and med["keras"]:
        print(f"  rnnkit is {med['keras'] / med['rnnkit']:.1f}x faster than Keras 3 (torch backend)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rounds": results, "median": med}, f, indent=1)


if __name__ == "__main__":
    main()
