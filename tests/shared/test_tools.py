from __future__ import annotations

import os
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from shared.tools import (
    DEFAULT_LIMITS,
    DENY_GLOBS,
    GLOB,
    GREP,
    READ,
    TOOL_SCHEMAS,
    ToolError,
    ToolLimits,
    limits_from_settings,
    read_lines,
    run_tool,
)

# The limits a worker builds from the default settings: what a deployment really runs.
LIMITS = limits_from_settings(Settings())

SECRET_OUT = "S3CRET-OUTSIDE-7f3a9"
SECRET_ENV = "S3CRET-DOTENV-41c2e"
SECRET_GIT = "S3CRET-GITCONFIG-9d0b1"
SECRET_KEY = "S3CRET-SSHKEY-5e6f7"
SECRETS = (SECRET_OUT, SECRET_ENV, SECRET_GIT, SECRET_KEY)
CAFE_NFC = unicodedata.normalize("NFC", "café.txt")
CAFE_NFD = unicodedata.normalize("NFD", "café.txt")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text(f"{SECRET_OUT}\n")
    return out


@pytest.fixture
def proj(tmp_path: Path, outside: Path) -> Path:
    root = tmp_path / "proj"
    (root / "src" / "nested").mkdir(parents=True)
    (root / "sub").mkdir()
    (root / "README.md").write_text("# Title\nHello World\nthird line\n")
    (root / "src" / "app.py").write_text("import os\n\ndef hello():\n    return 'Hello'\n")
    (root / "src" / "util.py").write_text("HELLO = 1\n")
    (root / "src" / "nested" / "deep.txt").write_text("deep hello\n")
    (root / "sub" / "file.txt").write_text("sub file\n")
    (root / "sub" / ".env").write_text(f"TOKEN={SECRET_ENV}\n")
    (root / "data.bin").write_bytes(b"hello\x00\x01\x02binary")
    (root / ".env").write_text(f"TOKEN={SECRET_ENV}\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text(f"[credential]\n\ttoken = {SECRET_GIT}\n")
    (root / ".ssh").mkdir()
    (root / ".ssh" / "id_rsa").write_text(f"{SECRET_KEY}\n")
    (root / "node_modules" / "pkg").mkdir(parents=True)
    (root / "node_modules" / "pkg" / "index.js").write_text("hello from node_modules\n")
    (root / CAFE_NFC).write_text("accented hello\n")
    (root / "link_out").symlink_to(outside, target_is_directory=True)
    (root / "link_to_file").symlink_to(outside / "secret.txt")
    (root / "link_env").symlink_to(root / ".env")
    (root / "link_in").symlink_to(root / "src" / "app.py")
    return root


ALL = {"pattern": "**/*"}


def run(root: Path, name: str, tool_input: object, limits: ToolLimits = LIMITS) -> str:
    out = run_tool(root, name, tool_input, limits)
    assert isinstance(out, str)
    return out


def assert_clean(text: str, tmp_path: Path) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert str(tmp_path) not in text


def refusal(root: Path, name: str, tool_input: object, limits: ToolLimits = LIMITS) -> str:
    with pytest.raises(ToolError) as info:
        run_tool(root, name, tool_input, limits)
    return str(info.value)


# --- confinement -------------------------------------------------------------------------

TRAVERSAL = [
    "../x",
    "../../etc/passwd",
    "/etc/passwd",
    "//etc/passwd",
    "a/../../x",
    "sub/../../secret",
    "src/../../outside/secret.txt",
    "../outside/secret.txt",
    "link_out",
    "link_out/secret.txt",
    "link_out/../outside/secret.txt",
    "link_to_file",
    "link_env",
    "\x00",
    "foo\x00bar",
    "README.md\x00",
    "src\n/app.py",
    "%2e%2e/x",
    "%2e%2e/outside/secret.txt",
    "..\\x",
    "..\\outside\\secret.txt",
    "C:\\Windows\\win.ini",
    "\u202etxt.terces/edistuo/..",
    "README\u200b.md",
    "\ufeff../x",
    "\u2028../x",
    unicodedata.normalize("NFD", "é/../../x"),
    unicodedata.normalize("NFC", "é/../../x"),
    "\uff0e\uff0e/outside/secret.txt",  # fullwidth dots: just a missing name
    "~/.ssh/id_rsa",
    "~",
    ".env",
    "./.env",
    ".ENV",
    "sub/.env",
    "src/../.env",
    ".git/config",
    ".git",
    ".ssh/id_rsa",
    "",
    "a" * 5000,
]


def attack(tool: str, path: str) -> dict[str, Any]:
    """Valid input for `tool` naming `path`: a refusal must come from the sandbox."""
    if tool == READ:
        return {"file_path": path}
    return {"pattern": "**/*" if tool == GLOB else "S3CRET|.", "path": path}


def sandbox_refusal(root: Path, tool: str, path: str) -> str:
    message = refusal(root, tool, attack(tool, path))
    assert not message.startswith(f"{tool}:"), message  # not an input validation error
    return message


@pytest.mark.parametrize("bad", TRAVERSAL)
@pytest.mark.parametrize("tool", [READ, GLOB, GREP])
def test_traversal_corpus_is_refused(proj: Path, tmp_path: Path, tool: str, bad: str) -> None:
    assert_clean(sandbox_refusal(proj, tool, bad), tmp_path)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("../x", "escapes the project root"),
        ("a/../../x", "escapes the project root"),
        ("/etc/passwd", "must be relative"),
        ("~/.ssh/id_rsa", "must be relative"),
        ("..\\x", "backslashes are not allowed"),
        ("foo\x00bar", "control or invisible"),
        ("README\u200b.md", "control or invisible"),
        ("link_out/secret.txt", "resolves outside the project"),
        ("link_to_file", "resolves outside the project"),
        (".env", "not allowed"),
        ("link_env", "not allowed"),
        ("%2e%2e/x", "does not exist"),
    ],
)
def test_refusal_reasons(proj: Path, bad: str, reason: str) -> None:
    assert reason in refusal(proj, READ, {"file_path": bad})


def test_names_with_invisible_characters_are_not_listed(proj: Path) -> None:
    (proj / "evil\u202etxt.exe").write_text("hello\n")
    (proj / "back\\slash.txt").write_text("hello\n")
    listing = run(proj, GLOB, ALL)
    assert "\u202e" not in listing
    assert "slash" not in listing
    assert "evil" not in run(proj, GREP, {"output_mode": "content", "pattern": "hello"})


@pytest.mark.parametrize("tool", [READ, GLOB, GREP])
def test_absolute_path_into_project_is_refused(proj: Path, tmp_path: Path, tool: str) -> None:
    target = proj / ("README.md" if tool == READ else "src")
    assert_clean(sandbox_refusal(proj, tool, str(target)), tmp_path)


def test_symlinked_root_still_confines(proj: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(proj, target_is_directory=True)
    assert "Hello World" in run(alias, READ, {"file_path": "README.md"})
    assert_clean(refusal(alias, READ, {"file_path": "link_to_file"}), tmp_path)


def test_walks_never_expose_secrets_or_outside_links(proj: Path, tmp_path: Path) -> None:
    listing = run(proj, GLOB, ALL).splitlines()
    assert_clean("\n".join(listing), tmp_path)
    for hidden in ("link_out", "link_out/", "link_to_file", "link_env", ".env", ".git/", ".ssh/"):
        assert hidden not in listing
    assert not any(p.startswith((".git", ".ssh", "link_out/", "node_modules/p")) for p in listing)
    assert "node_modules/" in listing  # noise dirs are shown but never descended into
    assert "sub/.env" not in listing
    found = run(proj, GREP, {"output_mode": "content", "pattern": "S3CRET", "-i": True})
    assert found.startswith("No matches")
    assert_clean(found, tmp_path)


def test_deny_list_is_case_insensitive_and_checks_link_names(proj: Path, tmp_path: Path) -> None:
    (proj / "Secrets.YAML").write_text(f"{SECRET_KEY}\n")
    (proj / "deploy.KEY").symlink_to(proj / "README.md")
    for path in ("Secrets.YAML", "deploy.KEY"):
        assert "not allowed" in refusal(proj, READ, {"file_path": path})
    listing = run(proj, GLOB, ALL)
    assert "Secrets.YAML" not in listing
    assert "deploy.KEY" not in listing
    assert_clean(
        run(proj, GREP, {"output_mode": "content", "pattern": "S3CRET", "glob": "*.YAML"}), tmp_path
    )


def test_custom_deny_globs(proj: Path) -> None:
    limits = replace(LIMITS, deny_globs=("*.md", "private/**"))
    (proj / "private").mkdir()
    (proj / "private" / "notes.txt").write_text("x\n")
    assert "not allowed" in refusal(proj, READ, {"file_path": "README.md"}, limits)
    assert "not allowed" in refusal(proj, READ, {"file_path": "private/notes.txt"}, limits)
    listing = run(proj, GLOB, ALL, limits).splitlines()
    assert "README.md" not in listing
    assert "private/notes.txt" not in listing
    assert "Hello World" in run(proj, READ, {"file_path": "README.md"})


def test_list_pattern_cannot_escape(proj: Path) -> None:
    for pattern in ("../*", "**/../../*", "/etc/*", "~/*", "a\x00", "..\\*"):
        refusal(proj, GLOB, {"pattern": pattern})


def test_search_glob_cannot_escape(proj: Path) -> None:
    for glob in ("../*", "/etc/*", "x\x1b"):
        refusal(proj, GREP, {"output_mode": "content", "pattern": "x", "glob": glob})


def test_fifo_is_refused_without_hanging(proj: Path) -> None:
    os.mkfifo(proj / "pipe")
    assert "not a regular file" in refusal(proj, READ, {"file_path": "pipe"})
    assert "pipe" in run(proj, GLOB, ALL).splitlines()
    assert "README.md:2:" in run(proj, GREP, {"output_mode": "content", "pattern": "World"})


def test_inside_symlink_and_nfd_spelling_work(proj: Path) -> None:
    assert "def hello():" in run(proj, READ, {"file_path": "link_in"})
    assert "link_in" in run(proj, GLOB, ALL).splitlines()
    assert "accented hello" in run(proj, READ, {"file_path": CAFE_NFD})


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_bad_root(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "nope"
    if kind == "file":
        root.write_text("x")
    message = refusal(root, GLOB, ALL)
    assert "not available" in message
    assert str(tmp_path) not in message


# --- Read --------------------------------------------------------------------------------------


def test_read_whole_file_has_header_and_line_numbers(proj: Path) -> None:
    out = run(proj, READ, {"file_path": "README.md"})
    assert out.splitlines() == [
        "File: README.md (lines 1-3 of 3)",
        "1| # Title",
        "2| Hello World",
        "3| third line",
    ]


def test_read_range_and_padding(proj: Path) -> None:
    (proj / "many.txt").write_text("".join(f"line {i}\n" for i in range(1, 21)))
    out = run(proj, READ, {"file_path": "many.txt", "offset": 9, "limit": 3})
    assert out.splitlines() == [
        "File: many.txt (lines 9-11 of 20)",
        " 9| line 9",
        "10| line 10",
        "11| line 11",
    ]
    tail = run(proj, READ, {"file_path": "many.txt", "offset": 19, "limit": 482})
    assert tail.splitlines()[1:] == ["19| line 19", "20| line 20"]
    assert "more lines" not in tail


def test_read_offset_past_end(proj: Path) -> None:
    assert "past the end" in refusal(proj, READ, {"file_path": "README.md", "offset": 4})


def test_read_limit_is_a_line_count(proj: Path) -> None:
    out = run(proj, READ, {"file_path": "README.md", "offset": 2, "limit": 1})
    assert out.splitlines() == ["File: README.md (lines 2-2 of 3)", "2| Hello World"]
    assert "more lines" not in out  # exactly what was asked for


def test_read_caps_lines_with_continuation_note(proj: Path) -> None:
    (proj / "many.txt").write_text("".join(f"line {i}\n" for i in range(1, 51)))
    limits = replace(LIMITS, max_read_lines=10)
    out = run(proj, READ, {"file_path": "many.txt"}, limits).splitlines()
    assert out[0] == "File: many.txt (lines 1-10 of 50)"
    assert out[-2] == "10| line 10"
    assert "offset=11" in out[-1]
    nxt = run(proj, READ, {"file_path": "many.txt", "offset": 11}, limits).splitlines()
    assert nxt[1] == "11| line 11"
    assert "offset=21" in nxt[-1]


def test_read_binary_and_directory_refused(proj: Path) -> None:
    assert "binary" in refusal(proj, READ, {"file_path": "data.bin"})
    assert "directory" in refusal(proj, READ, {"file_path": "src"})
    assert "directory" in refusal(proj, READ, {"file_path": "."})


def test_read_big_file_needs_range(proj: Path) -> None:
    (proj / "big.log").write_text("".join(f"entry {i}\n" for i in range(1, 5001)))
    limits = replace(LIMITS, max_file_bytes=1000)
    assert "offset/limit" in refusal(proj, READ, {"file_path": "big.log"}, limits)
    out = run(proj, READ, {"file_path": "big.log", "offset": 100, "limit": 3}, limits)
    lines = out.splitlines()
    assert lines[0].startswith("File: big.log (lines 100-102 of more")
    assert lines[1:] == ["100| entry 100", "101| entry 101", "102| entry 102"]
    assert "more lines" not in out
    capped = run(proj, READ, {"file_path": "big.log", "offset": 4990}, limits)
    assert capped.splitlines()[-1] == "5000| entry 5000"


def test_read_output_truncated_with_note(proj: Path) -> None:
    (proj / "wide.txt").write_text(("x" * 500 + "\n") * 50)
    limits = replace(LIMITS, max_output_chars=2000)
    out = run(proj, READ, {"file_path": "wide.txt"}, limits)
    assert len(out) <= 2000
    assert "[truncated" in out


def test_read_huge_single_line_is_bounded(proj: Path) -> None:
    (proj / "min.js").write_text("y" * 300_000 + "\nsecond\n")
    limits = replace(LIMITS, max_output_chars=1000, max_file_bytes=10_000_000)
    out = run(proj, READ, {"file_path": "min.js", "offset": 2}, limits)
    assert out.splitlines() == ["File: min.js (lines 2-2 of 2)", "2| second"]


def test_read_lines_is_the_same_sandbox_as_data(proj: Path) -> None:
    got = read_lines(proj, "link_in", offset=3, limit=2, limits=LIMITS)
    assert got.path == "src/app.py"
    assert got.lines == [(3, "def hello():"), (4, "    return 'Hello'")]
    assert got.total == 4 and got.more is False
    with pytest.raises(ToolError, match="not allowed"):
        read_lines(proj, "link_env", limits=LIMITS)


# --- Glob ----------------------------------------------------------------------------------


def test_glob_all_is_sorted_with_dir_markers(proj: Path) -> None:
    listing = run(proj, GLOB, ALL).splitlines()
    assert listing == sorted(listing)
    for expected in ("README.md", "src/", "src/app.py", "src/nested/", "src/nested/deep.txt"):
        assert expected in listing
    assert CAFE_NFC in listing


def test_glob_pattern_and_subdirectory(proj: Path) -> None:
    assert run(proj, GLOB, {"pattern": "*.py", "path": "src"}).splitlines() == [
        "src/app.py",
        "src/util.py",
    ]
    assert run(proj, GLOB, {"pattern": "*.py"}).startswith("No files found")
    assert run(proj, GLOB, {"pattern": "**/*.txt"}).splitlines() == [
        CAFE_NFC,
        "src/nested/deep.txt",
        "sub/file.txt",
    ]
    assert run(proj, GLOB, {"pattern": "src/**/*.txt"}).splitlines() == ["src/nested/deep.txt"]
    assert run(proj, GLOB, {"pattern": "*"}).splitlines()[:3] == ["README.md", CAFE_NFC, "data.bin"]


def test_glob_brace_alternatives(proj: Path) -> None:
    found = run(proj, GLOB, {"pattern": "**/*.{py,md}"}).splitlines()
    assert found == ["README.md", "src/app.py", "src/util.py"]
    assert "too many" in refusal(proj, GLOB, {"pattern": "{a,b}" * 7})


def test_glob_cap_note(proj: Path) -> None:
    (proj / "many").mkdir()
    for i in range(30):
        (proj / "many" / f"f{i:02}.txt").write_text("x")
    out = run(proj, GLOB, {**ALL, "path": "many"}, replace(LIMITS, max_results=5)).splitlines()
    assert out[:5] == [f"many/f{i:02}.txt" for i in range(5)]
    assert "of 30 entries" in out[5]
    assert "25 left out" in out[5]


def test_glob_time_budget_note(proj: Path) -> None:
    out = run(proj, GLOB, ALL, replace(LIMITS, search_timeout_s=0.0))
    assert "time budget" in out


def test_grep_with_no_time_budget_raises(proj: Path) -> None:
    limits = replace(LIMITS, search_timeout_s=0.0)
    assert "timed out" in refusal(proj, GREP, {"pattern": "hello"}, limits)


def test_glob_path_must_be_directory(proj: Path) -> None:
    assert "not a directory" in refusal(proj, GLOB, {**ALL, "path": "README.md"})


def test_glob_explicit_noise_dir_is_allowed(proj: Path) -> None:
    listing = run(proj, GLOB, {**ALL, "path": "node_modules"}).splitlines()
    assert listing == ["node_modules/pkg/", "node_modules/pkg/index.js"]


# --- Grep ----------------------------------------------------------------------------------


def grep(
    root: Path,
    pattern: str,
    limits: ToolLimits = LIMITS,
    flags: dict[str, Any] | None = None,  # Grep's dashed options ("-i", "-C", ...)
    **more: Any,
) -> str:
    tool_input = {"pattern": pattern, "output_mode": "content", **(flags or {}), **more}
    return run(root, GREP, tool_input, limits)


def test_grep_content_format_and_noise(proj: Path) -> None:
    assert grep(proj, "hello").splitlines() == [
        f"{CAFE_NFC}:1:accented hello",
        "src/app.py:3:def hello():",
        "src/nested/deep.txt:1:deep hello",
        "[1 binary or unreadable file(s) skipped]",
    ]
    assert grep(proj, "hello", path="data.bin").splitlines() == [
        "No matches in 'data.bin' (0 files searched).",
        "[1 binary or unreadable file(s) skipped]",
    ]
    assert grep(proj, "hello", flags={"-n": False}).splitlines()[0] == f"{CAFE_NFC}:accented hello"


def test_grep_output_modes(proj: Path) -> None:
    files = run(proj, GREP, {"pattern": "hello", "-i": True}).splitlines()
    assert files[:5] == ["README.md", CAFE_NFC, "src/app.py", "src/util.py", "src/nested/deep.txt"]
    counts = run(proj, GREP, {"pattern": "o", "-i": True, "output_mode": "count", "type": "py"})
    assert counts.splitlines() == ["src/app.py:3", "src/util.py:1"]
    limited = run(proj, GREP, {"pattern": "hello", "-i": True, "head_limit": 2}).splitlines()
    assert limited[:2] == ["README.md", CAFE_NFC]
    assert "stopped at 2" in limited[2]


def test_grep_context_lines_like_ripgrep(proj: Path) -> None:
    (proj / "ctx.txt").write_text("a\nb\nhit 1\nc\nd\ne\nf\nhit 2\ng\n")
    assert grep(proj, "hit", path="ctx.txt", flags={"-C": 1}).splitlines() == [
        "ctx.txt-2-b",
        "ctx.txt:3:hit 1",
        "ctx.txt-4-c",
        "--",
        "ctx.txt-7-f",
        "ctx.txt:8:hit 2",
        "ctx.txt-9-g",
    ]
    assert grep(proj, "hit", path="ctx.txt", flags={"-A": 3, "-B": 0}).splitlines()[:5] == [
        "ctx.txt:3:hit 1",
        "ctx.txt-4-c",
        "ctx.txt-5-d",
        "ctx.txt-6-e",
        "--",
    ]


def test_grep_case_insensitive(proj: Path) -> None:
    out = grep(proj, "hello", flags={"-i": True}).splitlines()
    assert "README.md:2:Hello World" in out
    assert "src/util.py:1:HELLO = 1" in out
    assert "src/app.py:4:    return 'Hello'" in out
    assert not any("node_modules" in line or "data.bin" in line for line in out)


def test_grep_glob_type_and_single_file(proj: Path) -> None:
    by_name = grep(proj, "hello", glob="*.py", flags={"-i": True})
    assert {line.split(":")[0] for line in by_name.splitlines()} == {"src/app.py", "src/util.py"}
    by_type = grep(proj, "hello", type="py", flags={"-i": True})
    assert by_type == by_name
    assert "unknown file type" in refusal(proj, GREP, {"pattern": "x", "type": "cobol"})
    by_path = grep(proj, "hello", glob="src/**/*.txt")
    assert by_path.splitlines() == ["src/nested/deep.txt:1:deep hello"]
    single = grep(proj, "o", path="sub/file.txt")
    assert single == "No matches in 'sub/file.txt' (1 files searched)."
    assert grep(proj, "file", path="sub/file.txt") == "sub/file.txt:1:sub file"


def test_grep_invalid_regex(proj: Path) -> None:
    message = refusal(proj, GREP, {"pattern": "(unclosed"})
    assert message.startswith("invalid regular expression")
    assert "look-around" in refusal(proj, GREP, {"pattern": "(?<=a)b"})


def test_grep_cap_and_snippet(proj: Path) -> None:
    (proj / "hits.txt").write_text("match\n" * 20 + "z" * 2000 + "match" + "z" * 2000 + "\n")
    lines = grep(proj, "match", limits=replace(LIMITS, max_results=3), path="hits.txt").splitlines()
    assert lines[:3] == [f"hits.txt:{i}:match" for i in (1, 2, 3)]
    assert "stopped at 3 lines" in lines[3]
    long_hit = grep(proj, "zmatchz", path="hits.txt")
    assert long_hit.startswith("hits.txt:21:…")
    assert "match" in long_hit
    assert len(long_hit) < 340


def test_grep_skips_large_files_with_note(proj: Path) -> None:
    (proj / "big.log").write_text("needle\n" * 1000)
    out = grep(proj, "needle", limits=replace(LIMITS, max_file_bytes=1000))
    assert out.startswith("No matches")
    assert "1 file(s) over 1000 bytes not searched" in out


def test_backtracking_pattern_runs_in_linear_time(proj: Path) -> None:
    (proj / "evil").mkdir()
    (proj / "evil" / "a_ok.txt").write_text("aaaa\n")
    (proj / "evil" / "b_evil.txt").write_text("a" * 50_000 + "!\n")
    out = grep(proj, r"(a+)+$", path="evil")  # exponential for a backtracking engine
    assert out.splitlines() == ["evil/a_ok.txt:1:aaaa"]


# --- input validation ----------------------------------------------------------------------

BAD_INPUTS: list[tuple[str, object, str]] = [
    (READ, None, "JSON object"),
    (READ, ["README.md"], "JSON object"),
    (READ, "README.md", "JSON object"),
    (READ, {}, "missing required argument 'file_path'"),
    (READ, {"file_path": None}, "missing required argument 'file_path'"),
    (READ, {"file_path": 1}, "'file_path' must be a string"),
    (READ, {"file_path": "README.md", "offset": "1"}, "'offset' must be an integer"),
    (READ, {"file_path": "README.md", "offset": True}, "'offset' must be an integer"),
    (READ, {"file_path": "README.md", "offset": 1.5}, "'offset' must be an integer"),
    (READ, {"file_path": "README.md", "offset": 0}, "'offset' must be >= 1"),
    (READ, {"file_path": "README.md", "limit": -3}, "'limit' must be >= 1"),
    (READ, {"path": "README.md"}, "unknown argument"),
    (GLOB, 42, "JSON object"),
    (GLOB, {}, "missing required argument 'pattern'"),
    (GLOB, {"pattern": ["*"]}, "'pattern' must be a string"),
    (GLOB, {"pattern": "*", "path": 3}, "'path' must be a string"),
    (GLOB, {"pattern": "*", "recursive": True}, "unknown argument"),
    (GREP, {}, "missing required argument 'pattern'"),
    (GREP, {"pattern": 5}, "'pattern' must be a string"),
    (GREP, {"pattern": "x", "-i": "no"}, "must be a boolean"),
    (GREP, {"pattern": "x", "-i": 0}, "must be a boolean"),
    (GREP, {"pattern": "x", "glob": 7}, "'glob' must be a string"),
    (GREP, {"pattern": "x", "path": {}}, "'path' must be a string"),
    (GREP, {"pattern": "x", "output_mode": "lines"}, "must be one of"),
    (GREP, {"pattern": "x", "-C": 1000}, "'-C' must be <="),
    (GREP, {"pattern": "x", "head_limit": 0}, "'head_limit' must be >= 1"),
    (GREP, {"pattern": "x", "max": 3}, "unknown argument"),
    (GREP, {1: "x"}, "unknown argument"),
    ("read_file", {"path": "x"}, "unknown tool"),
    ("", {}, "unknown tool"),
]


@pytest.mark.parametrize(("tool", "tool_input", "expected"), BAD_INPUTS)
def test_input_validation(proj: Path, tool: str, tool_input: object, expected: str) -> None:
    assert expected in refusal(proj, tool, tool_input)


def test_non_string_tool_name(proj: Path) -> None:
    assert "unknown tool" in refusal(proj, 123, {})  # type: ignore[arg-type]


def test_null_optional_arguments_mean_default(proj: Path) -> None:
    out = run(proj, READ, {"file_path": "README.md", "offset": None, "limit": None})
    assert out.startswith("File: README.md (lines 1-3 of 3)")


def test_schemas_are_claude_codes_tools() -> None:
    assert [s["name"] for s in TOOL_SCHEMAS] == ["Read", "Glob", "Grep"]
    for schema in TOOL_SCHEMAS:
        assert schema["description"]
        assert schema["input_schema"]["type"] == "object"
        assert schema["input_schema"]["additionalProperties"] is False
    required = {s["name"]: s["input_schema"]["required"] for s in TOOL_SCHEMAS}
    assert required == {"Read": ["file_path"], "Glob": ["pattern"], "Grep": ["pattern"]}
    props = {s["name"]: set(s["input_schema"]["properties"]) for s in TOOL_SCHEMAS}
    assert props["Read"] == {"file_path", "offset", "limit"}
    assert props["Glob"] == {"pattern", "path"}
    assert {"pattern", "path", "glob", "output_mode", "-i", "head_limit"} <= props["Grep"]


def test_default_limits_are_the_settings_defaults() -> None:
    assert ToolLimits() == DEFAULT_LIMITS
    assert DEFAULT_LIMITS == LIMITS
    assert DEFAULT_LIMITS.max_read_lines == 2000
    assert DEFAULT_LIMITS.deny_globs == DENY_GLOBS


def test_configured_deny_globs_extend_the_builtin_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_TOOL_DENY_GLOBS", "*.sql,private")
    extended = limits_from_settings(Settings()).deny_globs
    assert extended == (*DENY_GLOBS, "*.sql", "private")
    monkeypatch.setenv("ASSISTANT_TOOL_DENY_BUILTIN", "false")
    assert limits_from_settings(Settings()).deny_globs == ("*.sql", "private")
