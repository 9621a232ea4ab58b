"""The ``rnnkit`` command (also ``python -m rnnkit``).

    rnnkit                                   print this help
    rnnkit demo [--quick] [--seed N] [--plot PATH | --no-plot]
    rnnkit bench [...]                       the benchmark table (``rnnkit bench --help``)

The demo trains two small models end to end with the Keras-like API and checks them against stated
targets:

1. a time-series forecaster — ``SimpleRNN(100, relu, return_sequences=True)`` + ``Dense(1)`` per step
   on windows of ``f(t) = t·sin(t)/3 + 2·sin(5t)``, MSE, Adam(1e-3), 1500 steps on batches of 50
   freshly generated windows; target: MSE ≤ 0.1 on unseen windows;
2. a digits classifier — scikit-learn's 8×8 digits read as 8 steps of 8 features,
   ``SimpleRNN(150, tanh)`` + ``Dense(10, softmax)``, sparse categorical cross-entropy, Adam(1e-3);
   target: test accuracy ≥ 95 %.

The exit status is 0 when every target is met (``--quick`` runs shorter and checks nothing).
"""

from __future__ import annotations

import argparse
import sys
import time

#: (windows per step, optimizer steps) of the forecaster: batches of 50 fresh windows, 1500 steps
TS_BATCH, TS_STEPS, TS_QUICK_STEPS = 50, 1500, 300
TS_TARGET_MSE = 0.1
#: epochs and batch size of the digits classifier
DIGITS_EPOCHS, DIGITS_QUICK_EPOCHS, DIGITS_BATCH = 15, 3, 32
DIGITS_TARGET_ACCURACY = 0.95
DEFAULT_PLOT = "rnnkit-demo-forecast.png"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description="rnnkit: fast CPU recurrent neural networks with a Keras-like API.",
        epilog="Run 'rnnkit demo' for a one-minute tour, 'rnnkit bench --help' for the benchmark.")
    parser.add_argument("--version", action="version", version=f"rnnkit {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="{demo,bench}")
    demo = sub.add_parser("demo", help="train a time-series forecaster and a digits classifier",
                          description="Train two small models and check them against targets "
                                      f"(forecast MSE <= {TS_TARGET_MSE}, digits test accuracy >= "
                                      f"{DIGITS_TARGET_ACCURACY:.0%}).")
    demo.add_argument("--quick", action="store_true",
                      help=f"short run ({TS_QUICK_STEPS} forecaster steps, {DIGITS_QUICK_EPOCHS} "
                           "digits epochs); targets are not checked")
    demo.add_argument("--seed", type=int, default=0, help="seed of data, weights and shuffling "
                                                          "(default 0)")
    plot = demo.add_mutually_exclusive_group()
    plot.add_argument("--plot", metavar="PATH", default=DEFAULT_PLOT,
                      help=f"where to save the forecast-vs-truth PNG (default {DEFAULT_PLOT}; "
                           "needs matplotlib)")
    plot.add_argument("--no-plot", action="store_true", help="do not save the plot")
    sub.add_parser("bench", help="benchmark the kernels (arguments go to 'rnnkit bench')",
                   add_help=False)
    return parser


def _version():
    from . import __version__
    return __version__


def main(argv=None) -> int:
    """Entry point of the ``rnnkit`` script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        # everything after "bench" belongs to the benchmark's own parser
        from . import bench
        return bench.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return run_demo(quick=args.quick, seed=args.seed, plot=None if args.no_plot else args.plot)


# -----------------------------------------------------------------------------------------------
# demo
# -----------------------------------------------------------------------------------------------


def _say(*parts):
    print(*parts, flush=True)


def run_demo(quick=False, seed=0, plot=DEFAULT_PLOT) -> int:
    """Run both demo models; returns 0 if the targets are met (always 0 with ``quick``)."""
    import rnnkit

    say = _say
    start = time.perf_counter()
    say(f"rnnkit {rnnkit.__version__} demo - backend {rnnkit.get_backend()}, "
        f"{rnnkit.get_num_threads()} thread(s){' (quick run)' if quick else ''}")
    mse, _ = demo_time_series(TS_QUICK_STEPS if quick else TS_STEPS, seed, plot, say)
    accuracy, _ = demo_digits(DIGITS_QUICK_EPOCHS if quick else DIGITS_EPOCHS, seed, say)
    say(f"\ndemo finished in {time.perf_counter() - start:.1f} s")
    if quick:
        say("quick run: targets not checked")
        return 0
    ok = mse is not None and mse <= TS_TARGET_MSE and accuracy is not None and \
        accuracy >= DIGITS_TARGET_ACCURACY
    say("all targets met" if ok else "some target was missed")
    return 0 if ok else 1


def demo_time_series(steps, seed, plot, say, verbose=1):
    """Train the forecaster for ``steps`` optimizer steps; returns (MSE on fresh windows, model)."""
    from . import datasets, optimizers
    from .layers import Dense, SimpleRNN
    from .models import Sequential

    say("\n[1/2] time-series forecaster: SimpleRNN(100, relu, return_sequences) + Dense(1) per step")
    say("      f(t) = t*sin(t)/3 + 2*sin(5t) in windows of 20 steps; target: the next value at "
        "every step")
    say(f"      MSE, Adam(1e-3), {steps} steps on batches of {TS_BATCH} freshly generated windows")
    # One epoch over steps * 50 distinct windows: every optimizer step sees new data.
    x, y = datasets.time_series(TS_BATCH * steps, n_steps=20, seed=seed)
    model = Sequential([SimpleRNN(100, activation="relu", return_sequences=True, seed=seed),
                        Dense(1, seed=seed + 1)])
    model.compile(optimizer=optimizers.Adam(1e-3), loss="mse")
    t0 = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=TS_BATCH, shuffle=False, verbose=verbose, seed=seed)
    train_time = time.perf_counter() - t0
    x_test, y_test = datasets.time_series(1000, n_steps=20, seed=seed + 1000)
    mse = float(model.evaluate(x_test, y_test, batch_size=500, verbose=0))
    verdict = "ok" if mse <= TS_TARGET_MSE else "MISSED"
    say(f"      trained in {train_time:.1f} s; MSE on 1000 unseen windows: {mse:.4f} "
        f"(target <= {TS_TARGET_MSE}: {verdict})")
    if plot:
        _plot_forecast(model, plot, say)
    return mse, model


def _plot_forecast(model, path, say):
    """Save a PNG: the whole series with one window marked, and that window's forecast vs truth."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        say('      plot skipped: matplotlib is not installed (pip install "rnnkit[demo]")')
        return
    import numpy as np

    from . import datasets

    t0 = 12.2  # a window with both slow and fast oscillation
    x, y = datasets.time_series(starts=[t0], n_steps=20, dtype="float64")
    y_hat = model.predict(x.astype(model.layers[0].dtype))[0, :, 0]
    t_inputs = t0 + np.arange(20) * datasets.RESOLUTION
    t_targets = t_inputs + datasets.RESOLUTION
    t_all = np.linspace(datasets.T_MIN, datasets.T_MAX, 1000)

    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    left.plot(t_all, datasets.series_value(t_all), label="f(t) = t sin(t)/3 + 2 sin(5t)")
    left.axvspan(t_inputs[0], t_targets[-1], color="orange", alpha=0.3, label="window shown right")
    left.set_xlabel("t")
    left.set_title("the series")
    left.legend(loc="lower left")
    right.plot(t_inputs, x[0, :, 0], "bo", markersize=8, alpha=0.4, label="inputs")
    right.plot(t_targets, y[0, :, 0], "w*", markeredgecolor="k", markersize=10, label="truth (next value)")
    right.plot(t_targets, y_hat, "r.", markersize=10, label="forecast")
    right.set_xlabel("t")
    right.set_title("next-step forecast vs truth")
    right.legend(loc="upper left")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        say(f"      plot not saved: {exc}")
        return
    say(f"      plot saved to {path}")


def demo_digits(epochs, seed, say, verbose=2):
    """Train the digits classifier; returns (test accuracy, model), (None, None) without sklearn."""
    from . import datasets, optimizers
    from .layers import Dense, SimpleRNN
    from .models import Sequential

    say("\n[2/2] digits classifier: 8x8 images read as 8 steps of 8 features")
    say("      SimpleRNN(150, tanh) + Dense(10, softmax), sparse categorical cross-entropy, "
        f"Adam(1e-3), {epochs} epochs, batches of {DIGITS_BATCH}")
    try:
        (x_train, y_train), (x_test, y_test) = datasets.load_digits_sequences(test_fraction=0.2,
                                                                               seed=seed)
    except ImportError as exc:
        say(f"      skipped: {exc}")
        return None, None
    model = Sequential([SimpleRNN(150, seed=seed), Dense(10, activation="softmax", seed=seed + 1)])
    model.compile(optimizer=optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=DIGITS_BATCH, verbose=verbose, seed=seed)
    train_time = time.perf_counter() - t0
    _, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    verdict = "ok" if accuracy >= DIGITS_TARGET_ACCURACY else "MISSED"
    say(f"      trained in {train_time:.1f} s on {len(x_train)} images; test accuracy on "
        f"{len(x_test)} images: {accuracy:.2%} (target >= {DIGITS_TARGET_ACCURACY:.0%}: {verdict})")
    return float(accuracy), model


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
