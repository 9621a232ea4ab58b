"""The extended cells (issue 16) in NumPy, written for clarity: Keras dropout / recurrent_dropout,
zoneout, LSTM projection and layer normalisation, on SimpleRNN, LSTM and GRU. One loop serves
every combination; docs/SPEC.md §18 is the normative math. This is the only implementation of the
options that have no native kernel (ops dispatches here whatever the backend).

Shapes: B batch, T steps, I inputs, H units, G gates, S the recurrent state size (H, or P with an
LSTM projection). Per step (processing order):

    xw = [(x_t ⊙ mx_g) @ K_g]_g            mx (B,G,I): input-dropout multipliers, one per gate block
    hw = [(h_{t-1} ⊙ mh_g) @ R_g]_g        mh (B,G,S): recurrent-dropout multipliers
    layer norm: xw <- LN(xw; gx, bx), hw <- LN(hw; gh, bh), each over all G·H columns of a row
    SimpleRNN  y = act(xw + hw + b)
    LSTM       z = xw + hw + b -> i, f, g, o; c' = f c + i g; y = o act(LN_c(c')) [@ W_hr]
    GRU        reset_after: z, r from xw + b0 and hw + b1; hh = act(xh + b0h + r (hw_h + b1h))
               reset_after=False: hh = act(xh + b_h + (r ⊙ h_{t-1} ⊙ mh_h) @ R_h)
               y = z h_{t-1} + (1 - z) hh        (the undropped h_{t-1}, as Keras)
    zoneout    h_t = kh ⊙ h_{t-1} + (1 - kh) ⊙ y,  c_t = kc ⊙ c_{t-1} + (1 - kc) ⊙ c'
               kh, kc (B,T,S) keep weights: 0/1 in training, the rate p at inference

LN(a; γ, β) = (a − mean(a)) / sqrt(var(a) + EPS) · γ + β over the last axis, EPS = 1e-5.
"""

from __future__ import annotations

import numpy as np

from ._common import Cache, initial_state, to_input_order, to_processing_order
from .activations import get_activation

EPS = 1e-5
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def _ln_forward(a, gamma, beta):
    """(B, N) -> normalised (B, N), and what backward needs: (a_hat, inv_std)."""
    mu = a.mean(axis=-1, keepdims=True)
    inv = 1.0 / np.sqrt(((a - mu) ** 2).mean(axis=-1, keepdims=True) + EPS)
    a_hat = (a - mu) * inv
    return a_hat * gamma + beta, (a_hat, inv)


def _ln_backward(dy, saved, gamma):
    """Gradient of LN w.r.t. its input, gamma and beta."""
    a_hat, inv = saved
    d_hat = dy * gamma
    da = inv * (d_hat - d_hat.mean(axis=-1, keepdims=True)
                - a_hat * (d_hat * a_hat).mean(axis=-1, keepdims=True))
    return da, (dy * a_hat).sum(axis=0), dy.sum(axis=0)


def _per_gate_matmul(v, m, w, gates):
    """[(v ⊙ m_g) @ w_g]_g: v (B,K), m (B,G,K) or None, w (K,G·H) -> (B,G·H)."""
    if m is None:
        return v @ w
    k, gh = w.shape
    return np.einsum("bgk,kgh->bgh", v[:, None, :] * m, w.reshape(k, gates, gh // gates)).reshape(len(v), gh)


def _per_gate_grads(d, v, m, w, gates):
    """Backward of _per_gate_matmul for d (B,G·H): (dv (B,K), dw (K,G·H))."""
    if m is None:
        return d @ w.T, v.T @ d
    k, gh = w.shape
    d3 = d.reshape(len(d), gates, gh // gates)
    dv = np.einsum("bgh,kgh,bgk->bk", d3, w.reshape(k, gates, gh // gates), m)
    dw = np.einsum("bgk,bgh->kgh", v[:, None, :] * m, d3).reshape(k, gh)
    return dv, dw


def extended_forward(cell, x, kernel, recurrent_kernel, bias, states, *, activation="tanh",
                     recurrent_activation="sigmoid", reset_after=True, mask=None, go_backwards=False,
                     training=True, return_sequences=True, dropout_mask=None,
                     recurrent_dropout_mask=None, zoneout=None, projection=None, layer_norm=None):
    """Run an extended cell. Arrays canonical and of one dtype (rnnkit.ops checks them):

    x (B,T,I); kernel (I,G·H); recurrent_kernel (S,G·H); bias as the plain cell or None; states a
    list of initial states (None = zeros): [h0 (B,S)] or, LSTM, [h0 (B,S), c0 (B,H)];
    dropout_mask (B,G,I) / recurrent_dropout_mask (B,G,S) multipliers or None; zoneout None or a
    list with one entry per state, each None or keep weights (B,T,state size) in input time order;
    projection (H,P) or None (LSTM); layer_norm None or [gamma_x, beta_x, gamma_h, beta_h] (G·H,)
    each, LSTM adding gamma_c, beta_c (H,).

    Returns ``outputs (B,T,S) | None, final states (list), cache | None``.
    """
    G = GATES[cell]
    act = get_activation(activation, "activation")
    ract = get_activation(recurrent_activation, "recurrent_activation")
    dtype = kernel.dtype
    B, T = x.shape[:2]
    GH = kernel.shape[1]
    H = GH // G
    S = recurrent_kernel.shape[0]
    x, valid = to_processing_order(x, mask, go_backwards)
    keeps = [None if k is None else (k[:, ::-1] if go_backwards else k) for k in (zoneout or [None, None])]
    keeps += [None] * (2 - len(keeps))
    h = initial_state(states[0], B, S, dtype)
    c = initial_state(states[1], B, H, dtype) if cell == "lstm" else None
    if bias is None:
        bias = np.zeros((2, GH) if cell == "gru" and reset_after else (GH,), dtype)
    b_in, b_rec = (bias[0], bias[1]) if cell == "gru" and reset_after else (bias, None)
    rk = recurrent_kernel
    # GRU reset_after=False: only z, r come from hw; the candidate multiplies (r ⊙ h ⊙ mh_h) @ R_h
    split = cell == "gru" and not reset_after
    mh_all = recurrent_dropout_mask
    rk_main, mh_main, g_main = (rk[:, :2 * H], None if mh_all is None else mh_all[:, :2], 2) if split \
        else (rk, mh_all, G)

    outputs = np.zeros((B, T, S), dtype) if return_sequences else None
    steps = []
    for t in range(T):
        m = valid[:, t]
        s = {"h_prev": h, "c_prev": c}
        xw = _per_gate_matmul(x[:, t], dropout_mask, kernel, G)
        hw = _per_gate_matmul(h, mh_main, rk_main, g_main)
        if layer_norm is not None:
            xw, s["ln_x"] = _ln_forward(xw, layer_norm[0], layer_norm[1])
            hw, s["ln_h"] = _ln_forward(hw, layer_norm[2], layer_norm[3])
        if cell == "simple_rnn":
            y = act.forward(xw + hw + bias)
            s["y"] = y
            c_new = None
        elif cell == "lstm":
            z = xw + hw + bias
            i, f, g, o = (ract.forward(z[:, :H]), ract.forward(z[:, H:2 * H]),
                          act.forward(z[:, 2 * H:3 * H]), ract.forward(z[:, 3 * H:]))
            c_new = f * c + i * g
            c_out = c_new
            if layer_norm is not None:
                c_out, s["ln_c"] = _ln_forward(c_new, layer_norm[4], layer_norm[5])
            a = act.forward(c_out)
            r = o * a
            y = r @ projection if projection is not None else r
            s.update(i=i, f=f, g=g, o=o, a=a, r=r)
        else:
            xz = xw + b_in
            if split:
                hz = hw
                z = ract.forward(xz[:, :H] + hz[:, :H])
                rr = ract.forward(xz[:, H:2 * H] + hz[:, H:])
                hm_h = h if mh_all is None else h * mh_all[:, 2]
                rh = rr * hm_h
                hh = act.forward(xz[:, 2 * H:] + rh @ rk[:, 2 * H:])
                s.update(rh=rh, hm_h=hm_h)
            else:
                hz = hw + b_rec
                z = ract.forward(xz[:, :H] + hz[:, :H])
                rr = ract.forward(xz[:, H:2 * H] + hz[:, H:2 * H])
                hh = act.forward(xz[:, 2 * H:] + rr * hz[:, 2 * H:])
                s["mh"] = hz[:, 2 * H:]
            y = z * h + (1 - z) * hh
            s.update(z=z, r=rr, hh=hh)
            c_new = None
        h_next, c_next = y, c_new
        if keeps[0] is not None:
            h_next = keeps[0][:, t] * h + (1 - keeps[0][:, t]) * y
        if c_new is not None and keeps[1] is not None:
            c_next = keeps[1][:, t] * c + (1 - keeps[1][:, t]) * c_new
        if return_sequences:
            outputs[:, t] = np.where(m, h_next, 0)
        h = np.where(m, h_next, h)
        if c is not None:
            c = np.where(m, c_next, c)
        if training:
            steps.append(s)

    cache = None
    if training:
        cache = Cache(cell=cell, x=x, valid=valid, go_backwards=go_backwards,
                      return_sequences=return_sequences, kernel=kernel, recurrent_kernel=rk,
                      bias_shape=bias.shape, act=act.name, ract=ract.name, reset_after=reset_after,
                      dropout_mask=dropout_mask, recurrent_dropout_mask=recurrent_dropout_mask,
                      keeps=keeps, projection=projection, layer_norm=layer_norm, steps=steps,
                      extended=True)
    final = [h, c] if cell == "lstm" else [h]
    return outputs, final, cache


def extended_backward(d_outputs, d_states, cache):
    """BPTT for extended_forward. d_outputs (B,T,S) processing order or None; d_states a list of
    (B, state size) or None per state. Returns ``dx, d_kernel, d_recurrent_kernel, d_bias,
    [d_state0...], [d_extra...]`` with d_extra = d_projection (if any) then the layer-norm
    gradients in the order of ``layer_norm``."""
    cell, x, valid = cache.cell, cache.x, cache.valid
    act = get_activation(cache.act, "activation")
    ract = get_activation(cache.ract, "recurrent_activation")
    kernel, rk = cache.kernel, cache.recurrent_kernel
    G = GATES[cell]
    dtype = kernel.dtype
    B, T = x.shape[:2]
    GH = kernel.shape[1]
    H = GH // G
    S = rk.shape[0]
    ln, proj = cache.layer_norm, cache.projection
    mx, mh_all = cache.dropout_mask, cache.recurrent_dropout_mask
    split = cell == "gru" and not cache.reset_after
    rk_main, mh_main, g_main = (rk[:, :2 * H], None if mh_all is None else mh_all[:, :2], 2) if split \
        else (rk, mh_all, G)
    kh, kc = cache.keeps[0], cache.keeps[1]

    d_out = np.zeros((B, T, S), dtype) if d_outputs is None else np.where(valid, d_outputs, 0)
    dh = np.zeros((B, S), dtype) if d_states[0] is None else np.array(d_states[0], dtype)
    dc = None
    if cell == "lstm":
        dc = np.zeros((B, H), dtype) if d_states[1] is None else np.array(d_states[1], dtype)
    dx = np.zeros(x.shape, dtype)
    d_kernel = np.zeros_like(kernel)
    d_rk = np.zeros_like(rk)
    d_bias = np.zeros(cache.bias_shape, dtype)
    d_proj = None if proj is None else np.zeros_like(proj)
    d_ln = None if ln is None else [np.zeros_like(p) for p in ln]
    for t in reversed(range(T)):
        m = valid[:, t]
        s = cache.steps[t]
        h_prev, c_prev = s["h_prev"], s["c_prev"]
        dh = dh + d_out[:, t]
        dh_t = np.where(m, dh, 0)
        # zoneout: h_t = k h_{t-1} + (1 - k) y
        dy, dh_prev = (dh_t, np.zeros_like(dh_t)) if kh is None else (dh_t * (1 - kh[:, t]), dh_t * kh[:, t])
        if cell == "simple_rnn":
            dz = dy * act.derivative(s["y"])
            dxw, dhw = dz, dz
            d_bias += dz.sum(axis=0)
        elif cell == "lstm":
            dc_t = np.where(m, dc, 0)
            dc_new, dc_prev = (dc_t, np.zeros_like(dc_t)) if kc is None else (dc_t * (1 - kc[:, t]), dc_t * kc[:, t])
            if proj is not None:
                d_proj += s["r"].T @ dy
                dr = dy @ proj.T
            else:
                dr = dy
            i, f, g, o, a = s["i"], s["f"], s["g"], s["o"], s["a"]
            d_cout = dr * o * act.derivative(a)
            if ln is not None:
                d_cout, dgc, dbc = _ln_backward(d_cout, s["ln_c"], ln[4])
                d_ln[4] += dgc
                d_ln[5] += dbc
            dcn = dc_new + d_cout
            dz = np.concatenate([dcn * g * ract.derivative(i), dcn * c_prev * ract.derivative(f),
                                 dcn * i * act.derivative(g), dr * a * ract.derivative(o)], axis=-1)
            dc_prev = dc_prev + dcn * f
            dxw, dhw = dz, dz
            d_bias += dz.sum(axis=0)
        else:
            z, rr, hh = s["z"], s["r"], s["hh"]
            d_hh = dy * (1 - z) * act.derivative(hh)
            dz_pre = dy * (h_prev - hh) * ract.derivative(z)
            dh_prev = dh_prev + dy * z
            if split:
                d_rh = d_hh @ rk[:, 2 * H:].T
                dr_pre = d_rh * s["hm_h"] * ract.derivative(rr)
                d_rk[:, 2 * H:] += s["rh"].T @ d_hh
                d_hm_h = d_rh * rr
                dh_prev = dh_prev + (d_hm_h if mh_all is None else d_hm_h * mh_all[:, 2])
                dxw = np.concatenate([dz_pre, dr_pre, d_hh], axis=-1)
                dhw = dxw[:, :2 * H]
                d_bias += dxw.sum(axis=0)
            else:
                dr_pre = d_hh * s["mh"] * ract.derivative(rr)
                dxw = np.concatenate([dz_pre, dr_pre, d_hh], axis=-1)
                dhw = np.concatenate([dz_pre, dr_pre, d_hh * rr], axis=-1)
                d_bias[0] += dxw.sum(axis=0)
                d_bias[1] += dhw.sum(axis=0)
        if ln is not None:
            dxw, dg, db = _ln_backward(dxw, s["ln_x"], ln[0])
            d_ln[0] += dg
            d_ln[1] += db
            dhw, dg, db = _ln_backward(dhw, s["ln_h"], ln[2])
            d_ln[2] += dg
            d_ln[3] += db
        dxt, dk = _per_gate_grads(dxw, x[:, t], mx, kernel, G)
        dx[:, t] = dxt
        d_kernel += dk
        dhp, drk = _per_gate_grads(dhw, h_prev, mh_main, rk_main, g_main)
        if split:
            d_rk[:, :2 * H] += drk
        else:
            d_rk += drk
        dh = np.where(m, dh_prev + dhp, dh)
        if dc is not None:
            dc = np.where(m, dc_prev, dc)
    extra = ([] if d_proj is None else [d_proj]) + ([] if d_ln is None else d_ln)
    d_states_0 = [dh] if dc is None else [dh, dc]
    return to_input_order(dx, cache.go_backwards), d_kernel, d_rk, d_bias, d_states_0, extra
