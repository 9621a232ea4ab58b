"""Never crash: thousands of malformed calls into every entry point of ``rnnkit._native``
(native_sweep.py makes them) all raise Python exceptions.

The sweep runs in a child process, so that a crash (abort, segfault, OpenMP giving up) is a failed
test naming the last call attempted instead of the end of the pytest run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from _native_required import import_native

_native = import_native()  # skipped without it (a failure under RNNKIT_REQUIRE_NATIVE=1)

SWEEP = Path(__file__).with_name("native_sweep.py")
MIN_CALLS = 50  # malformed calls per entry point, at least
ALLOWED = {"TypeError", "ValueError", "MemoryError"}


def _limit_memory():  # a result that slipped through the checks must not eat the shared machine
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (16 << 30, 16 << 30))


def run_sweep(args: list[str], timeout: float = 300) -> dict:
    """Run a sweep child; return its SUMMARY, or fail naming the last call it attempted."""
    env = dict(os.environ)
    asan = "asan" in env.get("LD_PRELOAD", "")  # ASan reserves terabytes of address space
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          preexec_fn=None if asan else _limit_memory)
    lines = proc.stdout.splitlines()
    summary = [ln for ln in lines if ln.startswith("SUMMARY ")]
    if proc.returncode != 0 or not summary:
        calls = [ln for ln in lines if ln.startswith("CALL ")]
        how = (f"killed by {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
               else f"exited with {proc.returncode}")
        pytest.fail(f"the sweep process {how} after {len(calls)} calls; last call attempted: "
                    f"{calls[-1][5:] if calls else '(none)'}\nstderr:\n{proc.stderr[-3000:]}", pytrace=False)
    return json.loads(summary[-1][len("SUMMARY "):])


def test_the_runner_names_the_call_that_crashed():
    code = "import os\nprint('CALL gemm a: misaligned', flush=True)\nos.abort()\n"
    with pytest.raises(pytest.fail.Exception, match=r"killed by SIGABRT after 1 calls; last call attempted: "
                                                     r"gemm a: misaligned"):
        run_sweep(["-c", code], timeout=60)


@pytest.fixture(scope="module")
def sweep():
    return run_sweep([str(SWEEP)])


def test_every_export_is_swept(sweep):
    exported = sorted(n for n in dir(_native) if not n.startswith("_"))
    assert sweep["exported"] == exported
    assert sorted(sweep["entries"]) == exported, "a new export of rnnkit._native needs malformed calls in native_sweep.py"


def test_every_malformed_call_raises_a_python_exception(sweep):
    problems = []
    for entry, info in sweep["entries"].items():
        if info["calls"] < MIN_CALLS:
            problems.append(f"{entry}: only {info['calls']} malformed calls")
        if info["returned"]:
            problems.append(f"{entry}: returned instead of raising for {info['returned']}")
        if set(info["raised"]) - ALLOWED:
            problems.append(f"{entry}: raised {sorted(set(info['raised']) - ALLOWED)}")
        assert sum(info["raised"].values()) + len(info["returned"]) == info["calls"]
    assert not problems, "\n".join(problems)
    assert sum(info["calls"] for info in sweep["entries"].values()) >= MIN_CALLS * len(sweep["entries"])


def test_nan_data_and_extreme_shapes_do_not_crash(sweep):
    """Reaching the summary is the test; extreme shapes raise MemoryError/ValueError or return."""
    outcomes = sweep["nan_data"]
    assert len(outcomes) >= 40
    assert set(outcomes.values()) <= {"returned"} | ALLOWED, outcomes
    assert all(v == "returned" for k, v in outcomes.items() if " all " in k or k.endswith(" nan")), outcomes
