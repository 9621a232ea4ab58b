"""rnnkit.torch (drop-in torch.nn.RNN / LSTM / GRU) against PyTorch's own modules, the oracle:
outputs, final states and every gradient after ``load_state_dict``, PackedSequence (sorted and
unsorted), gradcheck, a short training run, state_dict round trips and the errors."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import rnnkit  # noqa: E402
import rnnkit.torch as rt  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

pytestmark = pytest.mark.torch

CLASSES = ["RNN", "LSTM", "GRU"]
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
I, H, T, B = 5, 6, 7, 3


def rel(a, b):
    """‖a − b‖ / ‖b‖ (docs/SPEC.md §14), in float64."""
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / max(float(b.norm()), 1e-300))


def assert_close(a, b, tol, what):
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} != {tuple(b.shape)}"
    r = rel(a, b)
    assert r <= tol, f"{what}: relative error {r:.3g} > {tol:g}"


def pair(name, dtype=torch.float64, **kwargs):
    """(torch.nn module, rnnkit.torch module) with the same weights."""
    reference = getattr(torch.nn, name)(I, H, **kwargs).to(dtype)
    ours = getattr(rt, name)(I, H, **kwargs).to(dtype)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def flat_hidden(hidden):
    return list(hidden) if isinstance(hidden, tuple) else [hidden]


def run(module, x, hx, weights):
    """forward + a loss weighting every output and state -> (outputs, states, grads by name)."""
    for p in module.parameters():
        p.grad = None
    x = x.detach().clone().requires_grad_(True)
    if hx is not None:
        hx = tuple(h.detach().clone().requires_grad_(True) for h in hx)
        out, hidden = module(x, hx if len(hx) == 2 else hx[0])
    else:
        out, hidden = module(x)
    states = flat_hidden(hidden)
    loss = (out * weights[0]).sum() + sum((s * w).sum() for s, w in zip(states, weights[1:]))
    loss.backward()
    grads = {"input": x.grad}
    if hx is not None:
        grads.update({f"hx{i}": h.grad for i, h in enumerate(hx)})
    grads.update({n: p.grad for n, p in module.named_parameters()})
    return out, states, grads


def compare(reference, ours, x, hx, tol):
    gen = torch.Generator().manual_seed(1)
    out_r, states_r = reference(x, hx if hx is None or len(hx) == 2 else hx[0]) if hx else reference(x)
    weights = [torch.randn(out_r.shape, generator=gen, dtype=x.dtype)]
    weights += [torch.randn(s.shape, generator=gen, dtype=x.dtype) for s in flat_hidden(states_r)]
    out_r, st_r, g_r = run(reference, x, hx, weights)
    out_o, st_o, g_o = run(ours, x, hx, weights)
    assert_close(out_o, out_r, tol, "output")
    for i, (a, b) in enumerate(zip(st_o, st_r)):
        assert_close(a, b, tol, f"state {i}")
    assert g_o.keys() == g_r.keys()
    for name in g_r:
        assert g_o[name] is not None, f"no gradient for {name}"
        assert_close(g_o[name], g_r[name], tol, f"gradient of {name}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("num_layers,bidirectional,batch_first,with_hx,bias",
                         list(itertools.product([1, 2], [False, True], [False, True], [False, True],
                                                [True, False])))
def test_matches_torch_nn(name, dtype, num_layers, bidirectional, batch_first, with_hx, bias):
    torch.manual_seed(0)
    reference, ours = pair(name, dtype, num_layers=num_layers, bidirectional=bidirectional,
                           batch_first=batch_first, bias=bias)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=dtype)
    hx = None
    if with_hx:
        shape = (num_layers * (2 if bidirectional else 1), B, H)
        hx = (torch.randn(shape, dtype=dtype),)
        if name == "LSTM":
            hx += (torch.randn(shape, dtype=dtype),)
    compare(reference, ours, x, hx, TOL[dtype])


@pytest.mark.parametrize("name", CLASSES)
def test_relu_rnn_and_unbatched_input(name):
    kwargs = {"nonlinearity": "relu"} if name == "RNN" else {}
    torch.manual_seed(2)
    reference, ours = pair(name, num_layers=2, bidirectional=True, **kwargs)
    x = torch.randn(T, I, dtype=torch.float64)  # unbatched (T, I)
    out_r, hid_r = reference(x)
    out_o, hid_o = ours(x)
    assert_close(out_o, out_r, 1e-10, "output")
    for a, b in zip(flat_hidden(hid_o), flat_hidden(hid_r)):
        assert_close(a, b, 1e-10, "state")


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("enforce_sorted", [True, False], ids=["sorted", "unsorted"])
@pytest.mark.parametrize("with_hx", [False, True], ids=["no-hx", "hx"])
def test_packed_sequence_matches_torch_nn(name, enforce_sorted, with_hx):
    torch.manual_seed(3)
    reference, ours = pair(name, num_layers=2, bidirectional=True, batch_first=True)
    batch = 5
    lengths = torch.tensor([7, 6, 4, 2, 1] if enforce_sorted else [4, 7, 1, 6, 2])
    x = torch.randn(batch, T, I, dtype=torch.float64)
    hx = None
    if with_hx:
        hx = tuple(torch.randn(4, batch, H, dtype=torch.float64) for _ in range(2 if name == "LSTM" else 1))
    gen = torch.Generator().manual_seed(4)
    d_out = torch.randn(batch, T, 2 * H, generator=gen, dtype=torch.float64)
    d_states = [torch.randn(4, batch, H, generator=gen, dtype=torch.float64) for _ in range(2)]
    results = []
    for module in (reference, ours):
        xg = x.clone().requires_grad_(True)
        hxg = None if hx is None else tuple(h.clone().requires_grad_(True) for h in hx)
        packed = pack_padded_sequence(xg, lengths, batch_first=True, enforce_sorted=enforce_sorted)
        if hxg is None:
            out, hidden = module(packed)
        else:
            out, hidden = module(packed, hxg if name == "LSTM" else hxg[0])
        assert isinstance(out, torch.nn.utils.rnn.PackedSequence)
        padded, out_lengths = pad_packed_sequence(out, batch_first=True)
        states = flat_hidden(hidden)
        loss = (padded * d_out[:, :padded.shape[1]]).sum() + sum((s * d).sum() for s, d in zip(states, d_states))
        loss.backward()
        grads = [xg.grad] + ([] if hxg is None else [h.grad for h in hxg]) + [p.grad for p in module.parameters()]
        results.append((out, padded, out_lengths, states, grads))
    (out_r, pad_r, len_r, st_r, g_r), (out_o, pad_o, len_o, st_o, g_o) = results
    assert torch.equal(out_o.batch_sizes, out_r.batch_sizes)
    for field in ("sorted_indices", "unsorted_indices"):
        a, b = getattr(out_o, field), getattr(out_r, field)
        assert (a is None and b is None) or torch.equal(a, b)
    assert torch.equal(len_o, len_r)
    assert_close(out_o.data, out_r.data, 1e-10, "packed output")
    for a, b in zip(st_o, st_r):
        assert_close(a, b, 1e-10, "state")
    for i, (a, b) in enumerate(zip(g_o, g_r)):
        assert_close(a, b, 1e-10, f"gradient {i}")


@pytest.mark.parametrize("name", CLASSES)
def test_gradcheck_float64(name):
    torch.manual_seed(5)
    module = getattr(rt, name)(3, 2, num_layers=2, bidirectional=True).double()
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    states = [torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
              for _ in range(2 if name == "LSTM" else 1)]
    params = list(module.parameters())

    def f(x, *tensors):
        hx = tensors[:len(states)]
        out, hidden = module(x, tuple(hx) if name == "LSTM" else hx[0])
        return (out,) + tuple(flat_hidden(hidden))

    assert torch.autograd.gradcheck(f, (x, *states), eps=1e-6, atol=1e-7)
    # the parameters through torch.func.functional_call-free closure: perturb them as inputs
    names = [n for n, _ in module.named_parameters()]

    def g(*ps):
        out, hidden = torch.func.functional_call(module, dict(zip(names, ps)), (x.detach(),))
        return (out,) + tuple(flat_hidden(hidden))

    assert torch.autograd.gradcheck(g, tuple(p.detach().clone().requires_grad_(True) for p in params),
                                    eps=1e-6, atol=1e-7)


def test_gradcheck_packed_float64():
    torch.manual_seed(6)
    module = rt.GRU(3, 2, bidirectional=True).double()
    x = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)

    def f(x):
        packed = pack_padded_sequence(x, torch.tensor([2, 4, 1]), enforce_sorted=False)
        out, h = module(packed)
        return out.data, h

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_training_stays_with_torch_nn(name):
    """A few hundred Adam steps (with gradient clipping) from the same initial state_dict, float64."""

    def model(module_class):
        torch.manual_seed(7)
        rnn = module_class(4, 8, num_layers=2, batch_first=True, bidirectional=True).double()
        head = torch.nn.Linear(16, 1).double()
        return rnn, head

    gen = torch.Generator().manual_seed(8)
    x = torch.randn(16, 12, 4, generator=gen, dtype=torch.float64)
    y = x.cumsum(1)[:, :, :1] * 0.3  # running sum of the first feature
    curves = []
    reference = model(getattr(torch.nn, name))
    ours = model(getattr(rt, name))
    ours[0].load_state_dict(reference[0].state_dict())
    ours[1].load_state_dict(reference[1].state_dict())
    for rnn, head in (reference, ours):
        params = list(rnn.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=1e-2)
        losses = []
        for _ in range(300):
            opt.zero_grad()
            out, _ = rnn(x)
            loss = torch.nn.functional.mse_loss(head(out), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(loss.item())
        curves.append(torch.tensor(losses, dtype=torch.float64))
    ref_curve, our_curve = curves
    assert our_curve[-1] < 0.2 * our_curve[0]  # it trained
    diff = ((our_curve - ref_curve).abs() / ref_curve.abs()).max().item()
    assert diff < 1e-6, f"loss curves drift apart: max relative difference {diff:.3g}"


@pytest.mark.parametrize("name", CLASSES)
def test_state_dict_round_trip_and_parameter_names(name):
    reference = getattr(torch.nn, name)(I, H, num_layers=2, bidirectional=True)
    ours = getattr(rt, name)(I, H, num_layers=2, bidirectional=True)
    assert isinstance(ours, getattr(torch.nn, name))
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in reference.named_parameters()]
    assert [p.shape for p in ours.parameters()] == [p.shape for p in reference.parameters()]
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict())
    back = getattr(torch.nn, name)(I, H, num_layers=2, bidirectional=True)
    back.load_state_dict(ours.state_dict())
    for a, b in zip(back.parameters(), reference.parameters()):
        assert torch.equal(a, b)
    assert repr(ours) == repr(reference)


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_inference_path(name, mode):
    torch.manual_seed(9)
    reference, ours = pair(name, torch.float32, num_layers=2, bidirectional=True)
    x = torch.randn(T, 1, I)
    with getattr(torch, mode)():
        out_r, hid_r = reference(x)
        out_o, hid_o = ours(x)
    assert out_o.grad_fn is None
    assert_close(out_o, out_r, 1e-5, "output")
    for a, b in zip(flat_hidden(hid_o), flat_hidden(hid_r)):
        assert_close(a, b, 1e-5, "state")


def test_dropout_between_layers_in_training_mode_only():
    torch.manual_seed(10)
    reference, ours = pair("LSTM", num_layers=3, dropout=0.5)
    x = torch.randn(T, B, I, dtype=torch.float64)
    ours.eval()
    reference.eval()
    assert_close(ours(x)[0], reference(x)[0], 1e-10, "eval output")
    ours.train()
    torch.manual_seed(11)
    a = ours(x)[0]
    torch.manual_seed(11)
    b = ours(x)[0]
    assert torch.equal(a, b)  # PyTorch's RNG drives the masks
    ours.eval()
    assert rel(a, ours(x)[0]) > 1e-3  # dropout was applied in training mode


def test_retain_graph_and_second_backward():
    torch.manual_seed(12)
    ours = rt.GRU(I, H)
    x = torch.randn(T, B, I, requires_grad=True)
    out, _ = ours(x)
    loss = out.square().sum()
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * first)
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_double_backward_is_a_clear_error():
    ours = rt.LSTM(I, H).double()
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    out, _ = ours(x)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        g.sum().backward()


def test_errors_devices_and_dtypes():
    with pytest.raises(ValueError, match="CPU only"):
        rt.LSTM(I, H, device="cuda")
    with pytest.raises(ValueError, match="proj_size"):
        rt.LSTM(I, H, proj_size=2)
    ours = rt.GRU(I, H)
    with pytest.raises(RuntimeError, match="CPU only"):
        ours(torch.empty(T, B, I, device="meta"))
    with pytest.raises(TypeError, match="float32 and float64"):
        rt.RNN(I, H).half()(torch.randn(T, B, I).half())
    with pytest.raises(TypeError, match="float32 and float64"):
        rt.RNN(I, H).to(torch.bfloat16)(torch.randn(T, B, I).to(torch.bfloat16))
    with pytest.raises(ValueError, match="dtype"):
        ours(torch.randn(T, B, I, dtype=torch.float64))  # torch.nn's own mismatch message
    with pytest.raises(RuntimeError, match="input_size"):
        ours(torch.randn(T, B, I + 1))
    with pytest.raises(RuntimeError, match="Expected hidden size"):
        ours(torch.randn(T, B, I), torch.zeros(1, B + 1, H))


def test_threads_follow_torch_unless_set(monkeypatch):
    previous = torch.get_num_threads()
    native_previous = rnnkit.get_num_threads()
    monkeypatch.setattr(rnnkit._backend, "_requested_threads", None)  # as if never set explicitly
    try:
        torch.set_num_threads(1)
        assert rt.get_num_threads() == 1
        rt.LSTM(I, H)(torch.randn(T, B, I))
        assert rnnkit.get_num_threads() == 1
        monkeypatch.setattr(rnnkit._backend, "_requested_threads", 2)  # rnnkit.set_num_threads(2) wins
        assert rt.get_num_threads() == 2
        monkeypatch.setattr(rnnkit._backend, "_requested_threads", None)
        rt.set_num_threads(2)
        assert rt.get_num_threads() == 2
        with pytest.raises(ValueError):
            rt.set_num_threads(0)
    finally:
        rt.set_num_threads(None)
        torch.set_num_threads(previous)
        rnnkit._backend._load_native().set_num_threads(native_previous)


def test_import_rnnkit_does_not_import_torch():
    code = "import sys, rnnkit, rnnkit.ops; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_inference_weights_follow_every_kind_of_parameter_write():
    """Inference calls keep converted, packed weights between calls; any change of a parameter —
    optimizer step, load_state_dict, or a write through .data / NumPy that PyTorch's version counter
    does not see — must show in the next call."""
    torch.manual_seed(13)
    reference, ours = pair("LSTM", torch.float32, num_layers=2)
    x = torch.randn(T, 1, I)

    def check():
        with torch.no_grad():
            assert_close(ours(x)[0], reference(x)[0], 1e-5, "output")

    check()
    check()  # the kept weights
    for module in (reference, ours):
        module.weight_hh_l1.data.mul_(0.5)            # no version bump
        module.bias_ih_l0.detach().numpy()[:] += 0.25  # no version bump either
    check()
    reference.load_state_dict(getattr(torch.nn, "LSTM")(I, H, num_layers=2).state_dict())
    ours.load_state_dict(reference.state_dict())
    check()


def test_bench_torch_modules_smoke(capsys):
    from rnnkit import bench

    assert bench.main(["--torch-modules", "--cells", "simple_rnn", "--sizes", "seed-numpy",
                       "--parts", "train", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "| train | RNN | seed-numpy | 32, 100, 32, 64 |" in out
    with pytest.raises(SystemExit):
        bench.main(["--torch-modules", "--parts", "nope"])
