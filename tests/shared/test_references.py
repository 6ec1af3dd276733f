"""File references in replies: found narrowly, checked through the sandbox on a real tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.references import MAX_REFERENCES, check_references, find_references
from shared.tools import ToolLimits


def found(text: str) -> list[tuple[str, int, int]]:
    return [(r.path, r.start, r.end) for r in find_references(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see `src/app.py:12-30` and README.md:1", [("src/app.py", 12, 30), ("README.md", 1, 1)]),
        ("(src/app.py:2)", [("src/app.py", 2, 2)]),
        ("./src/app.py:2.", [("src/app.py", 2, 2)]),
        ("src/app.py:12:5: error E1", [("src/app.py", 12, 12)]),  # line:column
        ("app.py:2\u20134 and app.py:10 - 12", [("app.py", 2, 4), ("app.py", 10, 12)]),
        ("Makefile:3, Dockerfile:1", [("Makefile", 3, 3), ("Dockerfile", 1, 1)]),
        ("app.py:1-2 then app.py:1-2 again", [("app.py", 1, 2)]),
        ("archive.tar.gz:3", [("archive.tar.gz", 3, 3)]),
    ],
)
def test_citations_are_found(text: str, expected: list[tuple[str, int, int]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "http://localhost:8080/x.py:3",
        "https://github.com/o/r/blob/main/src/app.py:12",
        "meet at 12:30, or 10:30-11:45",
        "version 1.2.3:4 and v1.2.3:4",
        "python3.11:5",
        "example.com:443",
        "nginx:1.25 and ghcr.io/owner/image:12",
        "/etc/passwd.txt:3 and ~/notes.md:2",
        "C:\\code\\a.py:3",
        "user@host.py:3",
        "file.txt:3abc",
        "x.py:0 and a.py:5-3",
        "localhost:8000",
    ],
)
def test_urls_times_versions_and_hosts_are_not_references(text: str) -> None:
    assert found(text) == []


def test_at_most_fifty() -> None:
    text = " ".join(f"a.py:{i}" for i in range(1, 200))
    assert len(find_references(text)) == MAX_REFERENCES


@pytest.fixture
def tree(project_dir: Path, tmp_path: Path) -> Path:
    (project_dir / "src" / "big.py").write_text("".join(f"line {i}\n" for i in range(1, 101)))
    (project_dir / ".env").write_text("SECRET=1\n")
    (project_dir / "image.bin").write_bytes(b"\0\1\2\n" * 10)
    outside = tmp_path / "outside.py"
    outside.write_text("a\nb\nc\n")
    os.symlink(outside, project_dir / "escape.py")
    os.symlink("src/app.py", project_dir / "alias.py")
    return project_dir


def test_references_are_checked_against_the_project(tree: Path) -> None:
    reply = (
        "The entry point is `src/app.py:1-2` (`src/app.py:2`); big.py goes on: "
        "src/big.py:99-100, not src/big.py:100-101. See also README.md:3, missing.py:1, "
        ".env:1, escape.py:1, image.bin:1, alias.py:2 and src/:1; served on "
        "http://localhost:8000/src/app.py:1 since 12:30."
    )
    refs = check_references(tree, reply)
    assert refs == [
        {"path": "src/app.py", "start": 1, "end": 2, "verified": True},
        {"path": "src/app.py", "start": 2, "end": 2, "verified": True},
        {"path": "src/big.py", "start": 99, "end": 100, "verified": True},
        {"path": "src/big.py", "start": 100, "end": 101, "verified": False},  # past the end
        {"path": "README.md", "start": 3, "end": 3, "verified": True},
        {"path": "missing.py", "start": 1, "end": 1, "verified": False},
        {"path": ".env", "start": 1, "end": 1, "verified": False},  # protected
        {"path": "escape.py", "start": 1, "end": 1, "verified": False},  # leads outside
        {"path": "image.bin", "start": 1, "end": 1, "verified": False},  # binary
        # A link inside the project is followed by the sandbox; the project's own spelling.
        {"path": "src/app.py", "start": 2, "end": 2, "verified": True},
    ]


def test_checking_respects_the_configured_limits(tree: Path) -> None:
    limits = ToolLimits(deny_globs=("*.py",))
    assert check_references(tree, "src/app.py:1") == [
        {"path": "src/app.py", "start": 1, "end": 1, "verified": True}
    ]
    assert check_references(tree, "src/app.py:1", limits)[0]["verified"] is False
