"""The tools under attack (issue 8): credential files, hostile regular expressions, a directory
swapped for a symlink while the tools run, and hard links to files outside the project.

Limits come from the default settings, built the way the worker builds them.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from shared.config import Settings
from shared.tools import GLOB, GREP, READ, ToolError, limits_from_settings, run_tool
from tests.support.processes import memory_kb

LIMITS = limits_from_settings(Settings())
SECRET = "S3CRET-CREDENTIAL-51b7e"

# Real credential file names, as they sit in checkouts and home directories.
CREDENTIALS = [
    ".pgpass",
    ".kube/config",
    "prod.env",
    "deploy/staging.env",
    ".git-credentials",
    "terraform.tfstate",
    "infra/terraform.tfstate.backup",
    "prod.tfvars",
    ".docker/config.json",
    ".htpasswd",
    ".envrc",
    ".env",
    ".env.local",
    "id_dsa",
    "id_rsa",
    "id_ed25519.pub",
    "x.jks",
    "release.keystore",
    "server.pem",
    "tls.key",
    "cert.p12",
    "vault.kdbx",
    "putty.ppk",
    "sub/.ssh/config",
    ".ssh/authorized_keys",
    ".aws/credentials",
    ".gnupg/pubring.kbx",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".vault-token",
    "credentials.json",
    "secrets.yaml",
    ".git/config",
    ".assistant/assistant.db",
]


def attempt(root: Path, tool: str, tool_input: dict[str, object]) -> tuple[str, bool]:
    """(the output, False) or (the refusal, True)."""
    try:
        return run_tool(root, tool, tool_input, LIMITS), False
    except ToolError as exc:
        return str(exc), True


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    for rel in CREDENTIALS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"password={SECRET}\n")
    (root / "README.md").write_text("password is set in the environment\n")
    return root


@pytest.mark.parametrize("rel", CREDENTIALS)
def test_credential_file_is_refused_by_read(vault: Path, rel: str) -> None:
    with pytest.raises(ToolError, match="not allowed"):
        run_tool(vault, READ, {"file_path": rel}, LIMITS)


def test_credential_files_are_invisible_to_grep_and_glob(vault: Path) -> None:
    for mode in ("content", "files_with_matches", "count"):
        out = run_tool(vault, GREP, {"pattern": "password", "output_mode": mode}, LIMITS)
        assert SECRET not in out
        assert [ln.split(":")[0] for ln in out.splitlines()] == ["README.md"], out
    listing = run_tool(vault, GLOB, {"pattern": "**/*"}, LIMITS).splitlines()
    assert listing == ["README.md", "deploy/", "infra/", "sub/"]
    for rel in CREDENTIALS:  # their directories named directly, too
        parent = rel.rsplit("/", 1)[0] if "/" in rel else "."
        out, refused = attempt(vault, GREP, {"pattern": "password", "path": parent})
        assert "not allowed" in out if refused else (SECRET not in out and rel not in out)


# ---- hostile regular expressions ----------------------------------------------------------

HOSTILE_PATTERNS = [
    "(?x)a{1000 0000}",  # verbose mode hid the repeat count from the old check
    "(?x)a{4294 967294}",
    "(?x) ( a {1000} ) {1000}",
    "a{4294967294}",
    "a{1001}",
    "(a{1000}){1000}",
    "((a{100}){100}){100}",
    r"\pL{1000}",  # one repeat of a large class: beyond the memory budget
    r"[\p{L}\p{N}]{500}[\p{L}\p{N}]{500}",
    "((a*)*)*b",  # nested repeats
    "(a+)+$",  # catastrophic backtracking for a backtracking engine
    "(a|aa)+$",
    "(x+x+)+y",
    r"^(\w+\s?)*$",
    "(.*a){20}",
    "(" + "|".join(f"w{i}" for i in range(150)) + ")+$",  # a large alternation
    "(" + "|".join("abcdefghij") + "){1000}",
    "(?i)(" + "|".join(f"k{i}x" for i in range(100)) + "){10}",
    r"(a|b)*a(a|b){20}",  # an exponential DFA
    "(?=a)a",  # look-ahead: not supported, refused
    r"(a)\1",  # back-reference: not supported, refused
    "a" * 1001,  # too long
]


@pytest.fixture
def bait(tmp_path: Path) -> Path:
    root = tmp_path / "bait"
    root.mkdir()
    (root / "a.txt").write_text("a" * 50_000 + "!\n" + "ab" * 20_000 + "\n")
    (root / "b.txt").write_text("x" * 30_000 + "\n" + "w1 k3x " * 1000 + "\n")
    return root


@pytest.mark.parametrize("pattern", HOSTILE_PATTERNS)
def test_hostile_pattern_ends_with_a_clear_error_or_a_result(bait: Path, pattern: str) -> None:
    peak_before = memory_kb(os.getpid(), "VmHWM")
    out, refused = attempt(bait, GREP, {"pattern": pattern, "output_mode": "count"})
    if refused:
        assert out.startswith(("invalid regular expression", "regular expression is too")), out
    else:
        # Linear time: the whole bait was searched well within the time budget.
        assert "time budget" not in out, out
        assert out.startswith(("No matches", "a.txt:", "b.txt:")), out
    assert memory_kb(os.getpid(), "VmHWM") - peak_before < 64 * 1024


def test_verbose_mode_repeat_says_why(bait: Path) -> None:
    with pytest.raises(ToolError, match="verbose mode"):
        run_tool(bait, GREP, {"pattern": "(?x)a{1000 0000}"}, LIMITS)


# ---- a directory swapped for a symlink while the tools run ---------------------------------


def test_directory_flipping_to_a_symlink_never_leads_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "d"
    outside.mkdir(parents=True)
    (outside / "x.txt").write_text("OUTSIDE-FLIP\n")
    root = tmp_path / "proj"
    (root / "d").mkdir(parents=True)
    (root / "d" / "x.txt").write_text("inside\n")
    stop, flips = threading.Event(), [0]

    def flip() -> None:
        while not stop.is_set():
            os.rename(root / "d", root / "d_real")
            os.symlink(outside, root / "d")
            os.unlink(root / "d")
            os.rename(root / "d_real", root / "d")
            flips[0] += 1

    flipper = threading.Thread(target=flip)
    flipper.start()
    leaks, inside = [], 0
    calls = [
        (READ, {"file_path": "d/x.txt"}),
        (GREP, {"pattern": "OUTSIDE|inside", "path": "d", "output_mode": "content"}),
        (GREP, {"pattern": "OUTSIDE|inside", "output_mode": "content"}),
    ]
    try:
        for i in range(3000):
            name, tool_input = calls[i % len(calls)]
            try:
                out = run_tool(root, name, tool_input, LIMITS)
            except ToolError:
                continue  # refused while it was a link outside, or missing mid-swap
            leaks += [out] if "OUTSIDE" in out else []
            inside += "inside" in out
    finally:
        stop.set()
        flipper.join()
    assert leaks == []
    assert inside > 0 and flips[0] > 100  # both states were really met


# ---- hard links -----------------------------------------------------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    (tmp_path / "outside.txt").write_text(f"{SECRET}\n")
    root = tmp_path / "proj"
    root.mkdir()
    os.link(tmp_path / "outside.txt", root / "notes.txt")
    (root / "ok.txt").write_text("fine\n")
    return root


def test_hard_linked_file_is_refused_and_says_why(linked: Path) -> None:
    with pytest.raises(ToolError, match="hard links") as info:
        run_tool(linked, READ, {"file_path": "notes.txt"}, LIMITS)
    assert "administrator" in str(info.value)
    found = run_tool(linked, GREP, {"pattern": ".", "output_mode": "content"}, LIMITS)
    assert SECRET not in found
    assert found.splitlines() == [
        "ok.txt:1:fine",
        "[1 file(s) with several hard links skipped; an administrator can allow them for "
        "this project]",
    ]
    assert "notes.txt" in run_tool(linked, GLOB, {"pattern": "*"}, LIMITS)  # a name only


def test_hard_links_allowed_per_project(linked: Path) -> None:
    allowed = replace(LIMITS, allow_hardlinks=True)
    assert SECRET in run_tool(linked, READ, {"file_path": "notes.txt"}, allowed)
    assert SECRET in run_tool(linked, GREP, {"pattern": "S3", "output_mode": "content"}, allowed)
