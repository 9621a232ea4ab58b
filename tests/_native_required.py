"""The one place tests decide to skip for a missing native module or a build without OpenMP.

Under ``RNNKIT_REQUIRE_NATIVE=1`` (CI sets it) every such skip becomes a failure, so that a broken
build cannot pass by testing the NumPy reference twice or by running "multi-threaded" tests on one
thread. Use:

- ``import_native()`` at module level instead of ``pytest.importorskip("rnnkit._native")``;
- ``require_native(reason)`` / ``require_openmp(reason)`` inside a test or fixture;
- the markers ``@pytest.mark.native`` / ``@pytest.mark.openmp`` (conftest.py applies them);
- ``native_param(value)``: a ``pytest.param`` carrying the ``native`` marker.
"""

from __future__ import annotations

import pytest

from rnnkit import _backend

REQUIRED = _backend.native_required()
REQUIRE_HINT = f"{_backend.REQUIRE_ENV_VAR}=1 turns this skip into a failure"


def native_available() -> bool:
    return _backend.native_available()


def openmp_available() -> bool:
    return native_available() and bool(_native().have_openmp())


def _native():
    import rnnkit._native

    return rnnkit._native


def skip_or_fail(reason: str, *, allow_module_level: bool = False):
    """pytest.skip(reason), or pytest.fail under RNNKIT_REQUIRE_NATIVE=1."""
    if REQUIRED:
        pytest.fail(f"{reason} ({_backend.REQUIRE_ENV_VAR} is set: this must not be skipped)", pytrace=False)
    pytest.skip(f"{reason} ({REQUIRE_HINT})", allow_module_level=allow_module_level)


def native_reason() -> str:
    return f"rnnkit._native is not importable ({_backend._native_error or 'not built'})"


def require_native(reason: str | None = None) -> None:
    if not native_available():
        skip_or_fail(reason or native_reason())


def require_openmp(reason: str | None = None) -> None:
    require_native()
    if not _native().have_openmp():
        skip_or_fail(reason or "rnnkit._native was built without OpenMP: the kernels run on one thread")


def import_native():
    """The module rnnkit._native; skips the calling test module when it is missing (fails under
    RNNKIT_REQUIRE_NATIVE=1)."""
    if not native_available():
        skip_or_fail(native_reason(), allow_module_level=True)
    return _native()


def native_param(*values, **kwargs):
    """pytest.param(*values) that needs the native module (skipped, or failed when required)."""
    marks = kwargs.pop("marks", ())
    marks = (marks,) if not isinstance(marks, (tuple, list)) else tuple(marks)
    return pytest.param(*values, marks=(pytest.mark.native, *marks), **kwargs)
