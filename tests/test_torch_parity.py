"""rnnkit (the NumPy reference and the native kernels, through rnnkit.ops) against PyTorch (float64):
outputs, final states and every gradient.

Weights move across with the mapping of docs/SPEC.md §16:
weight_ih = kernel.T, weight_hh = recurrent_kernel.T; LSTM bias in bias_ih with bias_hh = 0;
GRU (reset_after=True) blocks z, r, h permuted to PyTorch's r, z, n with bias_ih = b[0],
bias_hh = b[1]. Variable lengths compare with packed sequences (padded outputs zero, h_n the last
valid state), which is rnnkit's ``lengths`` mask.
"""

from __future__ import annotations

import numpy as np
import pytest

from _native_required import require_native
from numerics import assert_rel_close

import rnnkit
from rnnkit import ops

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch

REL_TOL = 1e-10   # docs/SPEC.md §14.7 float64 tolerance: ||a - b|| / ||b||


def gru_keras_to_torch(a):
    """Swap the first two gate blocks along the last axis: Keras z, r, h <-> PyTorch r, z, n."""
    z, r, h = np.split(a, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


CELLS = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def run_rnnkit(cell, x, kernel, recurrent_kernel, bias, h0, c0, mask, d_out, d_h, d_c):
    """-> outputs, [states], {name: gradient}, with the active backend"""
    if cell == "simple_rnn":
        out, h, cache = ops.simple_rnn_forward(x, kernel, recurrent_kernel, bias, h0, mask=mask)
        dx, dk, dr, db, dh0 = ops.simple_rnn_backward(d_out, d_h, cache)
        return out, [h], dict(x=dx, kernel=dk, recurrent_kernel=dr, bias=db, h0=dh0)
    if cell == "lstm":
        out, h, c, cache = ops.lstm_forward(x, kernel, recurrent_kernel, bias, h0, c0, mask=mask)
        dx, dk, dr, db, dh0, dc0 = ops.lstm_backward(d_out, d_h, d_c, cache)
        return out, [h, c], dict(x=dx, kernel=dk, recurrent_kernel=dr, bias=db, h0=dh0, c0=dc0)
    out, h, cache = ops.gru_forward(x, kernel, recurrent_kernel, bias, h0, reset_after=True, mask=mask)
    dx, dk, dr, db, dh0 = ops.gru_backward(d_out, d_h, cache)
    return out, [h], dict(x=dx, kernel=dk, recurrent_kernel=dr, bias=db, h0=dh0)


@pytest.fixture(params=["python", "native"])
def backend(request):
    if request.param == "native":
        require_native()  # skipped without it; fails under RNNKIT_REQUIRE_NATIVE=1
    previous = rnnkit.get_backend()
    rnnkit.set_backend(request.param)
    yield request.param
    rnnkit.set_backend(previous)


def run_torch(cell, x, kernel, recurrent_kernel, bias, h0, c0, lengths, d_out, d_h, d_c):
    """The same computation in PyTorch with autograd -> outputs, [states], {name: gradient}."""
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    module_class = {"simple_rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    module = module_class(features, units, batch_first=True).double()
    if cell == "gru":
        w_ih, w_hh = gru_keras_to_torch(kernel).T, gru_keras_to_torch(recurrent_kernel).T
        b_ih, b_hh = gru_keras_to_torch(bias[0]), gru_keras_to_torch(bias[1])
    else:
        w_ih, w_hh, b_ih, b_hh = kernel.T, recurrent_kernel.T, bias, np.zeros_like(bias)
    with torch.no_grad():
        for param, value in [(module.weight_ih_l0, w_ih), (module.weight_hh_l0, w_hh),
                             (module.bias_ih_l0, b_ih), (module.bias_hh_l0, b_hh)]:
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)))

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0[None], requires_grad=True)
    c0t = torch.tensor(c0[None], requires_grad=True)
    initial = (h0t, c0t) if cell == "lstm" else h0t
    if lengths is None:
        out, final = module(xt, initial)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                                         enforce_sorted=False)
        packed_out, final = module(packed, initial)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_out, batch_first=True, total_length=steps)
    states = [s[0] for s in final] if cell == "lstm" else [final[0]]
    loss = (out * torch.from_numpy(d_out)).sum() + (states[0] * torch.from_numpy(d_h)).sum()
    if cell == "lstm":
        loss = loss + (states[1] * torch.from_numpy(d_c)).sum()
    loss.backward()

    grads = dict(x=xt.grad.numpy(), h0=h0t.grad.numpy()[0])
    if cell == "gru":
        grads.update(kernel=gru_keras_to_torch(module.weight_ih_l0.grad.numpy().T),
                     recurrent_kernel=gru_keras_to_torch(module.weight_hh_l0.grad.numpy().T),
                     bias=np.stack([gru_keras_to_torch(module.bias_ih_l0.grad.numpy()),
                                    gru_keras_to_torch(module.bias_hh_l0.grad.numpy())]))
    else:
        grads.update(kernel=module.weight_ih_l0.grad.numpy().T,
                     recurrent_kernel=module.weight_hh_l0.grad.numpy().T,
                     bias=module.bias_ih_l0.grad.numpy())
    if cell == "lstm":
        grads["c0"] = c0t.grad.numpy()[0]
    return out.detach().numpy(), [s.detach().numpy() for s in states], grads


@pytest.mark.parametrize("variable_lengths", [False, True], ids=["full", "packed"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_matches_torch(cell, variable_lengths, backend):
    rng = np.random.default_rng(sum(map(ord, cell)) + variable_lengths)
    batch, steps, features, units = 4, 6, 3, 5
    gates = CELLS[cell]
    x = rng.normal(size=(batch, steps, features))
    kernel = 0.5 * rng.normal(size=(features, gates * units))
    recurrent_kernel = 0.5 * rng.normal(size=(units, gates * units))
    bias = 0.3 * rng.normal(size=(2, 3 * units) if cell == "gru" else (gates * units,))
    h0, c0 = rng.normal(size=(batch, units)), rng.normal(size=(batch, units))
    d_out = rng.normal(size=(batch, steps, units))
    d_h, d_c = rng.normal(size=(batch, units)), rng.normal(size=(batch, units))
    # Packed sequences need lengths >= 1 (rnnkit also allows 0; see test_reference.py).
    lengths = np.array([3, 6, 1, 4]) if variable_lengths else None
    mask = None if lengths is None else np.arange(steps) < lengths[:, None]

    out, states, grads = run_rnnkit(cell, x, kernel, recurrent_kernel, bias, h0, c0, mask, d_out, d_h, d_c)
    t_out, t_states, t_grads = run_torch(cell, x, kernel, recurrent_kernel, bias, h0, c0, lengths,
                                         d_out, d_h, d_c)
    assert_rel_close(out, t_out, REL_TOL, "outputs")
    for name, a, b in zip(["h_last", "c_last"], states, t_states):
        assert_rel_close(a, b, REL_TOL, name)
    assert set(grads) == set(t_grads)
    for name in grads:
        assert_rel_close(grads[name], t_grads[name], REL_TOL, "d_" + name)
    if mask is not None:
        assert np.all(out[~mask] == 0) and np.all(grads["x"][~mask] == 0)
