"""Markers for tests that need the native module or OpenMP (see _native_required.py), the build
that was tested in the report header, and the fixtures that switch backends:

- ``backend``: the test runs once per backend ("python", then "native", the latter skipped without
  rnnkit._native and failing under RNNKIT_REQUIRE_NATIVE=1); the previous backend is restored;
- ``native``: the test needs and runs the native backend; the backend and thread count are restored.
"""

from __future__ import annotations

import pytest

import _native_required as nr

BACKENDS = ["python", nr.native_param("native")]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test with the given backend active; restore the previous one afterwards."""
    import rnnkit

    previous = rnnkit.get_backend()
    rnnkit.set_backend(request.param)
    yield request.param
    rnnkit.set_backend(previous)


@pytest.fixture
def native():
    """Run the test on the native backend; restore the backend and the thread count afterwards."""
    import rnnkit

    nr.require_native()
    previous, threads = rnnkit.get_backend(), rnnkit.get_num_threads()
    rnnkit.set_backend("native")
    yield
    rnnkit.set_backend(previous)
    rnnkit.set_num_threads(threads)


def pytest_configure(config):
    config.addinivalue_line("markers", "native: needs rnnkit._native (skipped without it; fails under "
                                       "RNNKIT_REQUIRE_NATIVE=1)")
    config.addinivalue_line("markers", "openmp: needs rnnkit._native built with OpenMP (skipped without "
                                       "it; fails under RNNKIT_REQUIRE_NATIVE=1)")


def pytest_runtest_setup(item):
    if item.get_closest_marker("openmp") is not None:
        nr.require_openmp()
    elif item.get_closest_marker("native") is not None:
        nr.require_native()


def pytest_report_header(config):
    import rnnkit

    line = f"rnnkit: backend {rnnkit.get_backend()}, RNNKIT_REQUIRE_NATIVE={'1' if nr.REQUIRED else 'unset'}"
    if nr.native_available():
        n = nr._native()
        line += f", isa {n.isa()}, openmp {n.have_openmp()}, threads {n.get_num_threads()}"
    else:
        line += f", {nr.native_reason()}"
    return line
