"""Every instruction-set path (forced with RNNKIT_ISA) against NumPy and the reference.

Each supported ISA runs in its own process (the choice is made once per process): the packed GEMM
against NumPy's ``@`` over odd shapes and all transposes, and the native recurrences (forward and
every gradient) against the NumPy reference, with the tolerances of docs/SPEC.md §14.1 (relative norm error
≤ 1e-5 in float32, ≤ 1e-10 in float64).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from _native_required import import_native

_native = import_native()  # skipped without it (a failure under RNNKIT_REQUIRE_NATIVE=1)

ISAS = ["generic", "avx2", "avx512"]

CHILD = r"""
import json
import numpy as np
import rnnkit
from rnnkit import _native, ops

def rel(a, b):
    a = np.asarray(a, dtype=np.float64); b = np.asarray(b, dtype=np.float64)
    den = np.linalg.norm(b)
    err = np.linalg.norm(a - b)
    return float(err / den) if den > 0 else float(err)

rng = np.random.default_rng(3)
worst = {"float32": 0.0, "float64": 0.0}
for dtype in ("float32", "float64"):
    # GEMM: odd shapes (1, non-multiples of the tile sizes, several K blocks), every transpose
    for m, n, k in [(1, 1, 1), (1, 37, 5), (13, 1, 7), (29, 45, 3), (61, 33, 401), (130, 70, 900)]:
        for ta in (False, True):
            for tb in (False, True):
                a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
                b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
                want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
                worst[dtype] = max(worst[dtype], rel(_native.gemm(a, b, ta, tb), want))
    # recurrences: native vs reference, forward and every gradient
    for cell, gates in (("simple_rnn", 1), ("lstm", 4), ("gru", 3)):
        for B, T, I, H in [(3, 5, 4, 7), (17, 9, 6, 40)]:
            x = rng.standard_normal((B, T, I)).astype(dtype)
            k = (rng.standard_normal((I, gates * H)) * 0.4).astype(dtype)
            r = (rng.standard_normal((H, gates * H)) * 0.4 / np.sqrt(H)).astype(dtype)
            bias = rng.standard_normal((2, 3 * H) if cell == "gru" else (gates * H,)).astype(dtype) * 0.1
            lengths = rng.integers(0, T + 1, size=B)
            d_out = rng.standard_normal((B, T, H)).astype(dtype)
            results = []
            for backend in ("native", "python"):
                rnnkit.set_backend(backend)
                fwd = getattr(ops, cell + "_forward")
                bwd = getattr(ops, cell + "_backward")
                out = fwd(x, k, r, bias, lengths=lengths, go_backwards=(B % 2 == 1))
                grads = bwd(d_out, None, None, out[-1]) if cell == "lstm" else bwd(d_out, None, out[-1])
                results.append([o for o in out[:-1]] + [g for g in grads if g is not None])
            for a, b in zip(*results):
                worst[dtype] = max(worst[dtype], rel(a, b))
print(json.dumps({"isa": _native.isa(), "worst": worst}))
"""


@pytest.mark.parametrize("isa", ISAS)
def test_isa_path_agrees_with_numpy_and_reference(isa):
    if not _native.isa_supported(isa):
        pytest.skip(f"this CPU cannot run the {isa} kernels")
    env = dict(os.environ, RNNKIT_ISA=isa)
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["isa"] == isa
    assert report["worst"]["float32"] <= 1e-5, report
    assert report["worst"]["float64"] <= 1e-10, report
    assert all(np.isfinite(v) for v in report["worst"].values())
