"""The ``RNNKIT_*`` environment variables, and one warning per invalid value (docs/SETTINGS.md).

Two homes, one rule each: the C++ core parses the variables it reads (``RNNKIT_ISA``,
``RNNKIT_BATCH_LANES``, ``RNNKIT_RECURRENT_SPLIT``, ``RNNKIT_PARALLEL_MIN_FLOPS``,
``RNNKIT_CACHE_MB``) once per process in cpp/src/settings.cc, so that the core behaves the same
without Python; this module parses the Python-side ones (``RNNKIT_BACKEND``,
``RNNKIT_REQUIRE_NATIVE``) the same way: words are case-insensitive, surrounding whitespace is
ignored, and an unset or empty variable means its default.

A value that is not accepted is a :class:`Problem` (variable, value, accepted values, what applies
instead); rnnkit emits exactly one ``RuntimeWarning`` per problem: the Python-side ones when rnnkit
is imported, the C++ ones (``rnnkit._native.settings_problems()``) when rnnkit loads the native
module (at import, unless ``RNNKIT_BACKEND=python`` defers it to the first use).
"""

from __future__ import annotations

import os
import warnings
from typing import Mapping, NamedTuple

BACKEND = "RNNKIT_BACKEND"
REQUIRE_NATIVE = "RNNKIT_REQUIRE_NATIVE"
BACKENDS = ("native", "python")
FALSE_WORDS = ("", "0", "false", "no", "off")  # RNNKIT_REQUIRE_NATIVE: anything else requires


class Problem(NamedTuple):
    """An environment variable whose value was not accepted (the default applies instead)."""

    name: str
    value: str
    accepted: str
    used: str


def message(problem: Problem) -> str:
    """The warning text: names the variable, the value, the accepted values and what applies."""
    return (f"rnnkit: ignoring {problem.name}={problem.value!r} (accepted: {problem.accepted}); "
            f"using {problem.used}")


def _word(environ: Mapping[str, str] | None, name: str) -> tuple[str, str]:
    """(raw value or "", normalised value: stripped, lower-case)."""
    raw = (os.environ if environ is None else environ).get(name, "")
    return raw, raw.strip().lower()


def backend(environ: Mapping[str, str] | None = None) -> tuple[str | None, Problem | None]:
    """``RNNKIT_BACKEND``: ("native" | "python" | None for the default, the problem or None)."""
    raw, word = _word(environ, BACKEND)
    if not word:
        return None, None
    if word in BACKENDS:
        return word, None
    return None, Problem(BACKEND, raw, ", ".join(BACKENDS), "the default (native when it imports)")


def require_native(environ: Mapping[str, str] | None = None) -> bool:
    """``RNNKIT_REQUIRE_NATIVE``: True for any value but empty, 0, false, no or off (no invalid
    values: a switch that guards CI errs on the side of requiring)."""
    return _word(environ, REQUIRE_NATIVE)[1] not in FALSE_WORDS


def python_problems(environ: Mapping[str, str] | None = None) -> list[Problem]:
    """The problems of the Python-side variables."""
    problem = backend(environ)[1]
    return [problem] if problem is not None else []


def native_problems(native) -> list[Problem]:
    """The problems the C++ core recorded (``native``: the ``rnnkit._native`` module)."""
    return [Problem(*p) for p in native.settings_problems()]


def warn(problems: list[Problem], stacklevel: int = 2) -> None:
    """One ``RuntimeWarning`` per problem; ``stacklevel`` counts from the caller of this function."""
    for problem in problems:
        warnings.warn(message(problem), RuntimeWarning, stacklevel=stacklevel + 1)


def effective(native=None, environ: Mapping[str, str] | None = None) -> dict:
    """Every variable's effective value: the Python-side ones (``RNNKIT_BACKEND`` as requested,
    None for the default), plus the C++ core's when ``native`` (``rnnkit._native``) is given."""
    out = {BACKEND: backend(environ)[0], REQUIRE_NATIVE: require_native(environ)}
    if native is not None:
        out.update(native.settings())
    return out
