from __future__ import annotations

import os
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from shared.tools import DEFAULT_LIMITS, TOOL_SCHEMAS, ToolError, ToolLimits, run_tool

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


def run(root: Path, name: str, tool_input: object, limits: ToolLimits = DEFAULT_LIMITS) -> str:
    out = run_tool(root, name, tool_input, limits)
    assert isinstance(out, str)
    return out


def assert_clean(text: str, tmp_path: Path) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert str(tmp_path) not in text


def refusal(root: Path, name: str, tool_input: object, limits: ToolLimits = DEFAULT_LIMITS) -> str:
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


@pytest.mark.parametrize("bad", TRAVERSAL)
@pytest.mark.parametrize("tool", ["read_file", "list_files", "search_files"])
def test_traversal_corpus_is_refused(proj: Path, tmp_path: Path, tool: str, bad: str) -> None:
    tool_input: dict[str, Any] = {"path": bad}
    if tool == "search_files":
        tool_input["pattern"] = "S3CRET|."
    message = refusal(proj, tool, tool_input)
    assert_clean(message, tmp_path)


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
    assert reason in refusal(proj, "read_file", {"path": bad})


def test_names_with_invisible_characters_are_not_listed(proj: Path) -> None:
    (proj / "evil\u202etxt.exe").write_text("hello\n")
    (proj / "back\\slash.txt").write_text("hello\n")
    listing = run(proj, "list_files", {})
    assert "\u202e" not in listing
    assert "slash" not in listing
    assert "evil" not in run(proj, "search_files", {"pattern": "hello"})


@pytest.mark.parametrize("tool", ["read_file", "list_files", "search_files"])
def test_absolute_path_into_project_is_refused(proj: Path, tmp_path: Path, tool: str) -> None:
    tool_input: dict[str, Any] = {"path": str(proj / "README.md")}
    if tool == "search_files":
        tool_input["pattern"] = "Hello"
    assert_clean(refusal(proj, tool, tool_input), tmp_path)


def test_symlinked_root_still_confines(proj: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(proj, target_is_directory=True)
    assert "Hello World" in run(alias, "read_file", {"path": "README.md"})
    assert_clean(refusal(alias, "read_file", {"path": "link_to_file"}), tmp_path)


def test_walks_never_expose_secrets_or_outside_links(proj: Path, tmp_path: Path) -> None:
    listing = run(proj, "list_files", {}).splitlines()
    assert_clean("\n".join(listing), tmp_path)
    for hidden in ("link_out", "link_out/", "link_to_file", "link_env", ".env", ".git/", ".ssh/"):
        assert hidden not in listing
    assert not any(p.startswith((".git", ".ssh", "link_out/", "node_modules/p")) for p in listing)
    assert "node_modules/" in listing  # noise dirs are shown but never descended into
    assert "sub/.env" not in listing
    found = run(proj, "search_files", {"pattern": "S3CRET", "case_sensitive": False})
    assert found.startswith("No matches")
    assert_clean(found, tmp_path)


def test_deny_list_is_case_insensitive_and_checks_link_names(proj: Path, tmp_path: Path) -> None:
    (proj / "Secrets.YAML").write_text(f"{SECRET_KEY}\n")
    (proj / "deploy.KEY").symlink_to(proj / "README.md")
    for path in ("Secrets.YAML", "deploy.KEY"):
        assert "not allowed" in refusal(proj, "read_file", {"path": path})
    listing = run(proj, "list_files", {})
    assert "Secrets.YAML" not in listing
    assert "deploy.KEY" not in listing
    assert_clean(run(proj, "search_files", {"pattern": "S3CRET", "glob": "*.YAML"}), tmp_path)


def test_custom_deny_globs(proj: Path) -> None:
    limits = ToolLimits(deny_globs=("*.md", "private/**"))
    (proj / "private").mkdir()
    (proj / "private" / "notes.txt").write_text("x\n")
    assert "not allowed" in refusal(proj, "read_file", {"path": "README.md"}, limits)
    assert "not allowed" in refusal(proj, "read_file", {"path": "private/notes.txt"}, limits)
    listing = run(proj, "list_files", {}, limits).splitlines()
    assert "README.md" not in listing
    assert "private/notes.txt" not in listing
    assert "Hello World" in run(proj, "read_file", {"path": "README.md"})


def test_list_pattern_cannot_escape(proj: Path) -> None:
    for pattern in ("../*", "**/../../*", "/etc/*", "~/*", "a\x00", "..\\*"):
        refusal(proj, "list_files", {"pattern": pattern})


def test_search_glob_cannot_escape(proj: Path) -> None:
    for glob in ("../*", "/etc/*", "x\x1b"):
        refusal(proj, "search_files", {"pattern": "x", "glob": glob})


def test_fifo_is_refused_without_hanging(proj: Path) -> None:
    os.mkfifo(proj / "pipe")
    assert "not a regular file" in refusal(proj, "read_file", {"path": "pipe"})
    assert "pipe" in run(proj, "list_files", {}).splitlines()
    assert "README.md:2:" in run(proj, "search_files", {"pattern": "World"})


def test_inside_symlink_and_nfd_spelling_work(proj: Path) -> None:
    assert "def hello():" in run(proj, "read_file", {"path": "link_in"})
    assert "link_in" in run(proj, "list_files", {}).splitlines()
    assert "accented hello" in run(proj, "read_file", {"path": CAFE_NFD})


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_bad_root(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "nope"
    if kind == "file":
        root.write_text("x")
    message = refusal(root, "list_files", {})
    assert "not available" in message
    assert str(tmp_path) not in message


# --- read_file -----------------------------------------------------------------------------


def test_read_whole_file_has_header_and_line_numbers(proj: Path) -> None:
    out = run(proj, "read_file", {"path": "README.md"})
    assert out.splitlines() == [
        "File: README.md (lines 1-3 of 3)",
        "1| # Title",
        "2| Hello World",
        "3| third line",
    ]


def test_read_range_and_padding(proj: Path) -> None:
    (proj / "many.txt").write_text("".join(f"line {i}\n" for i in range(1, 21)))
    out = run(proj, "read_file", {"path": "many.txt", "start_line": 9, "end_line": 11})
    assert out.splitlines() == [
        "File: many.txt (lines 9-11 of 20)",
        " 9| line 9",
        "10| line 10",
        "11| line 11",
    ]
    tail = run(proj, "read_file", {"path": "many.txt", "start_line": 19, "end_line": 500})
    assert tail.splitlines()[1:] == ["19| line 19", "20| line 20"]
    assert "more lines" not in tail


def test_read_start_past_end_and_inverted_range(proj: Path) -> None:
    assert "past the end" in refusal(proj, "read_file", {"path": "README.md", "start_line": 4})
    inverted = {"path": "README.md", "start_line": 3, "end_line": 2}
    assert "end_line" in refusal(proj, "read_file", inverted)


def test_read_caps_lines_with_continuation_note(proj: Path) -> None:
    (proj / "many.txt").write_text("".join(f"line {i}\n" for i in range(1, 51)))
    limits = ToolLimits(max_read_lines=10)
    out = run(proj, "read_file", {"path": "many.txt"}, limits).splitlines()
    assert out[0] == "File: many.txt (lines 1-10 of 50)"
    assert out[-2] == "10| line 10"
    assert "start_line=11" in out[-1]
    nxt = run(proj, "read_file", {"path": "many.txt", "start_line": 11}, limits).splitlines()
    assert nxt[1] == "11| line 11"
    assert "start_line=21" in nxt[-1]


def test_read_binary_and_directory_refused(proj: Path) -> None:
    assert "binary" in refusal(proj, "read_file", {"path": "data.bin"})
    assert "directory" in refusal(proj, "read_file", {"path": "src"})
    assert "directory" in refusal(proj, "read_file", {"path": "."})


def test_read_big_file_needs_range(proj: Path) -> None:
    (proj / "big.log").write_text("".join(f"entry {i}\n" for i in range(1, 5001)))
    limits = ToolLimits(max_file_bytes=1000)
    assert "start_line" in refusal(proj, "read_file", {"path": "big.log"}, limits)
    out = run(proj, "read_file", {"path": "big.log", "start_line": 100, "end_line": 102}, limits)
    lines = out.splitlines()
    assert lines[0].startswith("File: big.log (lines 100-102 of more")
    assert lines[1:] == ["100| entry 100", "101| entry 101", "102| entry 102"]
    assert "more lines" not in out
    capped = run(proj, "read_file", {"path": "big.log", "start_line": 4990}, limits)
    assert capped.splitlines()[-1] == "5000| entry 5000"


def test_read_output_truncated_with_note(proj: Path) -> None:
    (proj / "wide.txt").write_text(("x" * 500 + "\n") * 50)
    limits = ToolLimits(max_output_chars=2000)
    out = run(proj, "read_file", {"path": "wide.txt"}, limits)
    assert len(out) <= 2000
    assert "[truncated" in out


def test_read_huge_single_line_is_bounded(proj: Path) -> None:
    (proj / "min.js").write_text("y" * 300_000 + "\nsecond\n")
    limits = ToolLimits(max_output_chars=1000, max_file_bytes=10_000_000)
    out = run(proj, "read_file", {"path": "min.js", "start_line": 2}, limits)
    assert out.splitlines() == ["File: min.js (lines 2-2 of 2)", "2| second"]


# --- list_files ----------------------------------------------------------------------------


def test_list_default_is_sorted_with_dir_markers(proj: Path) -> None:
    listing = run(proj, "list_files", {}).splitlines()
    assert listing == sorted(listing)
    for expected in ("README.md", "src/", "src/app.py", "src/nested/", "src/nested/deep.txt"):
        assert expected in listing
    assert CAFE_NFC in listing


def test_list_pattern_and_subdirectory(proj: Path) -> None:
    assert run(proj, "list_files", {"pattern": "*.py", "path": "src"}).splitlines() == [
        "src/app.py",
        "src/util.py",
    ]
    assert run(proj, "list_files", {"pattern": "*.py"}).startswith("No entries")
    assert run(proj, "list_files", {"pattern": "**/*.txt"}).splitlines() == [
        CAFE_NFC,
        "src/nested/deep.txt",
        "sub/file.txt",
    ]
    assert run(proj, "list_files", {"pattern": "src/**/*.txt"}).splitlines() == [
        "src/nested/deep.txt"
    ]
    assert run(proj, "list_files", {"pattern": "*"}).splitlines()[:3] == [
        "README.md",
        CAFE_NFC,
        "data.bin",
    ]


def test_list_cap_note(proj: Path) -> None:
    (proj / "many").mkdir()
    for i in range(30):
        (proj / "many" / f"f{i:02}.txt").write_text("x")
    out = run(proj, "list_files", {"path": "many"}, ToolLimits(max_results=5)).splitlines()
    assert out[:5] == [f"many/f{i:02}.txt" for i in range(5)]
    assert "of 30 entries" in out[5]
    assert "25 left out" in out[5]


def test_list_time_budget_note(proj: Path) -> None:
    out = run(proj, "list_files", {}, ToolLimits(search_timeout_s=0.0))
    assert "time budget" in out


def test_search_with_no_time_budget_raises(proj: Path) -> None:
    limits = ToolLimits(search_timeout_s=0.0)
    assert "timed out" in refusal(proj, "search_files", {"pattern": "hello"}, limits)


def test_list_path_must_be_directory(proj: Path) -> None:
    assert "not a directory" in refusal(proj, "list_files", {"path": "README.md"})


def test_list_explicit_noise_dir_is_allowed(proj: Path) -> None:
    listing = run(proj, "list_files", {"path": "node_modules"}).splitlines()
    assert listing == ["node_modules/pkg/", "node_modules/pkg/index.js"]


# --- search_files --------------------------------------------------------------------------


def test_search_format_and_noise(proj: Path) -> None:
    out = run(proj, "search_files", {"pattern": "hello"}).splitlines()
    assert out == [
        f"{CAFE_NFC}:1: accented hello",
        "src/app.py:3: def hello():",
        "src/nested/deep.txt:1: deep hello",
        "[1 binary or unreadable file(s) skipped]",
    ]
    binary = run(proj, "search_files", {"pattern": "hello", "path": "data.bin"})
    assert binary.splitlines() == [
        "No matches in 'data.bin' (0 files searched).",
        "[1 binary or unreadable file(s) skipped]",
    ]


def test_search_case_insensitive(proj: Path) -> None:
    out = run(proj, "search_files", {"pattern": "hello", "case_sensitive": False}).splitlines()
    assert "README.md:2: Hello World" in out
    assert "src/util.py:1: HELLO = 1" in out
    assert "src/app.py:4: return 'Hello'" in out
    assert not any("node_modules" in line or "data.bin" in line for line in out)


def test_search_glob_and_single_file(proj: Path) -> None:
    by_name = run(
        proj, "search_files", {"pattern": "hello", "glob": "*.py", "case_sensitive": False}
    )
    assert {line.split(":")[0] for line in by_name.splitlines()} == {"src/app.py", "src/util.py"}
    by_path = run(proj, "search_files", {"pattern": "hello", "glob": "src/**/*.txt"})
    assert by_path.splitlines() == ["src/nested/deep.txt:1: deep hello"]
    single = run(proj, "search_files", {"pattern": "o", "path": "sub/file.txt"})
    assert single == "No matches in 'sub/file.txt' (1 files searched)."
    assert run(proj, "search_files", {"pattern": "file", "path": "sub/file.txt"}) == (
        "sub/file.txt:1: sub file"
    )


def test_search_invalid_regex(proj: Path) -> None:
    message = refusal(proj, "search_files", {"pattern": "(unclosed"})
    assert message.startswith("invalid regular expression")


def test_search_repeat_bomb_refused_quickly(proj: Path) -> None:
    started = time.monotonic()
    assert "too large" in refusal(proj, "search_files", {"pattern": "a{4294967294}"})
    assert time.monotonic() - started < 5


def test_search_cap_and_snippet(proj: Path) -> None:
    (proj / "hits.txt").write_text("match\n" * 20 + "z" * 2000 + "match" + "z" * 2000 + "\n")
    out = run(
        proj, "search_files", {"pattern": "match", "path": "hits.txt"}, ToolLimits(max_results=3)
    )
    lines = out.splitlines()
    assert lines[:3] == [f"hits.txt:{i}: match" for i in (1, 2, 3)]
    assert "stopped at 3 matches" in lines[3]
    long_hit = run(proj, "search_files", {"pattern": "zmatchz", "path": "hits.txt"})
    assert long_hit.startswith("hits.txt:21: …")
    assert "match" in long_hit
    assert len(long_hit) < 340


def test_search_skips_large_files_with_note(proj: Path) -> None:
    (proj / "big.log").write_text("needle\n" * 1000)
    out = run(proj, "search_files", {"pattern": "needle"}, ToolLimits(max_file_bytes=1000))
    assert out.startswith("No matches")
    assert "1 file(s) over 1000 bytes not searched" in out


def test_catastrophic_regex_is_bounded(proj: Path) -> None:
    (proj / "evil").mkdir()
    (proj / "evil" / "a_ok.txt").write_text("aaaa\n")
    (proj / "evil" / "b_evil.txt").write_text("a" * 50_000 + "!\n")
    limits = ToolLimits(search_timeout_s=0.5)
    started = time.monotonic()
    out = run(proj, "search_files", {"pattern": r"(a+)+$", "path": "evil"}, limits)
    assert time.monotonic() - started < 10
    assert out.splitlines()[0] == "evil/a_ok.txt:1: aaaa"
    assert "time budget" in out


def test_catastrophic_regex_with_nothing_searched_raises(proj: Path) -> None:
    (proj / "evil.txt").write_text("a" * 50_000 + "!\n")
    limits = ToolLimits(search_timeout_s=0.5)
    started = time.monotonic()
    message = refusal(proj, "search_files", {"pattern": r"(a+)+$", "path": "evil.txt"}, limits)
    assert time.monotonic() - started < 10
    assert "timed out" in message


# --- input validation ----------------------------------------------------------------------

BAD_INPUTS: list[tuple[str, object, str]] = [
    ("read_file", None, "JSON object"),
    ("read_file", ["README.md"], "JSON object"),
    ("read_file", "README.md", "JSON object"),
    ("read_file", {}, "missing required argument 'path'"),
    ("read_file", {"path": None}, "missing required argument 'path'"),
    ("read_file", {"path": 1}, "'path' must be a string"),
    ("read_file", {"path": "README.md", "start_line": "1"}, "'start_line' must be an integer"),
    ("read_file", {"path": "README.md", "start_line": True}, "'start_line' must be an integer"),
    ("read_file", {"path": "README.md", "start_line": 1.5}, "'start_line' must be an integer"),
    ("read_file", {"path": "README.md", "start_line": 0}, "'start_line' must be >= 1"),
    ("read_file", {"path": "README.md", "end_line": -3}, "'end_line' must be >= 1"),
    ("read_file", {"file_path": "README.md"}, "unknown argument"),
    ("list_files", 42, "JSON object"),
    ("list_files", {"pattern": ["*"]}, "'pattern' must be a string"),
    ("list_files", {"path": 3}, "'path' must be a string"),
    ("list_files", {"recursive": True}, "unknown argument"),
    ("search_files", {}, "missing required argument 'pattern'"),
    ("search_files", {"pattern": 5}, "'pattern' must be a string"),
    ("search_files", {"pattern": "x", "case_sensitive": "no"}, "must be a boolean"),
    ("search_files", {"pattern": "x", "case_sensitive": 0}, "must be a boolean"),
    ("search_files", {"pattern": "x", "glob": 7}, "'glob' must be a string"),
    ("search_files", {"pattern": "x", "path": {}}, "'path' must be a string"),
    ("search_files", {"pattern": "x", "max": 3}, "unknown argument"),
    ("search_files", {1: "x"}, "unknown argument"),
    ("write_file", {"path": "x"}, "unknown tool"),
    ("", {}, "unknown tool"),
]


@pytest.mark.parametrize(("tool", "tool_input", "expected"), BAD_INPUTS)
def test_input_validation(proj: Path, tool: str, tool_input: object, expected: str) -> None:
    assert expected in refusal(proj, tool, tool_input)


def test_non_string_tool_name(proj: Path) -> None:
    assert "unknown tool" in refusal(proj, 123, {})  # type: ignore[arg-type]


def test_null_optional_arguments_mean_default(proj: Path) -> None:
    out = run(proj, "read_file", {"path": "README.md", "start_line": None, "end_line": None})
    assert out.startswith("File: README.md (lines 1-3 of 3)")


def test_schemas_match_tools() -> None:
    assert [s["name"] for s in TOOL_SCHEMAS] == ["read_file", "list_files", "search_files"]
    for schema in TOOL_SCHEMAS:
        assert schema["description"]
        assert schema["input_schema"]["type"] == "object"
        assert schema["input_schema"]["additionalProperties"] is False
    required = {s["name"]: s["input_schema"]["required"] for s in TOOL_SCHEMAS}
    assert required == {"read_file": ["path"], "list_files": [], "search_files": ["pattern"]}


def test_default_limits() -> None:
    assert ToolLimits() == DEFAULT_LIMITS
    assert DEFAULT_LIMITS.max_read_lines == 2000
    assert ".env" in DEFAULT_LIMITS.deny_globs
