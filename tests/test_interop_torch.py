"""rnnkit.interop.from_torch (docs/INTEROP.md §2, docs/SPEC.md §16): every ``torch.nn`` recurrent
configuration — cell (RNN tanh / relu, LSTM, GRU), num_layers, bidirectional, bias, batch_first,
dropout — and ``torch.nn.Linear``; ``rnnkit.Sequential(from_torch(m)).predict(x)`` equals ``m(x)[0]``
for batch-first x (float32: 1e-5 of the output scale; float64: 1e-10, docs/SPEC.md §14.7), also at
a batch / time the module never saw, and through rnnkit's streaming API."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnnkit  # noqa: E402
from rnnkit.interop import from_torch  # noqa: E402

pytestmark = pytest.mark.torch

I, H = 3, 4
MODULES = {"rnn-tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}), "rnn-relu": (torch.nn.RNN, {"nonlinearity": "relu"}),
           "lstm": (torch.nn.LSTM, {}), "gru": (torch.nn.GRU, {})}


def torch_output(module, x, batch_first):
    with torch.no_grad():
        xt = torch.from_numpy(x)
        y = module(xt if batch_first else xt.transpose(0, 1))[0]
        return (y if batch_first else y.transpose(0, 1)).numpy()


def make(kind, dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    cls, extra = MODULES[kind]
    module = cls(I, H, **extra, **kwargs).to(dtype).eval()
    with torch.no_grad():   # biases far from zero, so that both of them matter
        for name, p in module.named_parameters():
            if name.startswith("bias"):
                p.uniform_(-1, 1)
    return module


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_first"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("kind", list(MODULES))
def test_recurrent_modules(kind, num_layers, bidirectional, bias, batch_first):
    module = make(kind, num_layers=num_layers, bidirectional=bidirectional, bias=bias,
                  batch_first=batch_first, dropout=0.25 if num_layers > 1 else 0.0)
    layers = from_torch(module)
    model = rnnkit.Sequential(layers)
    rng = np.random.default_rng(1)
    for batch, steps in [(4, 6), (1, 9)]:
        x = rng.standard_normal((batch, steps, I)).astype(np.float32)
        want = torch_output(module, x, batch_first)
        got = model.predict(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, float(np.abs(want).max())))
    recurrent = [layer for layer in layers if not isinstance(layer, rnnkit.Dropout)]
    assert len(recurrent) == num_layers
    assert all(isinstance(layer, rnnkit.Bidirectional) == bidirectional for layer in recurrent)
    dropouts = [layer.rate for layer in layers if isinstance(layer, rnnkit.Dropout)]
    assert dropouts == ([0.25] * (num_layers - 1))


@pytest.mark.parametrize("kind", list(MODULES))
def test_float64(kind):
    module = make(kind, dtype=torch.float64, num_layers=2, bidirectional=True, batch_first=True)
    layers = from_torch(module)
    assert all(layer.dtype == np.float64 for layer in layers)
    x = np.random.default_rng(2).standard_normal((3, 7, I))
    want = torch_output(module, x, True)
    np.testing.assert_allclose(rnnkit.Sequential(layers).predict(x), want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", list(MODULES))
def test_streaming(kind):
    """A unidirectional module runs one step per call through model.stream()."""
    module = make(kind, num_layers=2, batch_first=True)
    model = rnnkit.Sequential(from_torch(module))
    x = np.random.default_rng(3).standard_normal((2, 5, I)).astype(np.float32)
    model.build((None, None, I))
    stream = model.stream(batch_size=2)
    got = np.stack([stream.step(x[:, t]) for t in range(x.shape[1])], axis=1)
    np.testing.assert_allclose(got, torch_output(module, x, True), rtol=0, atol=1e-5)


def test_linear_and_drop_in_modules():
    import rnnkit.torch as rt

    torch.manual_seed(0)
    lstm = rt.LSTM(I, H, batch_first=True)            # rnnkit's drop-in subclasses convert too
    head = torch.nn.Linear(H, 2)
    model = rnnkit.Sequential(from_torch(lstm) + from_torch(head))
    x = np.random.default_rng(4).standard_normal((3, 5, I)).astype(np.float32)
    with torch.no_grad():
        want = head(lstm(torch.from_numpy(x))[0]).numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=0, atol=1e-5)
    (dense,) = from_torch(torch.nn.Linear(H, 2, bias=False))
    assert dense.weight_names == ("kernel",) and dense.weights[0].shape == (H, 2)


def test_refusals():
    with pytest.raises(ValueError, match="proj_size=2.*no projection"):
        from_torch(torch.nn.LSTM(I, H, proj_size=2))
    with pytest.raises(ValueError, match=r"Conv1d cannot be converted.*torch\.nn\.RNN, torch\.nn\.LSTM"):
        from_torch(torch.nn.Conv1d(2, 2, 2))
    with pytest.raises(ValueError, match="float32 or all float64"):
        from_torch(torch.nn.GRU(I, H).half())
