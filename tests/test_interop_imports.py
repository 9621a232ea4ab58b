"""``import rnnkit`` never imports rnnkit.interop, and ``import rnnkit.interop`` imports none of the
libraries it converts from or to (keras, torch, onnx, onnxruntime, h5py): each is imported only by the
function that needs it (docs/INTEROP.md)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("keras", "torch", "onnx", "onnxruntime", "h5py", "tensorflow")


def loaded_after(statement):
    code = (f"import sys\n{statement}\n"
            f"print(sorted(m for m in {HEAVY!r} + ('rnnkit.interop',) if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_rnnkit_loads_no_interop():
    assert loaded_after("import rnnkit") == "[]"


def test_import_interop_loads_no_heavy_library():
    assert loaded_after("import rnnkit.interop, rnnkit.interop.keras, rnnkit.interop.onnx") == "['rnnkit.interop']"
