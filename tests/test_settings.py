"""Environment settings (docs/SETTINGS.md): every RNNKIT_* variable rnnkit reads.

Valid values take effect (``rnnkit._native.settings()`` and, where there is one, an observable:
``_native.isa()``, the batch-lane mode, the large-block cache, the backend); an invalid value gives
exactly one ``RuntimeWarning`` naming the variable, the value and the accepted values, and the
default applies. The C++ core parses its variables once per process, so each case runs in a fresh
interpreter. The table in docs/SETTINGS.md lists every variable the code reads.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rnnkit
from rnnkit import _backend, _settings

ROOT = Path(__file__).resolve().parents[1]
SITE = str(Path(rnnkit.__file__).resolve().parent.parent)
NATIVE = _backend.native_available()
needs_native = pytest.mark.native  # skipped without rnnkit._native; fails under RNNKIT_REQUIRE_NATIVE=1

DEFAULTS = {"RNNKIT_ISA": "auto", "RNNKIT_BATCH_LANES": "auto", "RNNKIT_RECURRENT_SPLIT": "auto",
            "RNNKIT_PARALLEL_MIN_FLOPS": 1.0e6, "RNNKIT_CACHE_MB": 1024}

# Import rnnkit recording every warning, load the native module (RNNKIT_BACKEND=python defers it),
# and report what took effect.
REPORT = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import rnnkit
    from rnnkit import _backend
    report = {"backend": rnnkit.get_backend(), "native": _backend.native_available()}
    if report["native"]:
        import numpy as np
        from rnnkit import _native
        report["settings"] = _native.settings()
        report["isa"] = _native.isa()
        report["batch_lanes"] = _native.set_batch_lanes("auto")  # returns the mode in force
        _native.release_cached_blocks()
        x = np.ones((64, 40, 16), np.float32)  # a 1.25 MiB SimpleRNN output, freed at once
        _native.simple_rnn_forward(x, np.full((16, 128), 0.01, np.float32), np.eye(128, dtype=np.float32),
                                   None, None, "tanh", None, False, False, True)
        report["cached_bytes"] = _native.cached_block_bytes()
report["warnings"] = [[w.category.__name__, str(w.message)] for w in caught]
print(json.dumps(report))
"""


def clean_env(**variables: str) -> dict:
    """os.environ without any RNNKIT_* variable (but RNNKIT_REQUIRE_NATIVE) or OMP_NUM_THREADS, this
    rnnkit importable, plus ``variables``."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("RNNKIT_") and k != "RNNKIT_REQUIRE_NATIVE") and k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = SITE + os.pathsep + env.get("PYTHONPATH", "")
    env.update(variables)
    return env


def run(code: str = REPORT, **variables: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=clean_env(**variables),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def default_report():
    return run()


def test_defaults(default_report):
    assert default_report["warnings"] == []
    if NATIVE:
        assert default_report["settings"] == DEFAULTS
        assert default_report["batch_lanes"] == "auto"
        assert default_report["cached_bytes"] > 0  # the cache is on by default


# ---------------------------------------------------------------------------------------------
# valid values take effect (words: any case, surrounding whitespace ignored)
# ---------------------------------------------------------------------------------------------


@needs_native
@pytest.mark.parametrize("value, isa", [("generic", "generic"), (" AVX2 ", "avx2"), ("avx512", "avx512"),
                                        ("auto", None), ("", None)])
def test_isa_valid(default_report, value, isa):
    from rnnkit import _native

    if isa is not None and not _native.isa_supported(isa):
        pytest.skip(f"this CPU cannot run the {isa} kernels")
    report = run(RNNKIT_ISA=value)
    assert report["warnings"] == []
    assert report["settings"]["RNNKIT_ISA"] == (isa or "auto")
    assert report["isa"] == (isa or default_report["isa"])  # auto / empty: the best path, as unset


@needs_native
@pytest.mark.parametrize("value, mode", [("on", "on"), ("OFF", "off"), (" auto ", "auto"), ("", "auto")])
def test_batch_lanes_valid(value, mode):
    report = run(RNNKIT_BATCH_LANES=value)
    assert report["warnings"] == []
    assert report["settings"]["RNNKIT_BATCH_LANES"] == mode
    assert report["batch_lanes"] == mode


@needs_native
@pytest.mark.parametrize("name, value, effective", [
    ("RNNKIT_RECURRENT_SPLIT", "batch", "batch"),
    ("RNNKIT_RECURRENT_SPLIT", "Units", "units"),
    ("RNNKIT_RECURRENT_SPLIT", "auto", "auto"),
    ("RNNKIT_PARALLEL_MIN_FLOPS", "0", 0.0),
    ("RNNKIT_PARALLEL_MIN_FLOPS", " 2.5e5 ", 2.5e5),
    ("RNNKIT_PARALLEL_MIN_FLOPS", "inf", float("inf")),
    ("RNNKIT_CACHE_MB", "4", 4),
    ("RNNKIT_CACHE_MB", "0", 0),
])
def test_numbers_and_split_valid(name, value, effective):
    report = run(**{name: value})
    assert report["warnings"] == []
    assert report["settings"] == dict(DEFAULTS, **{name: effective})
    if name == "RNNKIT_CACHE_MB":  # the 1.25 MiB block: cached under 4 MiB, not with the cache off
        assert (report["cached_bytes"] > 0) is (effective > 0)


@pytest.mark.parametrize("value, backend", [("python", "python"), (" Native ", "native")])
def test_backend_valid(value, backend):
    if backend == "native" and not NATIVE:
        pytest.skip("the native module is not built")
    report = run(RNNKIT_BACKEND=value)
    assert report["warnings"] == []
    assert report["backend"] == backend


@needs_native
@pytest.mark.parametrize("value", ["1", "yes", "anything"])
def test_require_native_valid(value):
    report = run(RNNKIT_REQUIRE_NATIVE=value)
    assert report["warnings"] == [] and report["backend"] == "native"


@pytest.mark.parametrize("value, required", [("1", True), (" ON ", True), ("maybe", True), ("0", False),
                                             ("", False), (" no ", False), ("FALSE", False), (None, False)])
def test_require_native_parse(value, required):
    """Every value is valid: anything but empty, 0, false, no, off requires the native module."""
    environ = {} if value is None else {"RNNKIT_REQUIRE_NATIVE": value}
    assert _settings.require_native(environ) is required
    assert _settings.python_problems(environ) == []


# ---------------------------------------------------------------------------------------------
# invalid values: exactly one warning naming the variable, the value and the accepted values
# ---------------------------------------------------------------------------------------------

INVALID = [
    ("RNNKIT_BACKEND", "cuda", "native, python"),
    ("RNNKIT_ISA", "sse9", "auto, generic"),
    ("RNNKIT_ISA", "avx-512", "auto, generic"),
    ("RNNKIT_BATCH_LANES", "1", "auto, on, off"),  # the example: used to mean auto silently
    ("RNNKIT_BATCH_LANES", "yes", "auto, on, off"),
    ("RNNKIT_RECURRENT_SPLIT", "rows", "auto, batch, units"),
    ("RNNKIT_PARALLEL_MIN_FLOPS", "-1", "a number >= 0"),
    ("RNNKIT_PARALLEL_MIN_FLOPS", "1e6 flops", "a number >= 0"),
    ("RNNKIT_PARALLEL_MIN_FLOPS", "nan", "a number >= 0"),
    ("RNNKIT_CACHE_MB", "-5", "a whole number of MiB >= 0"),
    ("RNNKIT_CACHE_MB", "1.5", "a whole number of MiB >= 0"),
    ("RNNKIT_CACHE_MB", "99999999999999999999", "a whole number of MiB >= 0"),
]


@pytest.mark.parametrize("name, value, accepted", INVALID)
def test_invalid_value_warns_once(default_report, name, value, accepted):
    if name != "RNNKIT_BACKEND" and not NATIVE:
        pytest.skip("a C++ setting: read by the native module, which is not built")
    report = run(**{name: value})
    assert len(report["warnings"]) == 1, report["warnings"]
    category, message = report["warnings"][0]
    assert category == "RuntimeWarning"
    assert message.startswith(f"rnnkit: ignoring {name}={value!r} (accepted: {accepted}")
    assert " using " in message
    if NATIVE:  # the default applies
        assert report["settings"] == DEFAULTS
        assert report["isa"] == default_report["isa"] and report["batch_lanes"] == "auto"
        assert report["backend"] == "native"


@needs_native
def test_unsupported_isa_names_what_this_cpu_runs(default_report):
    from rnnkit import _native

    lacking = [isa for isa in ("avx2", "avx512") if not _native.isa_supported(isa)]
    if not lacking:
        pytest.skip("this CPU supports every ISA path")
    report = run(RNNKIT_ISA=lacking[-1])
    assert [m for _, m in report["warnings"]] == [
        f"rnnkit: ignoring RNNKIT_ISA={lacking[-1]!r} (accepted: auto, "
        + ", ".join(i for i in ("generic", "avx2", "avx512") if i not in lacking)
        + f" (this CPU lacks {', '.join(lacking)})); using auto ({default_report['isa']})"]
    assert report["isa"] == default_report["isa"]


@needs_native
def test_every_invalid_variable_warns_once_in_order():
    values = {name: value for name, value, _ in INVALID}  # the last invalid value of each variable
    report = run(**values)
    names = [re.match(r"rnnkit: ignoring (RNNKIT_\w+)=", m).group(1) for _, m in report["warnings"]]
    assert names == ["RNNKIT_BACKEND", "RNNKIT_ISA", "RNNKIT_BATCH_LANES", "RNNKIT_RECURRENT_SPLIT",
                     "RNNKIT_PARALLEL_MIN_FLOPS", "RNNKIT_CACHE_MB"]
    assert report["settings"] == DEFAULTS


@needs_native
def test_native_warnings_wait_until_the_native_module_loads():
    """RNNKIT_BACKEND=python does not import the native module: its settings' warnings come when
    rnnkit loads it (here set_backend("native")), once."""
    code = """
        import json, warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import rnnkit
            at_import = len(caught)
            rnnkit.set_backend("native")
            rnnkit.set_backend("python")
            rnnkit.set_backend("native")
        print(json.dumps({"at_import": at_import, "warnings": [str(w.message) for w in caught]}))
    """
    # RNNKIT_REQUIRE_NATIVE (CI) would import the native module at import
    report = run(code, RNNKIT_BACKEND="python", RNNKIT_BATCH_LANES="1", RNNKIT_REQUIRE_NATIVE="")
    assert report["at_import"] == 0
    assert report["warnings"] == ["rnnkit: ignoring RNNKIT_BATCH_LANES='1' (accepted: auto, on, off); using auto"]


@needs_native
def test_undecodable_value_is_reported_as_os_environ_has_it():
    value = "on\udcff"  # a byte that is not UTF-8, as os.environ holds it (surrogateescape)
    report = run(RNNKIT_BATCH_LANES=value)
    assert [m for _, m in report["warnings"]] == [
        f"rnnkit: ignoring RNNKIT_BATCH_LANES={value!r} (accepted: auto, on, off); using auto"]


def test_effective_python_side():
    assert _settings.effective(environ={}) == {"RNNKIT_BACKEND": None, "RNNKIT_REQUIRE_NATIVE": False}
    assert _settings.effective(environ={"RNNKIT_BACKEND": "cuda"})["RNNKIT_BACKEND"] is None
    assert _settings.python_problems({"RNNKIT_BACKEND": "cuda"}) == [
        _settings.Problem("RNNKIT_BACKEND", "cuda", "native, python", "the default (native when it imports)")]


# ---------------------------------------------------------------------------------------------
# one table lists them all
# ---------------------------------------------------------------------------------------------


def _variables_in_code() -> set[str]:
    """Every "RNNKIT_*" string literal of the package, the C++ core, the tests and the benchmarks,
    and the RNNKIT_* variables CI's script reads."""
    found: set[str] = set()
    for folder in ("src", "cpp", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".cc", ".h", ".inc"):
                found |= set(re.findall(r"[\"'](RNNKIT_[A-Z0-9_]+)[\"']", path.read_text(encoding="utf-8")))
    ci = ROOT / ".ci" / "run"
    if ci.exists():
        found |= set(re.findall(r"\$\{?(RNNKIT_[A-Z0-9_]+)", ci.read_text(encoding="utf-8")))
    return found


def test_settings_table_lists_every_variable():
    text = (ROOT / "docs" / "SETTINGS.md").read_text(encoding="utf-8")
    in_table = set(re.findall(r"^\| `(RNNKIT_[A-Z0-9_]+)`", text, flags=re.M))
    found = _variables_in_code()
    assert {"RNNKIT_BACKEND", "RNNKIT_ISA", "RNNKIT_CACHE_MB", "RNNKIT_HYPOTHESIS"} <= found  # the scan works
    assert found - in_table == set(), "variables read but missing from docs/SETTINGS.md"
    assert in_table - found == set(), "variables in docs/SETTINGS.md that nothing reads"
    assert set(DEFAULTS) | {"RNNKIT_BACKEND", "RNNKIT_REQUIRE_NATIVE"} <= in_table
