"""Issue 16: Keras dropout / recurrent_dropout, zoneout, LSTM projection, layer-normalised LSTM/GRU
(docs/SPEC.md §18). Gradients against central finite differences (float64) through rnnkit.ops; the
input-dropout-only path on the native backend equals the reference; layers' masks, inference
formulas, save/load; projection against torch.nn.LSTM(proj_size=...), layer norm against a
straightforward PyTorch loop with nn.LayerNorm."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit import ops

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def _problem(cell, rng, *, proj=False, ln=False, reset_after=True, B=3, T=4, I=2, H=3):
    G = GATES[cell]
    S = 2 if proj else H
    p = {"x": rng.normal(size=(B, T, I)), "kernel": rng.normal(size=(I, G * H)) * 0.5,
         "recurrent_kernel": rng.normal(size=(S, G * H)) * 0.5,
         "bias": rng.normal(size=(2, G * H) if cell == "gru" and reset_after else (G * H,)) * 0.3,
         "h0": rng.normal(size=(B, S))}
    if cell == "lstm":
        p["c0"] = rng.normal(size=(B, H))
    if proj:
        p["projection"] = rng.normal(size=(H, S))
    if ln:
        n = 6 if cell == "lstm" else 4
        p["layer_norm"] = [rng.normal(size=G * H if k < 4 else H) for k in range(n)]
    return p


def _call(cell, p, options, training=True):
    kw = dict(options)
    if cell == "gru":
        kw.setdefault("reset_after", p["bias"].ndim == 2)
    states = [p["h0"]] + ([p["c0"]] if cell == "lstm" else [])
    extra = {k: p[k] for k in ("projection", "layer_norm") if k in p}
    fwd = getattr(ops, cell + "_forward")
    return fwd(p["x"], p["kernel"], p["recurrent_kernel"], p["bias"], *states, training=training, **extra, **kw)


def _fd_check(cell, p, options, rng):
    res = _call(cell, p, options)
    outputs, finals, cache = res[0], res[1:-1], res[-1]
    d_out = rng.normal(size=outputs.shape)
    d_states = [rng.normal(size=f.shape) for f in finals]
    grads = getattr(ops, cell + "_backward")(d_out, *d_states, cache)
    names = ["x", "kernel", "recurrent_kernel", "bias", "h0"] + (["c0"] if cell == "lstm" else [])
    arrays = [p[n] for n in names]
    if "projection" in p:
        arrays.append(p["projection"])
    arrays += p.get("layer_norm", [])
    assert len(grads) == len(arrays)

    def loss():
        r = _call(cell, p, options, training=False)
        return (r[0] * d_out).sum() + sum((f * d).sum() for f, d in zip(r[1:-1], d_states))

    for a, g in zip(arrays, grads):
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + 1e-6
            lp = loss()
            a[idx] = old - 1e-6
            lm = loss()
            a[idx] = old
            num[idx] = (lp - lm) / 2e-6
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-6)


def _masks(cell, rng, p, per_gate=True, rdrop=True, zone=False, B=3, T=4):
    G, I, S = GATES[cell], p["x"].shape[2], p["h0"].shape[1]
    o = {"dropout_mask": (rng.random((B, G, I) if per_gate else (B, I)) > 0.3) / 0.7,
         "mask": np.array([[1, 1, 0, 1], [1, 0, 0, 0], [1, 1, 1, 1]], bool)}
    if rdrop:
        o["recurrent_dropout_mask"] = (rng.random((B, G, S)) > 0.3) / 0.7
    if zone:
        o["zoneout"] = [(rng.random((B, T, S)) > 0.5) * 1.0]
        if cell == "lstm":
            o["zoneout"].append(rng.random((B, T, p["c0"].shape[1])))
    return o


CASES = [("simple_rnn", {}), ("lstm", {}), ("gru", {}), ("gru", {"reset_after": False}),
         ("lstm", {"proj": True}), ("lstm", {"ln": True}), ("gru", {"ln": True}), ("lstm", {"ln": True, "proj": True})]


@pytest.mark.parametrize("cell,kind", CASES)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_gradients_match_finite_differences(cell, kind, go_backwards):
    rng = np.random.default_rng(len(cell) + 7 * len(kind) + go_backwards)
    previous = rnnkit.get_backend()
    rnnkit.set_backend("python")
    try:
        p = _problem(cell, rng, **kind)
        options = _masks(cell, rng, p, zone=True)
        options["go_backwards"] = go_backwards
        _fd_check(cell, p, options, rng)
    finally:
        rnnkit.set_backend(previous)


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_no_options_equal_the_plain_reference(cell):
    from rnnkit.reference import extended
    rng = np.random.default_rng(1)
    p = _problem(cell, rng)
    states = [p["h0"]] + ([p["c0"]] if cell == "lstm" else [])
    plain = getattr(rnnkit.reference, cell + "_forward")(p["x"], p["kernel"], p["recurrent_kernel"], p["bias"], *states)
    out, finals, _ = extended.extended_forward(cell, p["x"], p["kernel"], p["recurrent_kernel"], p["bias"], states)
    np.testing.assert_allclose(out, plain[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(finals, plain[1:-1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_shared_input_dropout_runs_on_the_backend_and_equals_the_reference(native, cell, dtype, tol):
    """A (B, I) input mask alone: the native cell on x ⊙ m (cache.impl native), == reference.extended."""
    rng = np.random.default_rng(2)
    p = {k: (v.astype(dtype) if isinstance(v, np.ndarray) else v) for k, v in _problem(cell, rng, B=5, T=6, I=4, H=8).items()}
    m = ((rng.random((5, 4)) > 0.4) / 0.6).astype(dtype)
    res = _call(cell, p, {"dropout_mask": m, "go_backwards": True, "lengths": [6, 3, 0, 5, 1]})
    assert "native" in res[-1].impl.__name__
    d_out = rng.normal(size=res[0].shape).astype(dtype)
    grads = getattr(ops, cell + "_backward")(d_out, *[None] * (len(res) - 2), res[-1])
    rnnkit.set_backend("python")
    ref = _call(cell, p, {"dropout_mask": np.repeat(m[:, None], GATES[cell], 1), "go_backwards": True,
                          "lengths": [6, 3, 0, 5, 1]})
    assert "extended" in ref[-1].impl.__name__
    ref_grads = getattr(ops, cell + "_backward")(d_out, *[None] * (len(ref) - 2), ref[-1])
    for a, b in zip(res[:-1], ref[:-1]):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    for a, b in zip(grads, ref_grads):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 10)


def test_option_validation_names_the_argument():
    rng = np.random.default_rng(3)
    p = _problem("lstm", rng)
    with pytest.raises(ValueError, match="dropout_mask must have shape"):
        _call("lstm", p, {"dropout_mask": np.ones((3, 5))})
    with pytest.raises(ValueError, match=r"zoneout\[0\] must be in \[0, 1\]"):
        _call("lstm", p, {"zoneout": [1.5]})
    with pytest.raises(ValueError, match=r"projection must have shape \(3, proj_units\)"):
        _call("lstm", dict(p, projection=np.ones((2, 2))), {})
    with pytest.raises(ValueError, match="layer_norm needs reset_after=True"):
        ops.gru_forward(p["x"], np.ones((2, 9)), np.ones((3, 9)), reset_after=False, layer_norm=[np.ones(9)] * 4)
    with pytest.raises(ValueError, match="recurrent_dropout must be in"):
        rnnkit.LSTM(3, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match="LayerNormGRU: reset_after must be True"):
        rnnkit.LayerNormGRU(3, reset_after=False)


# -- layers ---------------------------------------------------------------------------------------

def _x(B=6, T=5, I=3, seed=0):
    return np.random.default_rng(seed).normal(size=(B, T, I)).astype(np.float32)


@pytest.mark.parametrize("cls", [rnnkit.SimpleRNN, rnnkit.LSTM, rnnkit.GRU])
def test_dropout_inactive_at_inference_and_reproducible_with_a_seed(cls):
    x = _x()
    a = cls(4, dropout=0.4, recurrent_dropout=0.3, return_sequences=True, seed=5)
    b = cls(4, return_sequences=True, seed=5)
    np.testing.assert_array_equal(a(x), b(x))            # inference: the plain cell (same weights)
    c = cls(4, dropout=0.4, recurrent_dropout=0.3, return_sequences=True, seed=5)
    np.testing.assert_array_equal(a(x, training=True), c(x, training=True))
    assert not np.array_equal(a(x, training=True), a(x, training=True))   # a new mask per call


def test_masks_are_the_same_at_every_step_and_per_gate_as_keras():
    layer = rnnkit.LSTM(4, dropout=0.5, recurrent_dropout=0.5, seed=1)
    layer.build(3)
    kw = layer._option_kwargs(_x(), True)
    assert kw["dropout_mask"].shape == (6, 4, 3)             # one input mask per gate (Keras implementation 1)
    assert kw["recurrent_dropout_mask"].shape == (6, 4, 4)
    assert set(np.unique(kw["dropout_mask"])) <= {0.0, 2.0}
    only = rnnkit.GRU(4, dropout=0.5, seed=1)
    only.build(3)
    assert only._option_kwargs(_x(), True)["dropout_mask"].shape == (6, 3)   # shared when recurrent_dropout=0
    # the same mask at every step: dropping input feature k of row b for gate block g at one step
    # drops it at all of them -> a SimpleRNN with identity recurrence sees x ⊙ m at every step
    s = rnnkit.SimpleRNN(3, activation="linear", use_bias=False, dropout=0.5, seed=2, return_sequences=True,
                         kernel_initializer=rnnkit.initializers.Identity(1.0) if hasattr(rnnkit.initializers, "Identity") else "glorot_uniform",
                         recurrent_initializer="zeros")
    ones = np.ones((8, 6, 3), np.float32)
    y = s(ones, training=True)
    np.testing.assert_array_equal(y, np.repeat(y[:, :1], 6, axis=1))


def test_zoneout_inference_formula_and_training_mean():
    x = _x(B=2, T=4)
    layer = rnnkit.GRU(5, zoneout_h=0.3, return_sequences=True, seed=3, dtype="float64")
    y = layer(x)
    plain = rnnkit.GRU(5, return_sequences=True, seed=3, dtype="float64")
    h = np.zeros((2, 5))
    for t in range(4):   # h_t = p h_{t-1} + (1 - p) cell(x_t, h_{t-1})
        h = 0.3 * h + 0.7 * plain.step(x[:, t], [h])[0]
        np.testing.assert_allclose(y[:, t], h, rtol=1e-12)
    # training: 0/1 keep masks; a single step from zeros: the mean over masks approaches inference
    x1 = np.repeat(x[:1, :1], 4000, axis=0)
    np.testing.assert_allclose(layer(x1, training=True).mean(axis=0), layer(x1)[0], atol=0.03)


def test_zoneout_lstm_keeps_h_and_c_separately():
    x = _x(B=2, T=3)
    layer = rnnkit.LSTM(4, zoneout_h=0.5, zoneout_c=0.25, return_state=True, seed=1, dtype="float64")
    y, h, c = layer(x)
    plain = rnnkit.LSTM(4, seed=1, dtype="float64")
    hs, cs = np.zeros((2, 4)), np.zeros((2, 4))
    for t in range(3):
        _, (hn, cn) = plain.step(x[:, t], [hs, cs])
        hs, cs = 0.5 * hs + 0.5 * hn, 0.25 * cs + 0.75 * cn
    np.testing.assert_allclose(h, hs, rtol=1e-12)
    np.testing.assert_allclose(c, cs, rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: rnnkit.LSTM(4, dropout=0.2, recurrent_dropout=0.2, zoneout_h=0.1, zoneout_c=0.1, proj_units=3,
                        return_sequences=True, seed=1),
    lambda: rnnkit.LayerNormLSTM(4, recurrent_dropout=0.2, return_sequences=True, seed=1),
    lambda: rnnkit.LayerNormGRU(4, zoneout_h=0.2, return_sequences=True, seed=1),
])
def test_sequential_fit_save_load_bidirectional_and_stream(tmp_path, make):
    x, y = _x(B=8, T=5), np.random.default_rng(1).normal(size=(8, 5, 1)).astype(np.float32)
    model = rnnkit.Sequential([make(), rnnkit.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = rnnkit.load_model(tmp_path / "m.npz")
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6)
    stream = model.stream(batch_size=8)
    steps = np.stack([stream.step(x[:, t]) for t in range(5)], axis=1)
    np.testing.assert_allclose(steps, model.predict(x), rtol=1e-5, atol=1e-6)
    bi = rnnkit.Bidirectional(make())
    out = bi(x, training=True)
    assert bi.backward(np.ones_like(out)).shape == x.shape


def test_layer_weights_and_params():
    ln = rnnkit.LayerNormLSTM(4)
    ln.build(3)
    w = ln.get_weights()
    assert [a.shape for a in w] == [(3, 16), (4, 16), (16,), (16,), (16,), (16,), (16,), (4,), (4,)]
    assert ln.count_params() == sum(a.size for a in w)
    np.testing.assert_array_equal(w[3], 1)
    np.testing.assert_array_equal(w[4], 0)
    np.testing.assert_array_equal(w[2][4:8], 1)                 # unit_forget_bias default, as Keras
    p = rnnkit.LSTM(8, proj_units=2, return_state=True)
    y, h, c = p(_x())
    assert y.shape == (6, 2) and h.shape == (6, 2) and c.shape == (6, 8)
    assert [a.shape for a in p.get_weights()] == [(3, 32), (2, 32), (32,), (8, 2)]


# -- against PyTorch ------------------------------------------------------------------------------

def test_projection_equals_torch_lstm_proj_size():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.LSTM(3, 6, proj_size=2, batch_first=True).double()
    x = torch.randn(4, 5, 3, dtype=torch.float64, requires_grad=True)
    out, (h, c) = ref(x)
    (out.sum() + 2 * h.sum() + 3 * c.sum()).backward()
    layer = rnnkit.LSTM(6, proj_units=2, return_sequences=True, return_state=True, dtype="float64")
    layer.build(3)
    layer.set_weights([ref.weight_ih_l0.detach().numpy().T, ref.weight_hh_l0.detach().numpy().T,
                       (ref.bias_ih_l0 + ref.bias_hh_l0).detach().numpy(), ref.weight_hr_l0.detach().numpy().T])
    y, hh, cc = layer(x.detach().numpy(), training=True)
    np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cc, c[0].detach().numpy(), rtol=1e-10, atol=1e-12)
    dx = layer.backward(np.ones_like(y), [2 * np.ones_like(hh), 3 * np.ones_like(cc)])
    np.testing.assert_allclose(dx, x.grad.numpy(), rtol=1e-9, atol=1e-12)
    dk, dr, db, dp = layer.grads
    np.testing.assert_allclose(dk, ref.weight_ih_l0.grad.numpy().T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dr, ref.weight_hh_l0.grad.numpy().T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(db, ref.bias_ih_l0.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dp, ref.weight_hr_l0.grad.numpy().T, rtol=1e-9, atol=1e-12)


def _torch_ln_loop(torch, cell, x, w, H):
    """The straightforward PyTorch implementation: nn.LayerNorm per step (Keras gate order)."""
    G = GATES[cell]
    ln_x, ln_h = torch.nn.LayerNorm(G * H, eps=1e-5).double(), torch.nn.LayerNorm(G * H, eps=1e-5).double()
    with torch.no_grad():
        ln_x.weight.copy_(w[3]), ln_x.bias.copy_(w[4]), ln_h.weight.copy_(w[5]), ln_h.bias.copy_(w[6])
    h = torch.zeros(x.shape[0], H, dtype=torch.float64)
    c = torch.zeros_like(h)
    outs = []
    for t in range(x.shape[1]):
        a, b = ln_x(x[:, t] @ w[0]), ln_h(h @ w[1])
        if cell == "lstm":
            ln_c = torch.nn.LayerNorm(H, eps=1e-5).double()
            with torch.no_grad():
                ln_c.weight.copy_(w[7]), ln_c.bias.copy_(w[8])
            z = a + b + w[2]
            i, f, g, o = z.split(H, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(ln_c(c))
        else:
            xz, xr, xh = (a + w[2][0]).split(H, dim=1)
            mz, mr, mh = (b + w[2][1]).split(H, dim=1)
            z, r = torch.sigmoid(xz + mz), torch.sigmoid(xr + mr)
            h = z * h + (1 - z) * torch.tanh(xh + r * mh)
        outs.append(h)
    return torch.stack(outs, 1)


@pytest.mark.parametrize("cls,cell", [(rnnkit.LayerNormLSTM, "lstm"), (rnnkit.LayerNormGRU, "gru")])
def test_layer_norm_equals_a_torch_layernorm_loop(cls, cell):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    layer = cls(5, return_sequences=True, dtype="float64", seed=2)
    layer.build(3)
    layer.set_weights([w + rng.normal(size=w.shape) * 0.3 for w in layer.get_weights()])
    x = rng.normal(size=(4, 6, 3))
    y = layer(x, training=True)
    layer.backward(np.ones_like(y))
    w = [torch.tensor(a, requires_grad=True) for a in layer.get_weights()]
    ref = _torch_ln_loop(torch, cell, torch.tensor(x), w, 5)
    np.testing.assert_allclose(y, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    ref.sum().backward()
    # gradients of the weights used directly (kernel, recurrent_kernel, bias)
    for g, t in zip(layer.grads[:3], w[:3]):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_export_blockers_name_the_option():
    assert rnnkit.LSTM(3, dropout=0.5)._export_blocker() is None
    assert rnnkit.LSTM(3, zoneout_c=0.1, proj_units=2)._export_blocker() == "zoneout_c, proj_units"
    assert rnnkit.LayerNormGRU(3)._export_blocker() == "layer normalisation"


# (B, H) and threads: one thread; 2 threads owning units (B < 32); 2 threads owning batch rows; 2 threads
# on matrix-vector steps (B <= 4, the weights >= 256 KiB)
@pytest.mark.parametrize("cell,kind", [("simple_rnn", {}), ("gru", {"reset_after": True}),
                                       ("gru", {"reset_after": False}), ("lstm", {"zone_c": False}),
                                       ("lstm", {"zone_c": True})])
@pytest.mark.parametrize("B,H,threads", [(3, 5, 1), (20, 100, 2), (64, 100, 2), (2, 200, 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zoneout_runs_natively_and_equals_the_reference(native, cell, kind, B, H, threads, dtype):
    """Zoneout on every cell (h, and c for LSTM; with and without the shared input mask): the native cell
    (cache.impl native) == reference.extended, forward and backward, in training (0/1 keep weights)
    and inference (the rate), with masks and go_backwards; the bound of docs/SPEC.md §14.1 (float32
    against the float64 reference)."""
    rng = np.random.default_rng(B + H + len(cell) + len(kind) + sum(map(bool, kind.values())))
    T, I = 6, 4
    reset_after = kind.get("reset_after", True)
    p = {k: (v.astype(dtype) if isinstance(v, np.ndarray) else v)
         for k, v in _problem(cell, rng, reset_after=reset_after, B=B, T=T, I=I, H=H).items()}
    n_zone = 2 if kind.get("zone_c") else 1
    keep = [(rng.random((B, T, H)) < 0.3).astype(dtype) for _ in range(n_zone)]
    rate = [np.full((B, T, H), 0.3, dtype)] + ([np.full((B, T, H), 0.2, dtype)] if n_zone == 2 else [])
    input_mask = ((rng.random((B, I)) > 0.4) / 0.6).astype(dtype)
    lengths = rng.integers(0, T + 1, size=B)
    n_states = 2 if cell == "lstm" else 1
    previous = rnnkit.get_num_threads()
    rnnkit.set_num_threads(threads)
    try:
        for options in ({"zoneout": keep}, {"zoneout": keep, "dropout_mask": input_mask},
                        {"zoneout": rate, "go_backwards": True, "lengths": lengths}):
            for training in (True, False):
                rnnkit.set_backend("native")
                res = _call(cell, p, options, training=training)
                if training:
                    assert "native" in res[-1].impl.__name__
                    d_out = rng.normal(size=res[0].shape).astype(dtype)
                    d_states = [rng.normal(size=f.shape).astype(dtype) for f in res[1:-1]]
                    grads = getattr(ops, cell + "_backward")(d_out, *d_states, res[-1])
                rnnkit.set_backend("python")
                ref_options = dict(options)
                if "dropout_mask" in options:
                    ref_options["dropout_mask"] = np.repeat(input_mask[:, None], GATES[cell], 1)
                # the float64 reference, and the float32 one (docs/SPEC.md §14.1's bound for float32)
                refs = []
                for rdtype in (np.float64, dtype):
                    cast = {k: (v.astype(rdtype) if isinstance(v, np.ndarray) else v) for k, v in p.items()}
                    opts = {k: (v.astype(rdtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else
                                [w.astype(rdtype) for w in v] if k == "zoneout" else v)
                            for k, v in ref_options.items()}
                    r = _call(cell, cast, opts, training=training)
                    if training:
                        assert "extended" in r[-1].impl.__name__
                        r = (*r[:-1], *getattr(ops, cell + "_backward")(
                            d_out.astype(rdtype), *[d.astype(rdtype) for d in d_states], r[-1]))
                    else:
                        r = r[:-1]
                    refs.append(r)
                got = (*res[:-1], *grads) if training else res[:-1]
                assert len(got) == len(refs[0]) == (1 + n_states + (4 + n_states if training else 0))
                for a, r64, r32 in zip(got, *refs):
                    err = np.linalg.norm(a - r64)
                    bound = (1e-10 * np.linalg.norm(r64) + 1e-13 * np.sqrt(a.size) if dtype == np.float64 else
                             1e-5 * np.linalg.norm(r64) + 10 * np.linalg.norm(r32 - r64) + 1e-6 * np.sqrt(a.size))
                    assert err <= bound, (err, bound)
    finally:
        rnnkit.set_backend("native")
        rnnkit.set_num_threads(previous)
