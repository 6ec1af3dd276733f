"""The file viewer endpoint: lines of a project file, refused exactly where the tools refuse."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from api.file_view import read_lines
from shared.config import get_settings
from shared.errors import Forbidden, InvalidInput, NotFound
from shared.models import Project
from tests.support.data import Account, make_account, make_project
from tests.support.processes import Stack

FILES = "/api/assistant/files"


@pytest.fixture
def project(project_dir: Path, tmp_path: Path) -> tuple[str, Path]:
    (project_dir / "src" / "long.py").write_text("".join(f"line {n}\n" for n in range(1, 101)))
    (project_dir / ".env").write_text("SECRET=hunter2\n")
    (project_dir / "blob.bin").write_bytes(b"\x00\x01binary\x00")
    (project_dir / "empty.txt").write_text("")
    (tmp_path / "outside.txt").write_text("outside the project\n")
    os.symlink(tmp_path / "outside.txt", project_dir / "escape.txt")
    return make_project(project_dir), project_dir


@pytest.fixture
def acct() -> Account:
    return make_account()


def get(stack: Stack, acct: Account | None, project: str, **params: str | int) -> httpx.Response:
    headers = acct.headers if acct else {}
    return httpx.get(f"{stack.api.base_url}{FILES}/{project}", params=params, headers=headers)


def test_reads_a_range_with_numbers_and_total(
    stack: Stack, acct: Account, project: tuple[str, Path]
) -> None:
    res = get(stack, acct, project[0], path="src/long.py", start=12, end=14)
    assert res.status_code == 200, res.text
    assert res.json() == {
        "path": "src/long.py",
        "start": 12,
        "end": 14,
        "total": 100,
        "lines": [{"n": n, "text": f"line {n}"} for n in (12, 13, 14)],
    }


def test_whole_small_file_and_range_past_the_end(
    stack: Stack, acct: Account, project: tuple[str, Path]
) -> None:
    whole = get(stack, acct, project[0], path="src/app.py").json()
    assert whole["lines"] == [{"n": 1, "text": "def main():"}, {"n": 2, "text": "    return 42"}]
    assert (whole["start"], whole["end"], whole["total"]) == (1, 2, 2)
    # A viewer asks for context beyond the end: it gets what exists.
    tail = get(stack, acct, project[0], path="src/long.py", start=95, end=300).json()
    assert [line["n"] for line in tail["lines"]] == [95, 96, 97, 98, 99, 100]
    empty = get(stack, acct, project[0], path="empty.txt").json()
    assert (empty["lines"], empty["total"]) == ([], 0)


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        (".env", 403, "not allowed"),
        ("../outside.txt", 403, "escapes"),
        ("escape.txt", 403, "outside the project"),
        ("/etc/passwd", 400, "relative"),
        ("src/missing.py", 404, "does not exist"),
        ("blob.bin", 400, "binary"),
        ("src", 400, "directory"),
    ],
)
def test_refuses_what_the_tools_refuse(
    stack: Stack, acct: Account, project: tuple[str, Path], path: str, status: int, says: str
) -> None:
    res = get(stack, acct, project[0], path=path)
    assert res.status_code == status, res.text
    detail = res.json()["detail"]
    assert says in detail
    assert "hunter2" not in res.text and "outside the project\n" not in res.text
    assert str(project[1]) not in detail  # no host paths in errors


def test_bad_requests_are_clear(stack: Stack, acct: Account, project: tuple[str, Path]) -> None:
    name = project[0]
    assert get(stack, acct, name, path="src/app.py", start=5, end=2).status_code == 400
    assert get(stack, acct, name, path="src/app.py", start=0).status_code == 422
    assert get(stack, acct, name).status_code == 422  # no path
    assert get(stack, acct, name, path="src/app.py", start=50).status_code == 400  # past the end
    assert get(stack, acct, "no-such-project", path="README.md").status_code == 404
    assert get(stack, acct, "bad name!", path="README.md").status_code == 400


def test_needs_credentials(stack: Stack, project: tuple[str, Path]) -> None:
    res = get(stack, None, project[0], path="src/app.py")
    assert res.status_code == 401
    assert "def main" not in res.text


def test_read_lines_maps_tool_refusals_to_domain_errors(project: tuple[str, Path]) -> None:
    root, settings = Project(name=project[0], path=str(project[1])), get_settings()
    with pytest.raises(Forbidden):
        read_lines(root, ".env", 1, None, settings)
    with pytest.raises(NotFound):
        read_lines(root, "nope.txt", 1, None, settings)
    with pytest.raises(InvalidInput):
        read_lines(root, "blob.bin", 1, None, settings)
    got = read_lines(root, "src/long.py", 99, None, settings)
    assert got.lines == [(99, "line 99"), (100, "line 100")]
    assert (got.end, got.total) == (100, 100)
