"""Malformed calls into every entry point of ``rnnkit._native`` (run by test_native_sweep.py).

Run as a script, in its own process (a crash must not take pytest down): it makes, for every
function and class the module exports, a systematic list of malformed calls — each argument in turn
replaced by values of the wrong type, the wrong dtype, the wrong number of dimensions, a mismatched
shape, zero-size arrays with dimensions so large that the size computations would overflow,
non-contiguous or misaligned memory, byte-swapped data, None where an array is required, negative /
huge / NaN numbers, unknown names; missing and extra arguments — and calls each one. Before each
call it prints ``CALL <entry> <description>`` (flushed), so that when the process dies the parent
knows the last call attempted. At the end it prints one JSON line: per entry point the number of
malformed calls, the exception types raised, and the calls that did not raise.

A second, smaller list of calls with NaN / Inf *data* (valid shapes) and extreme but valid shapes
(B = 0 with 2**40 steps, results too large to exist) must simply not crash: any result or exception.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from rnnkit import _native

B, T, I, H = 2, 3, 4, 5
HUGE = 2 ** 40        # a zero-size array may have such a dimension; any real result with it cannot exist
HUGER = 2 ** 58       # products of two of these overflow 64 bits
INT_BAD = [-1, 0, -2 ** 31, 2 ** 31, 2 ** 63, 2 ** 64, -2 ** 63 - 1, 10 ** 6, float("nan"), float("inf"),
           1.5, "2", None, [], (1,), np.float64("nan"), 1 + 2j]
STR_TYPE_BAD = [None, 1, 2.5, float("nan"), [], ["tanh"], {}, ("tanh",), object(), np.zeros(3)]
STR_NAME_BAD = ["", "bogus", "TANH ", "tanh\x00", "x" * 10000, "float16", "avx1024", "auto "]
BOOL_BAD = ["yes", "", [1], (), {}, object(), np.zeros(3), "False"]  # pybind11 takes anything with __bool__ else
EXTRA_VALUES = [None, 0, -1, 1.5, float("nan"), "x", b"x", [], (), {}, object(), np.zeros(2),
                np.float32(1), True, 2 ** 70, -2 ** 70, float("inf"), [None], {"a": 1}, np.array("s"),
                slice(1), Ellipsis, 1j, bytearray(3), range(3)]


def misaligned(shape, dtype):
    n = int(np.prod(shape))
    itemsize = np.dtype(dtype).itemsize
    return np.frombuffer(bytearray(n * itemsize + 1), dtype=dtype, count=n, offset=1).reshape(shape)


def bad_arrays(shape, dtype, optional=False, is_mask=False, free=(), any_float=False):
    """(description, value) pairs that must be rejected for an array argument of this shape and dtype
    (``free``: dimensions any size is fine for; ``any_float``: this argument decides the dtype)."""
    shape = tuple(shape)
    dt = np.dtype(dtype)
    out = []
    if not optional:
        out.append(("None", None))
    for desc, v in [("python float", 1.0), ("nan", float("nan")), ("str", "x"), ("nested list", np.zeros(shape).tolist()),
                    ("tuple", ()), ("dict", {}), ("object", object()), ("int", 3), ("bytes", b"\0" * 64),
                    ("memoryview", memoryview(np.zeros(shape, dt))), ("bytearray", bytearray(64)),
                    ("range", range(4)), ("numpy scalar", dt.type(0) if dt.kind != "V" else 0)]:
        out.append((desc, v))
    dtypes = [np.int32, np.int64, np.float16, np.complex64, object, np.uint8, np.int8, np.uint64, np.longdouble,
              np.complex128, "U3", "S4", "datetime64[s]", [("a", dt), ("b", dt)]]
    if not any_float:
        dtypes += [np.float64 if dt == np.float32 else np.float32] if not is_mask else [np.float32]
    if not is_mask:
        dtypes.append(np.bool_)
    for other in dtypes:
        out.append((f"dtype {np.dtype(other)}", np.zeros(shape, other)))
    out.append(("byte-swapped", np.zeros(shape, dt.newbyteorder())))
    out.append(("0-d", np.zeros((), dt)))
    if len(shape) > 1:
        out.append(("ndim-1", np.zeros(shape[1:], dt)))
    out.append(("ndim+1", np.zeros((1,) + shape, dt)))
    for k in range(len(shape)):
        s = list(shape)
        s[k] += 1
        if k not in free:
            out.append((f"dim {k} + 1", np.zeros(s, dt)))
        s = list(shape)
        s[k] = HUGE
        others = [d for j, d in enumerate(s) if j != k]
        if 0 not in others:  # keep it zero-size: another dimension 0, this one huge
            j = 0 if k != 0 else 1 if len(s) > 1 else None
            if j is not None:
                s[j] = 0
                out.append((f"dim {k} = 2**40 (zero-size)", np.zeros(s, dt)))
    if shape and shape[-1] > 1:
        out.append(("non-contiguous", np.zeros(shape[:-1] + (2 * shape[-1],), dt)[..., ::2]))
    if len(shape) >= 2 and shape[0] != shape[1]:
        out.append(("transposed", np.zeros(shape[::-1], dt).T if len(shape) == 2 else np.zeros(shape, dt, order="F")))
    if int(np.prod(shape)) > 0 and dt.itemsize > 1:
        out.append(("misaligned", misaligned(shape, dt)))
    return out


def arrays(dtype=np.float32):
    rng = np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    return f


def cell_valid(cell, dtype=np.float32):
    """Valid (forward kwargs, backward kwargs) of a cell, computed with the native forward."""
    f = arrays(dtype)
    G = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
    fw = dict(x=f(B, T, I), kernel=f(I, G * H), recurrent_kernel=f(H, G * H),
              bias=f(2, 3 * H) if cell == "gru" else f(G * H), h0=f(B, H))
    if cell == "lstm":
        fw["c0"] = f(B, H)
    fw["activation"] = "tanh"
    if cell != "simple_rnn":
        fw["recurrent_activation"] = "sigmoid"
    if cell == "gru":
        fw["reset_after"] = True
    fw.update(mask=np.ones((B, T), bool), go_backwards=False, training=True, return_sequences=True)
    if cell in ("simple_rnn", "gru"):  # after pack (positional order): the zoneout keep weights (B, T, H)
        fw.update(pack=None, zoneout_h=f(B, T, H))
    if cell == "lstm":
        fw.update(pack=None, zoneout_h=f(B, T, H), zoneout_c=f(B, T, H))
    result = getattr(_native, f"{cell}_forward")(**fw)
    saved = result[-1]
    bw = dict(d_outputs=f(B, T, H), d_h_last=f(B, H))
    if cell == "lstm":
        bw["d_c_last"] = f(B, H)
    bw.update(x=fw["x"], kernel=fw["kernel"], recurrent_kernel=fw["recurrent_kernel"])
    if cell == "simple_rnn":
        bw["states"] = saved
    else:
        bw["saved"] = saved
    bw["mask"] = fw["mask"]
    bw["activation"] = "tanh"
    if cell != "simple_rnn":
        bw["recurrent_activation"] = "sigmoid"
    if cell == "gru":
        bw["reset_after"] = True
    bw.update(go_backwards=False, has_bias=True)
    bw["zoneout_h"] = fw["zoneout_h"]
    if cell == "lstm":
        bw["zoneout_c"] = fw["zoneout_c"]
    return fw, bw


def _lock(a):
    a.flags.writeable = False
    return a


def read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


ARRAY_OPTIONAL = {"bias", "h0", "c0", "mask", "d_outputs", "d_h_last", "d_c_last", "zoneout_h", "zoneout_c"}
BOOL_ARGS = {"go_backwards", "training", "return_sequences", "has_bias", "reset_after", "trans_a", "trans_b"}


def malformed_for(kwargs, enum_strings=("activation", "recurrent_activation"), free=None, any_float=(),
                  defaults=(), positional_tail=()):
    """Malformed variants of a valid kwargs dict: each argument replaced in turn (``free``: name ->
    dimensions of any size; ``any_float``: arguments that decide the dtype; ``defaults``: arguments
    that may be left out)."""
    calls = []
    free = free or {}
    for name, value in kwargs.items():
        if isinstance(value, np.ndarray):
            is_mask = value.dtype == np.bool_
            for desc, bad in bad_arrays(value.shape, value.dtype, optional=name in ARRAY_OPTIONAL, is_mask=is_mask,
                                        free=free.get(name, ()), any_float=name in any_float):
                calls.append((f"{name}: {desc}", {**kwargs, name: bad}))
        elif name in BOOL_ARGS:
            for bad in BOOL_BAD:
                calls.append((f"{name}: {short(bad)}", {**kwargs, name: bad}))
        elif name in enum_strings:
            for bad in STR_TYPE_BAD + STR_NAME_BAD + [value + "\x00", value + "\x00x"]:
                calls.append((f"{name}: {short(bad)}", {**kwargs, name: bad}))
        elif isinstance(value, tuple):  # saved
            arrays_ = list(value)
            for bad in [list(arrays_), tuple(arrays_[:-1]), tuple(arrays_) + (arrays_[0],), (), None,
                        tuple([None] * len(arrays_)), "abc", 3]:
                calls.append((f"{name}: {short(bad)}", {**kwargs, name: bad}))
            for k, a in enumerate(arrays_):
                for desc, bad in bad_arrays(a.shape, a.dtype):
                    t = list(arrays_)
                    t[k] = bad
                    calls.append((f"{name}[{k}]: {desc}", {**kwargs, name: tuple(t)}))
    names = [n for n in kwargs if n not in defaults]
    for k in range(len(names)):  # a missing argument
        calls.append((f"missing {names[k]}", {n: v for n, v in kwargs.items() if n != names[k]}))
    calls += unknown_keywords(kwargs)
    calls += extra_arguments(list(kwargs.values()) + list(positional_tail))
    return calls


def extra_arguments(values):
    """One positional argument too many, for each of EXTRA_VALUES."""
    return [(f"extra positional {short(v)}", ("POSITIONAL", values + [v])) for v in EXTRA_VALUES]


def unknown_keywords(kwargs):
    """An unknown keyword argument, with each of EXTRA_VALUES."""
    return [(f"unknown keyword bogus={short(v)}", {**kwargs, "bogus": v}) for v in EXTRA_VALUES]


def short(v):
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def build_calls():
    """entry point -> list of (description, callable, args or kwargs)."""
    calls = {}

    def add(entry, fn, variants):
        calls.setdefault(entry, []).extend((desc, fn, args) for desc, args in variants)

    for cell in ("simple_rnn", "lstm", "gru"):
        fw, bw = cell_valid(cell)
        fwd = getattr(_native, f"{cell}_forward")
        # pack and the zoneout keep weights are in fw (all optional)
        add(f"{cell}_forward", fwd, malformed_for(fw, defaults=("pack", "zoneout_h", "zoneout_c")))
        G = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
        # pack=: wrong types, a pack of other arrays, of another gate count, of another dtype
        k, rk = read_only(fw["kernel"]), read_only(fw["recurrent_kernel"])
        base = {**fw, "kernel": k, "recurrent_kernel": rk, "training": False}
        own = _native.WeightPack(k, rk, G)
        other = _native.WeightPack(read_only(k), read_only(rk), G)
        f64 = _native.WeightPack(read_only(k.astype(np.float64)), read_only(rk.astype(np.float64)), G)
        wrong_g = 1 if G != 1 else 4
        wk = read_only(np.zeros((I, wrong_g * H), np.float32))
        wrk = read_only(np.zeros((H, wrong_g * H), np.float32))
        wg = _native.WeightPack(wk, wrk, wrong_g)
        pack_bad = [("pack: int", 1), ("pack: str", "pack"), ("pack: array", k), ("pack: object", object()),
                    ("pack: tuple", (k, rk)), ("pack: other arrays", other), ("pack: float64 pack", f64),
                    ("pack: nan", float("nan"))]
        variants = [(d, {**base, "pack": p}) for d, p in pack_bad]
        variants.append(("pack: other gate count (its own arrays)",
                         {**base, "kernel": wk, "recurrent_kernel": wrk, "pack": wg}))
        variants.append(("pack: own, but x of another width", {**base, "pack": own, "x": np.zeros((B, T, I + 1), np.float32)}))
        variants.append(("pack: WeightPack.__new__ without __init__",
                         {**base, "pack": _native.WeightPack.__new__(_native.WeightPack)}))
        # a kernel resized in place after packing (the pack would read freed memory)
        rk2 = read_only(rk)
        k2 = np.array(k)
        p2 = _native.WeightPack(_lock(k2), rk2, G)
        k2.flags.writeable = True
        k2.resize((I + 7, G * H + 64), refcheck=False)
        k2.resize((I, G * H), refcheck=False)
        k2.flags.writeable = False
        variants.append(("pack: kernel resized in place after packing",
                         {**base, "kernel": k2, "recurrent_kernel": rk2, "pack": p2}))
        add(f"{cell}_forward", fwd, variants)
        add(f"{cell}_backward", getattr(_native, f"{cell}_backward"),
            malformed_for(bw, defaults=("zoneout_h", "zoneout_c")))

    # WeightPack(kernel, recurrent_kernel, gates)
    k, rk = read_only(np.zeros((I, 4 * H), np.float32)), read_only(np.zeros((H, 4 * H), np.float32))
    wp = dict(kernel=k, recurrent_kernel=rk, gates=4)
    variants = []
    for name in ("kernel", "recurrent_kernel"):
        for desc, bad in bad_arrays(wp[name].shape, wp[name].dtype, free=(0,) if name == "kernel" else (),
                                    any_float=name == "kernel"):
            if isinstance(bad, np.ndarray):
                bad.flags.writeable = False
            variants.append((f"{name}: {desc}", {**wp, name: bad}))
        variants.append((f"{name}: writeable", {**wp, name: np.array(wp[name])}))
    for bad in INT_BAD + [2, 5, -4, 3]:
        variants.append((f"gates: {short(bad)}", {**wp, "gates": bad}))
    k2, rk2 = read_only(np.zeros((I, 2 * H), np.float32)), read_only(np.zeros((H, 2 * H), np.float32))
    variants.append(("gates: 2 with arrays of 2 gates", {"kernel": k2, "recurrent_kernel": rk2, "gates": 2}))
    uninitialised = _native.WeightPack.__new__(_native.WeightPack)
    for attr in ("kernel", "recurrent_kernel", "gates", "packed_bytes"):
        variants.append((f"uninitialised .{attr}", ("GETATTR", uninitialised, attr)))
    variants += [(f"missing {n}", {m: v for m, v in wp.items() if m != n}) for n in wp]
    variants += unknown_keywords(wp)
    variants += extra_arguments(list(wp.values()))
    add("WeightPack", _native.WeightPack, variants)

    # gemm(a, b, trans_a, trans_b)
    f = arrays(np.float32)
    g = dict(a=f(3, 4), b=f(4, 5), trans_a=False, trans_b=False)
    variants = malformed_for(g, free={"a": (0,), "b": (1,)}, any_float=("a",), defaults=("trans_a", "trans_b"))
    for ta, tb in [(True, False), (False, True), (True, True)]:
        variants.append((f"trans {ta} {tb}: inner mismatch", {**g, "trans_a": ta, "trans_b": tb}))
    for sa, sb in [((HUGE, 0), (0, HUGE)), ((HUGER, 0), (0, 16)), ((1, 0), (0, HUGER)), ((2 ** 31, 0), (0, 2 ** 31)),
                   ((0, HUGE), (HUGE + 1, 0))]:
        variants.append((f"a {sa} @ b {sb}", {**g, "a": np.zeros(sa, np.float32), "b": np.zeros(sb, np.float32)}))
    add("gemm", _native.gemm, variants)

    # dense_forward(x, kernel, bias, activation)
    d = dict(x=f(6, 4), kernel=f(4, 3), bias=f(3), activation="relu")
    variants = malformed_for(d, free={"x": (0,)})
    variants.append(("x (2**40, 0) @ kernel (0, 3)", {**d, "x": np.zeros((HUGE, 0), np.float32),
                                                      "kernel": np.zeros((0, 3), np.float32)}))
    variants.append(("x (2**58, 0) @ kernel (0, 64)", {**d, "x": np.zeros((HUGER, 0), np.float32),
                                                       "kernel": np.zeros((0, 64), np.float32), "bias": None}))
    add("dense_forward", _native.dense_forward, variants)

    # dense_backward(d_y, x, kernel, y, activation, has_bias): x fixes N, kernel I and U
    db = dict(d_y=f(6, 3), x=f(6, 4), kernel=f(4, 3), y=f(6, 3), activation="tanh", has_bias=True)
    variants = malformed_for(db)
    variants.append(("x (2**40, 0) @ kernel (0, 3)", {**db, "x": np.zeros((HUGE, 0), np.float32),
                                                      "kernel": np.zeros((0, 3), np.float32)}))
    add("dense_backward", _native.dense_backward, variants)

    # activation(name, x), exp(x)
    a = dict(name="tanh", x=f(7))
    add("activation", _native.activation, malformed_for(a, enum_strings=("name",), free={"x": (0,)}, any_float=("x",)))
    add("exp", _native.exp, malformed_for(dict(x=f(7)), free={"x": (0,)}, any_float=("x",)))

    # utilities
    for name, params in [("set_num_threads", {"n": 1}), ("peak_gflops", {"dtype": "float32", "threads": 1}),
                         ("force_isa", {"name": "generic"}), ("set_batch_lanes", {"mode": "auto"}),
                         ("isa_supported", {"name": "generic"})]:
        fn = getattr(_native, name)
        variants = []
        for pname, value in params.items():
            if isinstance(value, int):
                bads = INT_BAD + [_native.max_threads() + 1, 2 ** 31 - 1, -7]
            elif name == "isa_supported":  # any string is a fine question; other types are not
                bads = STR_TYPE_BAD
            else:
                bads = STR_TYPE_BAD + STR_NAME_BAD + [value + "\x00", value + "\x00x", "\x00" + value]
            for bad in bads:
                variants.append((f"{pname}: {short(bad)}", {**params, pname: bad}))
        variants += unknown_keywords(params)
        variants += extra_arguments(list(params.values()))
        add(name, fn, variants)
    for name in ("max_threads", "get_num_threads", "have_openmp", "isa", "release_cached_blocks",
                 "cached_block_bytes", "settings", "settings_problems"):
        fn = getattr(_native, name)
        variants = extra_arguments([])
        variants += [(f"keyword {short(v)}", {"n": v}) for v in EXTRA_VALUES]
        add(name, fn, variants)
    return calls


def nan_data_calls():
    """NaN / Inf data, extreme shapes: must not crash (any result or exception is fine)."""
    out = []
    for cell in ("simple_rnn", "lstm", "gru"):
        fw, bw = cell_valid(cell)
        for fill in (np.nan, np.inf, -np.inf):
            out.append((f"{cell}_forward all {fill}", getattr(_native, f"{cell}_forward"),
                        {**fw, **{n: np.full_like(v, fill) for n, v in fw.items()
                                  if isinstance(v, np.ndarray) and v.dtype != np.bool_}}))
            out.append((f"{cell}_backward all {fill}", getattr(_native, f"{cell}_backward"),
                        {**bw, **{n: np.full_like(v, fill) for n, v in bw.items()
                                  if isinstance(v, np.ndarray) and v.dtype != np.bool_}}))
        # B = 0 with an absurd number of steps; B huge with T = 0; I = 0 with a result too large to exist
        G = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
        base = {n: (None if n in ("bias", "h0", "c0", "mask") else v) for n, v in fw.items()}
        for desc, x, k in [("B=0, T=2**40", np.zeros((0, HUGE, I), np.float32), fw["kernel"]),
                           ("B=0, T=2**58", np.zeros((0, HUGER, I), np.float32), fw["kernel"]),
                           ("B=2**40, T=0", np.zeros((HUGE, 0, I), np.float32), fw["kernel"]),
                           ("B=T=2**29, I=0", np.zeros((2 ** 29, 2 ** 29, 0), np.float32), np.zeros((0, G * H), np.float32))]:
            for training in (True, False):
                out.append((f"{cell}_forward {desc} training={training}", getattr(_native, f"{cell}_forward"),
                            {**base, "x": x, "kernel": k, "training": training}))
    f = arrays(np.float32)
    out.append(("gemm nan", _native.gemm, dict(a=np.full((3, 4), np.nan, np.float32), b=f(4, 5))))
    out.append(("dense nan", _native.dense_forward, dict(x=np.full((3, 4), np.inf, np.float32), kernel=f(4, 2),
                                                         bias=None, activation="sigmoid")))
    out.append(("activation nan", _native.activation, dict(name="tanh", x=np.array([np.nan, np.inf, -np.inf], np.float32))))
    out.append(("exp nan", _native.exp, dict(x=np.array([np.nan, np.inf, -np.inf, 1e30], np.float64))))
    return out


def call(fn, args):
    if isinstance(args, tuple) and args and args[0] == "POSITIONAL":
        return fn(*args[1])
    if isinstance(args, tuple) and args and args[0] == "GETATTR":
        return getattr(args[1], args[2])
    return fn(**args)


def main():
    exported = sorted(n for n in dir(_native) if not n.startswith("_"))
    calls = build_calls()
    summary = {"exported": exported, "entries": {}, "nan_data": {}}
    for entry, items in calls.items():
        info = summary["entries"][entry] = {"calls": len(items), "raised": {}, "returned": []}
        for desc, fn, args in items:
            print(f"CALL {entry} {desc}", flush=True)
            try:
                call(fn, args)
            except Exception as exc:  # noqa: BLE001 - a Python exception is the point
                name = type(exc).__name__
                print(f"RAISED {name}: {str(exc)[:300]!r}", flush=True)
                info["raised"][name] = info["raised"].get(name, 0) + 1
            else:
                info["returned"].append(desc)
    for desc, fn, args in nan_data_calls():
        print(f"CALL nan-data {desc}", flush=True)
        try:
            call(fn, args)
            summary["nan_data"][desc] = "returned"
        except Exception as exc:  # noqa: BLE001
            summary["nan_data"][desc] = type(exc).__name__
    print("SUMMARY " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
