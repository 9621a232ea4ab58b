"""Markers for tests that need the native module or OpenMP (see _native_required.py), and the build
that was tested in the report header."""

from __future__ import annotations

import _native_required as nr


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
