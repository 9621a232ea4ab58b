"""examples/seq2seq_reverse.py, shortened: the encoder-decoder trains through the functional API and
the greedy one-step decoder (a model sharing the trained layers) reverses held-out sequences."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "seq2seq_reverse.py"


def _load():
    spec = importlib.util.spec_from_file_location("seq2seq_reverse", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_and_decoder_share_the_training_weights():
    ex = _load()
    enc, dec_in, target, digits = ex.make_data(4, seed=3)
    for row_enc, row_in, row_target, d in zip(enc, dec_in, target, digits):
        n = len(d)
        assert 5 <= n <= 12 and list(row_enc[:n]) == list(d + 1) and not row_enc[n:].any()
        assert row_in[0] == ex.START and list(row_in[1:n + 1]) == list(d[::-1] + 1)
        assert list(row_target[:n + 1]) == list(d[::-1] + 1) + [ex.END]
    train, encoder, decoder = ex.build(units=8, embed=4)
    shared = {id(w) for w in train.weights}
    assert {id(w) for w in encoder.weights} <= shared and {id(w) for w in decoder.weights} <= shared
    # teacher-forced training outputs == the one-step decoder fed the same tokens
    full = train.predict([enc, dec_in])
    h, c = encoder.predict(enc)
    for t in range(3):
        probs, h, c = decoder.predict([dec_in[:, t:t + 1], h, c])
        np.testing.assert_allclose(probs[:, 0], full[:, t], rtol=1e-5, atol=1e-6)


def test_short_training_run_reverses_sequences():
    ex = _load()
    acc, _ = ex.main(n_train=2000, n_test=200, epochs=4, units=64, batch_size=32, min_len=3, max_len=5,
                     learning_rate=3e-3, decay_steps=2000, verbose=0)
    assert acc >= 0.8, acc
