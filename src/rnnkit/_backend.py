"""Which implementation runs the kernels: ``"native"`` (C++, ``rnnkit._native``) or ``"python"``.

Both implement the canonical functions of docs/ARCHITECTURE.md: the native one through the adapter
``rnnkit._native_ops``, the Python one as the NumPy reference ``rnnkit.reference``.
``rnnkit.ops`` asks :func:`get_impl` on every call, so :func:`set_backend` takes effect immediately.

Selection at import time:

- ``RNNKIT_BACKEND=python``: the reference; the native module is not even imported until something
  needs it (``set_backend("native")``, the thread functions). No warning.
- ``RNNKIT_BACKEND=native`` or unset: the native module if it imports, otherwise the reference with
  exactly one ``RuntimeWarning`` giving the reason.
- any other value (words are case-insensitive, whitespace around them ignored): a ``RuntimeWarning``
  and the default above.

``RNNKIT_REQUIRE_NATIVE=1`` (any value but empty, ``0``, ``false``, ``no``, ``off``): the native
module must import, whatever ``RNNKIT_BACKEND`` says; if it does not, ``import rnnkit`` raises
ImportError naming the variable and the reason instead of falling back (CI sets it, so that a broken
build fails instead of testing the reference twice).

The native module is imported at most once per process; a failed import is remembered, not retried.
When it loads, the C++ core's settings problems (an invalid ``RNNKIT_ISA``, ``RNNKIT_BATCH_LANES``...)
become one ``RuntimeWarning`` each (rnnkit._settings; every variable: docs/SETTINGS.md).
"""

from __future__ import annotations

import importlib
import os
import warnings

from . import _settings
from ._validation import check_positive_int

BACKENDS = _settings.BACKENDS
ENV_VAR = _settings.BACKEND
REQUIRE_ENV_VAR = _settings.REQUIRE_NATIVE

_UNSET = object()
_native_ops = _UNSET  # the rnnkit._native_ops module, None after a failed import, _UNSET before trying
_native_error = ""  # why the native import failed ("ExceptionType: message")
_requested_threads: int | None = None  # last set_num_threads() value, applied when native loads

_backend: str = "python"
_impl = None  # module implementing the canonical functions for _backend


def _load_native():
    """Import ``rnnkit._native`` and its adapter once; return the adapter or None (reason in _native_error)."""
    global _native_ops, _native_error
    if _native_ops is _UNSET:
        try:
            # import the compiled module first so that a missing build gives the clearest reason
            native = importlib.import_module("rnnkit._native")
            module = importlib.import_module("rnnkit._native_ops")
        except Exception as exc:  # ImportError, OSError from dlopen, an adapter raising on a bad build...
            _native_ops = None
            _native_error = f"{type(exc).__name__}: {exc}"
        else:
            _native_ops = module
            if _requested_threads is not None:
                module.set_num_threads(_requested_threads)
            _settings.warn(_settings.native_problems(native), stacklevel=2)
    return _native_ops


def native_required() -> bool:
    """True when ``RNNKIT_REQUIRE_NATIVE`` is set to anything but empty, 0, false, no or off."""
    return _settings.require_native()


def _reference():
    return importlib.import_module("rnnkit.reference")


def native_available() -> bool:
    """True if the compiled module ``rnnkit._native`` imports (imports it on the first call)."""
    return _load_native() is not None


def get_backend() -> str:
    """Return the active backend: ``"native"`` or ``"python"``."""
    return _backend


def set_backend(backend: str) -> None:
    """Select the implementation used by ``rnnkit.ops`` (and so by every layer): ``"native"`` or ``"python"``.

    Raises ValueError for any other value, RuntimeError for ``"native"`` when the compiled module
    cannot be imported. Caches made by one backend stay valid after switching: backward always runs
    the implementation that made the cache.
    """
    global _backend, _impl
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    if backend == "native":
        module = _load_native()
        if module is None:
            raise RuntimeError(
                f"rnnkit: the native backend is unavailable ({_native_error}); "
                "build the extension (pip install .) or use set_backend('python')"
            )
        _impl = module
    else:
        _impl = _reference()
    _backend = backend


def get_impl():
    """Return the module implementing the canonical kernel functions for the active backend."""
    return _impl


def set_num_threads(n: int) -> None:
    """Set the number of threads the native kernels use (a positive int).

    TypeError/ValueError naming ``n`` otherwise. The python backend ignores threads but the value is
    remembered (``get_num_threads`` returns it, and the native module receives it if it loads later).
    """
    global _requested_threads
    n = check_positive_int(n, "n")
    _requested_threads = n
    module = _native_ops if _native_ops is not _UNSET else _load_native()
    if module is not None:
        module.set_num_threads(n)


def release_memory() -> None:
    """Return the native kernels' cached large blocks to the system.

    Freed results and workspaces over 1 MiB are kept for reuse by later calls (up to
    ``RNNKIT_CACHE_MB`` MiB, default 1024; 0 disables the cache), so that a training loop does not
    fault in fresh pages every step. Nothing to do for the python backend or without the native module.
    """
    module = _native_ops if _native_ops is not _UNSET else _load_native()
    if module is not None:
        module.release_memory()


def get_num_threads() -> int:
    """Return the number of threads of the native kernels (default: all cores available to the process).

    Without the native module: the last ``set_num_threads`` value, else the number of usable cores.
    """
    module = _native_ops if _native_ops is not _UNSET else _load_native()
    if module is not None:
        return int(module.get_num_threads())
    if _requested_threads is not None:
        return _requested_threads
    return _available_cores()


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _init_from_environment() -> None:
    """Pick the initial backend from ``RNNKIT_BACKEND`` (called once, when rnnkit is imported)."""
    global _backend, _impl
    requested, _ = _settings.backend()
    _settings.warn(_settings.python_problems(), stacklevel=2)
    if native_required() and _load_native() is None:
        raise ImportError(
            f"rnnkit: {REQUIRE_ENV_VAR}={os.environ[REQUIRE_ENV_VAR]!r} but the native module "
            f"rnnkit._native cannot be imported ({_native_error}); build it (pip install .) or unset "
            f"{REQUIRE_ENV_VAR} to fall back to the NumPy reference"
        )
    if requested != "python":
        module = _load_native()
        if module is not None:
            _backend, _impl = "native", module
            return
        warnings.warn(
            f"rnnkit: native module unavailable ({_native_error}); using the NumPy reference backend",
            RuntimeWarning,
            stacklevel=2,
        )
    _backend, _impl = "python", _reference()


_init_from_environment()
