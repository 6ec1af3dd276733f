"""File references in a reply (`src/app.py:12`, `src/app.py:12-30`), found and checked.

The system prompt asks Claude to cite lines as `path:line` or `path:start-end`. After a reply,
`check_references` finds those citations and resolves each one through the tools' sandbox:
the file must exist inside the project (and not be a protected file) and the lines must exist.
Clients get them with the reply (`references: [{path, start, end, verified}]`) to link the
verified ones and flag the rest.

Parsing is deliberately narrow, so that URLs (`http://host:8080/x`), times (`12:30`), version
numbers (`1.2.3:4`, `python3.11:5`), host names (`example.com:443`) and container images
(`nginx:1.25`) are not taken for files: a path cannot start inside a word, a URL or an
absolute path, and its last component needs a file extension that starts with a letter (or is
a well-known extensionless name such as `Makefile`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.tools import DEFAULT_LIMITS, ToolError, ToolLimits, read_lines

MAX_REFERENCES = 50  # checked per reply; later ones are ignored
MAX_SPAN = 5000  # lines in one reference
_KNOWN_NAMES = frozenset(
    "makefile dockerfile containerfile procfile gemfile rakefile jenkinsfile vagrantfile "
    "brewfile justfile license readme changelog codeowners".split()
)
# Hosts that look like "name.ext": a reference to them is a URL without its scheme.
_TLDS = frozenset("com org net io dev ai app co edu gov info biz me us uk de fr eu".split())

_REF = re.compile(
    r"(?<![\w/.:@~%+\-\\])"  # not inside a word, a URL, an absolute path or another reference
    r"((?:[\w.\-]+/)*[\w.\-]+)"  # the path: '/'-separated components
    r":(\d{1,7})(?:\s?[-\u2013]\s?(\d{1,7}))?"  # :line or :start-end (hyphen or en dash)
    r"(?![\w\-]|\.\d|:\d+\.)"  # not "12abc", "1.2.3:4.5", nor a time "12:30:45.6"
)


@dataclass(frozen=True)
class Reference:
    path: str
    start: int
    end: int
    verified: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "start": self.start, "end": self.end, "verified": self.verified}


def _looks_like_a_file(path: str) -> bool:
    parts = path.split("/")
    name = parts[-1]
    if not name or name in (".", "..") or any(p in ("", "..") for p in parts):
        return False
    if name.casefold() in _KNOWN_NAMES:
        return True
    stem, dot, ext = name.rpartition(".")
    if not dot or not ext or not ext[0].isalpha() or (stem and not stem.strip(".")):
        return False  # "x.1", "name", "..py"; a dotfile (".gitignore") is a name
    # "example.com:443" is a host and port; "docs/example.com:3" would be a file.
    return not (len(parts) == 1 and ext.casefold() in _TLDS)


def find_references(text: str) -> list[Reference]:
    """The `path:line` / `path:start-end` citations in `text`, in order, without duplicates."""
    seen: set[tuple[str, int, int]] = set()
    found: list[Reference] = []
    for m in _REF.finditer(text):
        path = m.group(1)
        while path.startswith("./"):
            path = path[2:]
        if not _looks_like_a_file(path):
            continue
        start = int(m.group(2))
        end = int(m.group(3)) if m.group(3) else start
        if start < 1 or end < start or end - start >= MAX_SPAN:
            continue
        key = (path, start, end)
        if key not in seen:
            seen.add(key)
            found.append(Reference(path, start, end))
        if len(found) >= MAX_REFERENCES:
            break
    return found


def verify(root: Path, ref: Reference, limits: ToolLimits = DEFAULT_LIMITS) -> Reference:
    """`ref`, verified when its file is readable in the project and its lines exist (the path
    becomes the project's own spelling of it)."""
    try:
        # Only the last line is read back: its existence proves the whole range exists.
        got = read_lines(root, ref.path, offset=ref.end, limit=1, limits=limits)
    except ToolError:
        return ref
    if not got.lines or got.lines[0][0] != ref.end:
        return ref
    return Reference(got.path, ref.start, ref.end, verified=True)


def check_references(
    root: Path, text: str, limits: ToolLimits = DEFAULT_LIMITS
) -> list[dict[str, Any]]:
    """Every reference cited in `text`, checked against project `root` (blocking file I/O)."""
    return [verify(root, ref, limits).as_dict() for ref in find_references(text)]
