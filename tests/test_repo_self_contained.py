"""A fresh clone of rnnkit can be understood on its own (docs/SPEC.md §1).

- No text file of the repository refers to notes kept outside it: the project's normative
  specification is docs/SPEC.md and its performance notes docs/PERFORMANCE.md.
- Every Markdown file a text file names (a word ending in ``.md``) exists in the repository.
- Every section citation "docs/SPEC.md §N" / "docs/PERFORMANCE.md §N" (also chained: "§4–§6",
  "§3 and §14.4"), and every bare "§N" inside those two files, names a section that exists:
  ``## N. Title`` for §N, ``### N.M Title`` for §N.M.

The files are those git tracks plus new, not ignored ones (``git ls-files --cached --others
--exclude-standard``), or, without git (e.g. an unpacked sdist), the project's folders walked.
The forbidden strings are assembled from pieces so that this file does not contain them itself.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = "docs/SPEC.md"
PERFORMANCE = "docs/PERFORMANCE.md"

_UP, _SHARED = "..", "shared"
FORBIDDEN = (
    _UP + "/" + _SHARED,                          # the team's notes next to the checkout
    _SHARED + "/" + "SEMANTICS",
    _SHARED + "/" + "PERFORMANCE",
)

# folders and files walked when git is unavailable
_WALK_DIRS = ("src", "cpp", "tests", "docs", "benchmarks", ".ci")
_WALK_FILES = ("README.md", "pyproject.toml", "CMakeLists.txt")
_SKIP_DIRS = {"build", "__pycache__", ".git", ".pytest_cache", ".benchmarks"}
_SKIP_SUFFIXES = (".so", ".pyd", ".o", ".a", ".pyc", ".npz", ".png", ".jpg", ".gz", ".zip", ".whl")


def _git_files() -> list[str] | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True, check=True, timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = [f for f in out.decode("utf-8", "surrogateescape").split("\0") if f]
    return files or None


def _walked_files() -> list[str]:
    files = [f for f in _WALK_FILES if (ROOT / f).is_file()]
    for top in _WALK_DIRS:
        for dirpath, dirnames, filenames in os.walk(ROOT / top):
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
            files += [str((Path(dirpath) / name).relative_to(ROOT)) for name in filenames]
    return files


def _text_files() -> dict[str, str]:
    """{path relative to the repository: text} for every text file of the repository."""
    texts = {}
    for rel in _git_files() or _walked_files():
        path = ROOT / rel
        if rel.endswith(_SKIP_SUFFIXES) or not path.is_file():  # deleted but still tracked
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary
            continue
        texts[rel.replace(os.sep, "/")] = data.decode("utf-8", "replace")
    return texts


TEXTS = _text_files()


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def test_the_file_list_covers_the_project():
    for expected in ("README.md", SPEC, PERFORMANCE, "docs/ARCHITECTURE.md", "src/rnnkit/ops/recurrent.py",
                     "tests/test_repo_self_contained.py"):
        assert expected in TEXTS, f"{expected} not among the files checked"


def test_no_reference_to_notes_outside_the_repository():
    hits = []
    for rel, text in TEXTS.items():
        for needle in FORBIDDEN:
            for m in re.finditer(re.escape(needle), text):
                hits.append(f"{rel}:{_line(text, m.start())}: {needle}")
    assert not hits, ("files refer to notes outside the repository (cite docs/SPEC.md or "
                      "docs/PERFORMANCE.md sections instead):\n" + "\n".join(hits))


_MD_NAME = re.compile(r"[\w./-]*[\w-]\.md\b")


def test_every_markdown_file_named_exists():
    basenames = {Path(rel).name for rel in TEXTS}
    missing = []
    for rel, text in TEXTS.items():
        for m in _MD_NAME.finditer(text):
            name = m.group(0)
            if name.startswith(".."):
                ok = False  # a path that leaves the folder: name files from the repository's root
            else:
                name = name.lstrip("./")
                ok = ((ROOT / name).is_file() or (ROOT / rel).parent.joinpath(name).is_file()
                      or Path(name).name in basenames)
            if not ok:
                missing.append(f"{rel}:{_line(text, m.start())}: {m.group(0)}")
    assert not missing, "files name Markdown files that the repository does not have:\n" + "\n".join(missing)


def _sections(doc: str) -> set[str]:
    """'N' for every ``## N. Title`` and 'N.M' for every ``### N.M Title`` of ``doc``."""
    text = TEXTS[doc]
    found = set(re.findall(r"^## (\d+)\. \S", text, re.M))
    found |= set(re.findall(r"^### (\d+\.\d+)\.? \S", text, re.M))
    return found


# "docs/SPEC.md §4", "docs/SPEC.md §4–§6", "docs/SPEC.md §3 and §14.4", "docs/SPEC.md, §2"
_CHAIN = r"((?:[\s,]*(?:and|or|to|–|-)?\s*§\s*\d+(?:\.\d+)*)+)"
_NUMBER = re.compile(r"§\s*(\d+(?:\.\d+)*)")


def _citations(doc: str):
    """(file, line, section) for every citation of ``doc``'s sections anywhere, and for every bare
    §N inside ``doc`` itself (with citations of the other document removed first)."""
    other = PERFORMANCE if doc == SPEC else SPEC
    cited = re.compile(re.escape(doc) + _CHAIN)
    for rel, text in TEXTS.items():
        for m in cited.finditer(text):
            for n in _NUMBER.finditer(m.group(1)):
                yield rel, _line(text, m.start()), n.group(1)
    own = TEXTS[doc]
    # blank out citations of the other document and of this one (counted above), keeping line numbers
    for pattern in (re.compile(re.escape(other) + _CHAIN), cited):
        own = pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), own)
    for n in _NUMBER.finditer(own):
        yield doc, _line(own, n.start()), n.group(1)


@pytest.mark.parametrize("doc", [SPEC, PERFORMANCE])
def test_sections_are_numbered_one_to_n(doc):
    top = [int(n) for n in re.findall(r"^## (\d+)\. \S", TEXTS[doc], re.M)]
    assert top == list(range(1, len(top) + 1)) and top, f"{doc}: sections numbered {top}, not 1..N"


@pytest.mark.parametrize("doc", [SPEC, PERFORMANCE])
def test_every_section_cited_exists(doc):
    sections = _sections(doc)
    bad = [f"{rel}:{line}: {doc} §{n}" for rel, line, n in _citations(doc) if n not in sections]
    assert not bad, f"citations of sections {doc} does not have ({sorted(sections, key=_key)}):\n" + "\n".join(bad)


def _key(section: str):
    return tuple(int(p) for p in section.split("."))


def test_spec_is_cited():
    """The specification is used: tests and code cite its sections."""
    citing = {rel for rel, _, _ in _citations(SPEC) if rel != SPEC}
    assert any(r.startswith("tests/") for r in citing) and any(r.startswith("src/") for r in citing), citing
