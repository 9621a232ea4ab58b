"""Backend selection (set_backend, RNNKIT_BACKEND, the fallback warning) and the thread settings.

Import-time behaviour is tested in fresh subprocesses, since rnnkit reads the environment and tries
the native import only once per process.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit import _backend, ops

SRC = str(Path(rnnkit.__file__).resolve().parent.parent)
NATIVE = _backend.native_available()
needs_native = pytest.mark.native  # skipped without rnnkit._native; fails under RNNKIT_REQUIRE_NATIVE=1

# A meta-path finder that makes `import rnnkit._native` fail, as on a machine without the build.
BLOCK_NATIVE = """
import sys
class _BlockNative:
    def find_spec(self, name, path=None, target=None):
        if name == "rnnkit._native":
            raise ImportError("blocked by the test")
        return None
sys.meta_path.insert(0, _BlockNative())
"""

# Import rnnkit recording every warning; print what happened as JSON.
IMPORT_AND_REPORT = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import rnnkit
report = {
    "backend": rnnkit.get_backend(),
    "impl": rnnkit._backend.get_impl().__name__,
    "warnings": [[w.category.__name__, str(w.message)] for w in caught],
}
"""


def python_env(env_backend: str | None = None, require_native: str | None = None) -> dict:
    """os.environ for a fresh interpreter: rnnkit importable, RNNKIT_BACKEND and
    RNNKIT_REQUIRE_NATIVE set as given (unset when None, whatever this process has)."""
    drop = ("RNNKIT_BACKEND", "RNNKIT_REQUIRE_NATIVE", "OMP_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    if env_backend is not None:
        env["RNNKIT_BACKEND"] = env_backend
    if require_native is not None:
        env["RNNKIT_REQUIRE_NATIVE"] = require_native
    return env


def run_script(code: str, env: dict, block_native: bool = False) -> subprocess.CompletedProcess:
    script = (BLOCK_NATIVE if block_native else "") + code
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)


def run_python(code: str, env_backend: str | None, block_native: bool = False,
               require_native: str | None = None) -> dict:
    """Run ``code`` in a fresh interpreter (rnnkit importable, RNNKIT_BACKEND set or unset); it must
    leave a JSON-able dict in ``report``, which is returned."""
    proc = run_script(textwrap.dedent(code) + "\nprint(json.dumps(report))\n",
                      python_env(env_backend, require_native), block_native)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def restore_backend():
    previous = rnnkit.get_backend()
    yield
    rnnkit.set_backend(previous)


@pytest.fixture
def restore_threads():
    previous = rnnkit.get_num_threads()
    yield
    rnnkit.set_num_threads(previous)


# ---------------------------------------------------------------------------------------------
# set_backend / get_backend in this process
# ---------------------------------------------------------------------------------------------


def test_python_backend_uses_the_reference(restore_backend):
    rnnkit.set_backend("python")
    assert rnnkit.get_backend() == "python"
    assert _backend.get_impl() is rnnkit.reference


@needs_native
def test_native_backend_uses_the_adapter(restore_backend):
    rnnkit.set_backend("native")
    assert rnnkit.get_backend() == "native"
    assert _backend.get_impl() is importlib.import_module("rnnkit._native_ops")


@pytest.mark.parametrize("bad", ["numpy", "Native", "", None, 1])
def test_set_backend_rejects_unknown_names(restore_backend, bad):
    before = rnnkit.get_backend()
    with pytest.raises(ValueError, match=r"^backend must be one of 'native', 'python', got"):
        rnnkit.set_backend(bad)
    assert rnnkit.get_backend() == before


@pytest.mark.skipif(NATIVE, reason="the native module is importable here (covered by the subprocess test)")
def test_set_native_without_the_module(restore_backend):
    with pytest.raises(RuntimeError, match="native backend is unavailable"):
        rnnkit.set_backend("native")
    assert rnnkit.get_backend() == "python"


def test_switching_backend_takes_effect_for_ops(restore_backend):
    rng = np.random.default_rng(1)
    x, kernel, recurrent = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal((5, 5))
    for name in ("python", "native") if NATIVE else ("python",):
        rnnkit.set_backend(name)
        *_, cache = ops.simple_rnn_forward(x, kernel, recurrent)
        assert cache.impl is _backend.get_impl()


# ---------------------------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError),
                                        (True, TypeError), (None, TypeError)])
def test_set_num_threads_validates(restore_threads, bad, error):
    with pytest.raises(error, match="^n must be a positive integer"):
        rnnkit.set_num_threads(bad)


@pytest.mark.parametrize("backend", ["python", pytest.param("native", marks=needs_native)])
def test_set_num_threads_roundtrip(restore_backend, restore_threads, backend):
    rnnkit.set_backend(backend)
    rnnkit.set_num_threads(1)
    assert rnnkit.get_num_threads() == 1
    rnnkit.set_num_threads(np.int64(2))
    assert rnnkit.get_num_threads() == 2
    assert type(rnnkit.get_num_threads()) is int


def test_default_threads_is_all_cores():
    report = run_python(IMPORT_AND_REPORT + "report['threads'] = rnnkit.get_num_threads()\n", env_backend="python")
    assert report["threads"] == len(os.sched_getaffinity(0))


def test_python_backend_remembers_threads_without_native():
    report = run_python(
        IMPORT_AND_REPORT + "rnnkit.set_num_threads(3)\nreport['threads'] = rnnkit.get_num_threads()\n",
        env_backend="python",
        block_native=True,
    )
    assert report["threads"] == 3
    assert report["warnings"] == []


# ---------------------------------------------------------------------------------------------
# RNNKIT_BACKEND and the fallback warning (fresh processes)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block_native", [False, True])
def test_env_python_gives_python_and_no_warning(block_native):
    report = run_python(IMPORT_AND_REPORT, env_backend="python", block_native=block_native)
    assert report == {"backend": "python", "impl": "rnnkit.reference", "warnings": []}


@pytest.mark.parametrize("env_backend", [None, "native"])
def test_fallback_warns_once_when_native_cannot_be_imported(env_backend):
    code = IMPORT_AND_REPORT + textwrap.dedent("""
        try:
            rnnkit.set_backend("native")
        except RuntimeError as exc:
            report["set_native_error"] = str(exc)
        import numpy as np
        out, h, cache = rnnkit.ops.simple_rnn_forward(np.ones((1, 2, 3)), np.ones((3, 4)), np.eye(4))
        report["ops_backend"] = cache.impl.__name__
    """)
    report = run_python(code, env_backend=env_backend, block_native=True)
    assert report["backend"] == "python"
    assert report["impl"] == "rnnkit.reference"
    assert report["warnings"] == [
        ["RuntimeWarning",
         "rnnkit: native module unavailable (ImportError: blocked by the test); using the NumPy reference backend"]
    ]
    assert "native backend is unavailable (ImportError: blocked by the test)" in report["set_native_error"]
    assert report["ops_backend"] == "rnnkit.reference"


@needs_native
@pytest.mark.parametrize("env_backend", [None, "native", " Native "])
def test_native_is_the_default_when_built(env_backend):
    report = run_python(IMPORT_AND_REPORT, env_backend=env_backend)
    assert report == {"backend": "native", "impl": "rnnkit._native_ops", "warnings": []}


def test_invalid_env_value_warns_and_uses_the_default():
    report = run_python(IMPORT_AND_REPORT, env_backend="cuda")
    messages = [m for _, m in report["warnings"]]
    assert any("RNNKIT_BACKEND='cuda'" in m for m in messages)
    assert all(category == "RuntimeWarning" for category, _ in report["warnings"])
    if NATIVE:
        assert report["backend"] == "native" and len(messages) == 1
    else:
        assert report["backend"] == "python" and len(messages) == 2  # + the fallback warning


# ---------------------------------------------------------------------------------------------
# RNNKIT_REQUIRE_NATIVE: no fallback, and the tests' skips for a missing build become failures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def package_without_native(tmp_path_factory):
    """A copy of the installed rnnkit package without the compiled extension, as on a machine where
    the build failed: its directory goes first on PYTHONPATH."""
    root = tmp_path_factory.mktemp("no_native")
    shutil.copytree(Path(rnnkit.__file__).resolve().parent, root / "rnnkit",
                    ignore=shutil.ignore_patterns("_native.*.so", "_native.*.pyd", "_native.so", "__pycache__"))
    assert not list((root / "rnnkit").glob("_native*.so"))
    return str(root)


def _env_with(path_first: str, require_native: str | None, env_backend: str | None = None) -> dict:
    env = python_env(env_backend, require_native)
    env["PYTHONPATH"] = path_first + os.pathsep + env["PYTHONPATH"]
    return env


@pytest.mark.parametrize("hide", ["copy_without_so", "import_blocked"])
@pytest.mark.parametrize("env_backend", [None, "native", "python"])
def test_require_native_raises_instead_of_falling_back(package_without_native, hide, env_backend):
    code = "import rnnkit\nprint('imported', rnnkit.get_backend())\n"
    if hide == "copy_without_so":
        proc = run_script(code, _env_with(package_without_native, "1", env_backend))
        cause = "No module named 'rnnkit._native'"
    else:
        proc = run_script(code, python_env(env_backend, "1"), block_native=True)
        cause = "ImportError: blocked by the test"
    assert proc.returncode != 0 and "imported" not in proc.stdout, proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: rnnkit: RNNKIT_REQUIRE_NATIVE='1' but the native module "
                           "rnnkit._native cannot be imported ("), proc.stderr
    assert cause in last, proc.stderr


@pytest.mark.parametrize("require", [None, "0", ""])
def test_without_the_switch_a_missing_build_falls_back_with_a_warning(package_without_native, require):
    code = IMPORT_AND_REPORT + "\nprint(json.dumps(report))\n"
    proc = run_script(code, _env_with(package_without_native, require))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["backend"] == "python"
    assert len(report["warnings"]) == 1
    category, message = report["warnings"][0]
    assert category == "RuntimeWarning"
    assert message.startswith("rnnkit: native module unavailable (ModuleNotFoundError: No module named "
                              "'rnnkit._native')"), message


@needs_native
@pytest.mark.parametrize("env_backend, backend", [(None, "native"), ("python", "python")])
def test_require_native_with_the_build_imports_normally(env_backend, backend):
    report = run_python(IMPORT_AND_REPORT + "import sys\nreport['loaded'] = 'rnnkit._native' in sys.modules\n",
                        env_backend=env_backend, require_native="1")
    assert report["backend"] == backend and report["warnings"] == []
    assert report["loaded"]  # checked even when the python backend is asked for


@pytest.mark.parametrize("value, required", [("1", True), ("yes", True), (" ON ", True), ("0", False),
                                             ("", False), ("off", False), ("False", False)])
def test_require_native_values(monkeypatch, value, required):
    monkeypatch.setenv("RNNKIT_REQUIRE_NATIVE", value)
    assert _backend.native_required() is required


@pytest.mark.parametrize("required", [False, True])
@pytest.mark.parametrize("missing", ["native", "openmp"])
def test_helper_skips_or_fails(monkeypatch, required, missing):
    """The tests' one helper: a missing native module or OpenMP skips, or fails when required."""
    import _native_required as nr

    class NoOpenMP:
        @staticmethod
        def have_openmp():
            return False

    monkeypatch.setattr(nr, "REQUIRED", required)
    if missing == "native":
        monkeypatch.setattr(nr, "native_available", lambda: False)
    else:
        monkeypatch.setattr(nr, "native_available", lambda: True)
        monkeypatch.setattr(nr, "_native", lambda: NoOpenMP)
    outcome = pytest.fail.Exception if required else pytest.skip.Exception
    calls = [nr.require_openmp] if missing == "openmp" else [nr.require_native, nr.require_openmp, nr.import_native]
    for call in calls:
        with pytest.raises(outcome) as info:
            call()
        assert ("RNNKIT_REQUIRE_NATIVE is set" in str(info.value)) is required


def test_required_build_is_native_with_openmp():
    """Under RNNKIT_REQUIRE_NATIVE=1 (CI) this process must run the native kernels built with OpenMP."""
    import _native_required as nr

    nr.require_openmp()
    assert rnnkit.get_backend() == "native" or os.environ.get("RNNKIT_BACKEND", "").strip() == "python"
