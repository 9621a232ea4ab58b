"""One training epoch with 1 rank x 2 threads against 2 ranks x 1 thread (issue 13), and the inputs of
the scaling model in RESULTS.md ("Data parallelism over MPI").

    python benchmarks/mpi_scaling.py [--sizes mnist-rows,medium] [--rounds 5] [--json out.json]

Model per size (rnnkit.bench.SIZES: B, T, I, H): LSTM(H) on (T, I) inputs + Dense(10, softmax),
sparse categorical cross-entropy, Adam, float32, global batch B, ``--steps`` steps per epoch.
Each configuration runs in fresh processes: ``python this --worker`` (one process, 2 threads, plain
``fit``) and ``mpiexec -n 2 --bind-to none python this --worker --mpi`` (``fit(distributed="mpi")``,
1 thread per rank by rnnkit's default). A worker trains one warm-up epoch, then times
``--epochs`` epochs, and reports the median epoch; in MPI runs also the time inside
``reduce_gradients`` (scaling, the Allreduce, waiting for the other rank) and a bare Allreduce of
the gradient buffer. The two configurations alternate (A B, B A, ...) over ``--rounds`` rounds, so
both sample the same spells of a shared, noisy host; the table gives each one's median and range
and the ratio per round.

``--step-times``: one process, one thread: the CPU time of one training step at local batch B/N
for N = 1, 2, 4, ..., 64 (the compute per step of one single-core machine when N machines share
batch B), which with the gradient size feeds the alpha-beta model of RESULTS.md (``--model``
prints it again from a ``--json`` file).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

SIZES = {"mnist-rows": (150, 28, 28, 150), "medium": (64, 100, 128, 256)}  # == rnnkit.bench.SIZES
NS = (1, 2, 4, 8, 16, 32, 64)
BETA = 10e9 / 8            # bytes/s of a 10 Gb/s link
ALPHAS = (5e-6, 50e-6)     # per-message latency: RDMA-class, and kernel TCP


def ring_allreduce_s(nbytes, n, alpha, beta=BETA):
    """Ring all-reduce of ``nbytes`` over ``n`` machines: reduce-scatter + all-gather, 2 (n - 1)
    messages of nbytes / n each."""
    return 0.0 if n == 1 else 2 * (n - 1) * alpha + 2 * (n - 1) / n * nbytes / beta


def model_table(step_times):
    """Efficiency at N machines of one core each (one rank, one thread) from the measured CPU time
    per step at local batch B/N and the alpha-beta cost of the two all-reduces of a step (the
    gradients, and the few log values), which are not overlapped with compute."""
    lines = []
    for size in SIZES:
        rows = {r["N"]: r for r in step_times.values() if r["size"] == size}
        if not rows:
            continue
        t1 = rows[1]["step_s"]
        nbytes = rows[1]["params"] * 4 + 8
        lines.append(f"{size}: gradient {nbytes / 1e6:.2f} MB, compute {t1 * 1e3:.1f} ms/step at "
                     f"B = {rows[1]['local_batch']} on one core")
        lines.append(f"{'N':>3s} {'B/N':>4s} {'compute ms':>10s} | "
                     + " | ".join(f"{'a=' + format(a * 1e6, '.0f') + 'us: allreduce ms':>22s} "
                                  f"{'strong eff':>10s} {'weak eff':>8s}" for a in ALPHAS))
        for n in NS:
            r = rows[n]
            cells = []
            for alpha in ALPHAS:
                comm = ring_allreduce_s(nbytes, n, alpha) + ring_allreduce_s(64, n, alpha)
                strong = t1 / (n * (r["step_s"] + comm))
                weak = t1 / (t1 + comm)
                cells.append(f"{comm * 1e3:22.3f} {strong:10.2f} {weak:8.2f}")
            lines.append(f"{n:3d} {r['local_batch']:4d} {r['step_s'] * 1e3:10.2f} | " + " | ".join(cells))
        lines.append("")
    return "\n".join(lines)


def _model(size):
    import rnnkit
    _, steps, features, units = SIZES[size]
    model = rnnkit.Sequential([rnnkit.LSTM(units, seed=0), rnnkit.Dense(10, activation="softmax", seed=1)])
    model.compile(optimizer=rnnkit.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.build((None, steps, features))
    return model


def _data(size, rows):
    _, steps, features, _ = SIZES[size]
    rng = np.random.default_rng(0)
    return (rng.standard_normal((rows, steps, features)).astype(np.float32),
            rng.integers(0, 10, size=rows))


def worker(args):
    """One configuration: warm-up epoch, then the median of ``--epochs`` timed epochs."""
    import rnnkit
    dist = None
    if args.mpi:
        from rnnkit.distributed import get_strategy
        dist = get_strategy("mpi")
    else:
        rnnkit.set_num_threads(args.threads)
    batch = SIZES[args.size][0]
    x, y = _data(args.size, batch * args.steps)
    model = _model(args.size)
    in_reduce = [0.0]
    if dist is not None:
        original = dist.reduce_gradients

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                in_reduce[0] += time.perf_counter() - t0
        dist.reduce_gradients = timed
    times, reduce_times = [], []

    class EpochTimer(rnnkit.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            in_reduce[0] = 0.0
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if epoch > 0:                                     # epoch 0: warm-up
                times.append(time.perf_counter() - self.t0)
                reduce_times.append(in_reduce[0])

    model.fit(x, y, epochs=1 + args.epochs, batch_size=batch, verbose=0, seed=0,
              callbacks=[EpochTimer()], distributed="mpi" if dist else None)
    out = {"size": args.size, "ranks": dist.size if dist else 1,
           "threads": rnnkit.get_num_threads(), "steps": args.steps,
           "epoch_s": statistics.median(times), "epochs_s": times,
           "params": int(model.count_params()), "grad_bytes": int(model.count_params()) * 4}
    if dist is not None:
        out["reduce_s_per_step"] = statistics.median(reduce_times) / args.steps
        # a bare Allreduce of the same buffer (shared memory between the 2 ranks of this machine)
        from mpi4py import MPI
        buf = np.ones(model.count_params() + 2, dtype=np.float32)
        reps = 50
        for _ in range(5):
            dist.comm.Allreduce(MPI.IN_PLACE, buf)
        dist.comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(reps):
            dist.comm.Allreduce(MPI.IN_PLACE, buf)
        out["bare_allreduce_s"] = (time.perf_counter() - t0) / reps
        if not dist.is_chief:
            return
    print("RESULT " + json.dumps(out), flush=True)


def step_times(args):
    """One process, one thread: seconds per training step at local batch ceil(B / N), as CPU time
    (``time.process_time``: what the step costs a core, robust to other processes taking turns on
    a shared host; wall time is noted alongside)."""
    import rnnkit
    rnnkit.set_num_threads(1)
    rows = {}
    for size in args.sizes.split(","):
        batch = SIZES[size][0]
        model = _model(size)
        for n in NS:
            local = -(-batch // n)
            steps = max(10, min(40, 4 * n))
            x, y = _data(size, local * steps)
            model.fit(x[:local * 2], y[:local * 2], epochs=1, batch_size=local, verbose=0, seed=0)
            cpu, wall = [], []
            for _ in range(5):
                c0, t0 = time.process_time(), time.perf_counter()
                model.fit(x, y, epochs=1, batch_size=local, verbose=0, seed=0)
                cpu.append((time.process_time() - c0) / steps)
                wall.append((time.perf_counter() - t0) / steps)
            rows[f"{size}/{n}"] = {"size": size, "N": n, "local_batch": local,
                                   "step_s": statistics.median(cpu), "cpu_s": cpu, "wall_s": wall,
                                   "params": int(model.count_params())}
            print(f"{size:10s} N={n:2d} local batch {local:3d}: CPU {statistics.median(cpu) * 1e3:8.2f} "
                  f"ms/step (range {min(cpu) * 1e3:.2f}-{max(cpu) * 1e3:.2f}); wall min "
                  f"{min(wall) * 1e3:.2f}, median {statistics.median(wall) * 1e3:.2f}", flush=True)
    return rows


def _mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def _run(command):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"no RESULT line from {' '.join(command)}:\n{proc.stdout[-2000:]}")


def driver(args):
    me = os.path.abspath(__file__)
    mpiexec = _mpiexec()
    if mpiexec is None:
        sys.exit('no mpiexec beside python or on PATH: pip install ".[mpi]"')
    common = ["--steps", str(args.steps), "--epochs", str(args.epochs)]
    configs = {
        "1 rank x 2 threads": lambda size: [sys.executable, me, "--worker", "--size", size,
                                            "--threads", "2", *common],
        "2 ranks x 1 thread": lambda size: [mpiexec, "--oversubscribe", "--bind-to", "none", "-n", "2",
                                            sys.executable, "-m", "mpi4py", me, "--worker", "--mpi",
                                            "--size", size, *common],
    }
    names = list(configs)
    results = {}
    load = []
    for size in args.sizes.split(","):
        runs = {name: [] for name in names}
        for r in range(args.rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                load.append(os.getloadavg()[0])
                runs[name].append(_run(configs[name](size)))
            a, b = (runs[n][-1]["epoch_s"] for n in names)
            print(f"{size} round {r + 1}: {names[0]} {a:.3f} s, {names[1]} {b:.3f} s, "
                  f"throughput ratio {a / b:.3f}", flush=True)
        results[size] = runs
    print()
    print(f"one epoch, float32, global batch B, {args.steps} steps; {args.rounds} interleaved rounds, "
          f"median of {args.epochs} epochs per run; load average before runs "
          f"{min(load):.2f}-{max(load):.2f}")
    print(f"{'size':10s} {'config':20s} {'epoch s (median)':>16s} {'min-max':>15s} {'ms/step':>8s} "
          f"{'reduce ms/step':>14s} {'bare allreduce ms':>17s}")
    summary = {}
    for size, runs in results.items():
        med = {}
        for name in names:
            e = [run["epoch_s"] for run in runs[name]]
            med[name] = statistics.median(e)
            red = [run.get("reduce_s_per_step") for run in runs[name]]
            bare = [run.get("bare_allreduce_s") for run in runs[name]]
            red_s = f"{statistics.median(red) * 1e3:.2f}" if red[0] is not None else "-"
            bare_s = f"{statistics.median(bare) * 1e3:.3f}" if bare[0] is not None else "-"
            print(f"{size:10s} {name:20s} {med[name]:16.3f} {min(e):7.3f}-{max(e):7.3f} "
                  f"{med[name] / args.steps * 1e3:8.2f} {red_s:>14s} {bare_s:>17s}")
        ratios = [a["epoch_s"] / b["epoch_s"] for a, b in zip(runs[names[0]], runs[names[1]])]
        summary[size] = {"ratio_of_medians": med[names[0]] / med[names[1]],
                         "ratios_per_round": ratios,
                         "grad_bytes": runs[names[1]][0]["grad_bytes"],
                         "threads": {n: runs[n][0]["threads"] for n in names}}
        print(f"{size:10s} 2 ranks x 1 thread throughput / 1 rank x 2 threads: "
              f"{summary[size]['ratio_of_medians']:.3f} (per round {min(ratios):.3f}-{max(ratios):.3f}); "
              f"gradient {summary[size]['grad_bytes'] / 1e6:.2f} MB")
    out = {"results": results, "summary": summary, "load": load}
    if args.step_times:
        print()
        out["step_times"] = step_times(args)
        print()
        print(model_table(out["step_times"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="mnist-rows,medium")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="steps (global batches) per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run (median)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    parser.add_argument("--step-times", action="store_true",
                        help="also time one step at local batch B/N (one process), for the model")
    parser.add_argument("--only-step-times", action="store_true")
    parser.add_argument("--model", metavar="JSON", help="print the scaling model from a --json file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mpi", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model:
        with open(args.model) as f:
            print(model_table(json.load(f)["step_times"]))
    elif args.worker:
        worker(args)
    elif args.only_step_times:
        rows = step_times(args)
        print()
        print(model_table(rows))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"step_times": rows}, f, indent=1)
    else:
        driver(args)


if __name__ == "__main__":
    main()
