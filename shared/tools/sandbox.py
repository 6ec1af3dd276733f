"""Confinement: every path the model supplies is mapped into the project's real directory.

The model may have been prompt-injected by the very files it reads, so tool input is hostile:
paths are resolved (symlinks followed) and must stay inside the project, secret-looking files
are refused, and only regular files are opened.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import translate
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class ToolLimits:
    max_file_bytes: int = 512_000  # bigger files: read only by line range; never searched
    max_read_lines: int = 2000  # lines returned by one read_file call at most
    max_results: int = 200  # list_files entries / search_files matches at most
    max_output_chars: int = 40_000  # every tool result is truncated to this, with a note
    search_timeout_s: float = 5.0  # wall-clock budget for a search (and for a list_files walk)
    # Matched case-insensitively against every component of the path and against the whole path.
    deny_globs: tuple[str, ...] = (
        ".env", ".env.*", "*.env", ".envrc", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks",
        "*.keystore", "*.kdbx", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", ".git",
        ".git-credentials", ".ssh", ".gnupg", ".aws", ".docker", ".kube", ".netrc", ".npmrc",
        ".pypirc", ".pgpass", ".htpasswd", "credentials*", "secrets.*", "*.tfstate", "*.tfstate.*",
    )  # fmt: skip


DEFAULT_LIMITS = ToolLimits()
# Pruned while walking purely for speed and signal; they can still be addressed explicitly.
NOISE_DIRS: tuple[str, ...] = (".git", "node_modules", "__pycache__", ".venv")


class ToolError(Exception):
    """A refusal or failure whose message is safe to show the model.

    Messages never contain absolute host paths or stack traces.
    """


BINARY_SNIFF_BYTES = 8192
_MAX_PATH_CHARS = 1024
# Cc/Cf/Cs/Co cover NUL, escapes, bidi overrides (U+202E), zero-width chars and undecodable bytes
# (surrogate-escaped); none belong in a path the model should be able to type or cite.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def real_root(root: Path) -> Path:
    try:
        real = Path(root).resolve(strict=True)
    except (OSError, RuntimeError):
        raise ToolError("the project directory is not available") from None
    if not real.is_dir():
        raise ToolError("the project directory is not available")
    return real


def unsafe(text: str) -> bool:
    return any(unicodedata.category(ch) in _UNSAFE_CATEGORIES for ch in text)


@functools.cache
def deny_regex(globs: tuple[str, ...]) -> re.Pattern[str]:
    # One alternation instead of len(globs) fnmatch calls per component: walks check every entry.
    return re.compile("|".join(translate(g.casefold()) for g in globs) or r"(?!)")


def denied(parts: tuple[str, ...] | list[str], globs: tuple[str, ...]) -> bool:
    # Casefold so `.ENV` is caught on case-insensitive filesystems; NFC so lookalike spellings
    # of the same name compare equal.
    folded = [unicodedata.normalize("NFC", p).casefold() for p in parts if p not in ("", ".")]
    rx = deny_regex(globs)
    return any(rx.match(c) for c in [*folded, "/".join(folded)])


def resolve(root: Path, raw: str, limits: ToolLimits) -> tuple[Path, str]:
    """Map a model-supplied path to a real path inside `root`, plus its display form."""
    if not raw:
        raise ToolError("path must not be empty (use '.' for the project root)")
    if len(raw) > _MAX_PATH_CHARS:
        raise ToolError("path is too long")
    if unsafe(raw):
        raise ToolError("path contains control or invisible formatting characters")
    if "\\" in raw:
        raise ToolError("use '/' as the path separator; backslashes are not allowed")
    if raw.startswith(("/", "~")):
        raise ToolError("path must be relative to the project root (no absolute or '~' paths)")
    # The literal spelling is tried first so NFD names on disk stay readable; NFC is the fallback.
    candidates = list(dict.fromkeys([raw, unicodedata.normalize("NFC", raw)]))
    for cand in candidates:
        depth = 0
        for part in cand.split("/"):
            depth += -1 if part == ".." else int(part not in ("", "."))
            if depth < 0:
                raise ToolError("path escapes the project root")
        if denied(cand.split("/"), limits.deny_globs):
            raise ToolError(f"access to '{raw}' is not allowed (protected file)")
    for cand in candidates:
        try:
            real = (root / cand).resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (OSError, RuntimeError):
            raise ToolError(f"cannot resolve '{raw}' (symlink loop or no permission)") from None
        # Checked on the resolved path: symlinks anywhere along the way are already followed.
        if not real.is_relative_to(root):
            raise ToolError(f"'{raw}' resolves outside the project (e.g. via a symbolic link)")
        parts = real.relative_to(root).parts
        if denied(parts, limits.deny_globs):
            raise ToolError(f"access to '{raw}' is not allowed (protected file)")
        return real, "/".join(parts) or "."
    raise ToolError(f"'{raw}' does not exist in the project")


def open_regular(path: Path, rel: str) -> IO[bytes]:
    # O_NOFOLLOW narrows the swap-to-symlink race after resolve; O_NONBLOCK keeps a FIFO from
    # hanging the worker before fstat gets a chance to reject it.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ToolError(f"cannot open '{rel}': {exc.strerror}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ToolError(f"'{rel}' is a directory; use list_files to see its contents")
        if not stat.S_ISREG(mode):
            raise ToolError(f"'{rel}' is not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def iter_lines(f: IO[bytes], cap: int) -> Iterator[str]:
    """Yield decoded lines without their newline, keeping at most `cap` bytes of each in memory."""
    while line := f.readline(cap):
        cut = not line.endswith(b"\n") and len(line) == cap
        while cut and (rest := f.readline(cap)) and not rest.endswith(b"\n"):
            pass
        text = line.rstrip(b"\r\n").decode("utf-8", errors="replace")
        yield text + (" [line truncated]" if cut else "")
