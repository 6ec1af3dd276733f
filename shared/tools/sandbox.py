"""Confinement: every path the model supplies is opened inside the project, and only there.

The model may have been prompt-injected by the very files it reads, so tool input is hostile.
Paths are checked lexically first (relative, no escape, no secret-looking component), then
opened one component at a time relative to the parent directory's descriptor without following
links (`O_NOFOLLOW`): a directory swapped for a symlink while a tool runs cannot lead outside.
Symbolic links inside the project are followed by this code, not the kernel, and only while the
path stays under the project root. Only regular files are read, and a file with several hard
links only where an administrator allows it (it may be the same file as one outside).
"""

from __future__ import annotations

import contextlib
import errno
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

from shared.tools.limits import ToolLimits


class ToolError(Exception):
    """A refusal or failure whose message is safe to show the model.

    Messages never contain absolute host paths or stack traces.
    """


# Pruned while walking purely for speed and signal; they can still be addressed explicitly.
NOISE_DIRS: tuple[str, ...] = (".git", "node_modules", "__pycache__", ".venv")
BINARY_SNIFF_BYTES = 8192
_MAX_PATH_CHARS = 1024
_MAX_LINKS = 40  # symbolic links followed while opening one path, like the kernel's limit
_BASE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
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


def _spellings(raw: str, limits: ToolLimits) -> list[str]:
    """The lexical checks on a model-supplied path; the spellings to try, literal first (so NFD
    names on disk stay readable), then NFC."""
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
    candidates = list(dict.fromkeys([raw, unicodedata.normalize("NFC", raw)]))
    for cand in candidates:
        depth = 0
        for part in cand.split("/"):
            depth += -1 if part == ".." else int(part not in ("", "."))
            if depth < 0:
                raise ToolError("path escapes the project root")
        if denied(cand.split("/"), limits.deny_globs):
            raise ToolError(f"access to '{raw}' is not allowed (protected file)")
    return candidates


@dataclass
class Opened:
    """A descriptor opened inside the project (the caller closes it) and what it is."""

    fd: int
    rel: str  # the canonical path relative to the project root, '/'-separated ('.' for it)
    parts: tuple[str, ...]
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


class _Missing(Exception):
    """A component does not exist: the next spelling may."""


class Project:
    """The project directory, held open by descriptor for the length of one tool call."""

    def __init__(self, root: Path, limits: ToolLimits) -> None:
        self.path = real_root(root)
        self.limits = limits
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            raise ToolError("the project directory is not available") from None

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, raw: str) -> Opened:
        """Open a model-supplied path (a file or a directory) inside the project."""
        for cand in _spellings(raw, self.limits):
            try:
                return self.open_parts(cand.split("/"), raw)
            except _Missing:
                continue
        raise ToolError(f"'{raw}' does not exist in the project")

    def open_parts(self, parts: list[str], raw: str) -> Opened:
        """Open `parts` (relative to the root) component by component, never letting the kernel
        follow a link; links are followed here while they stay inside the project."""
        todo = [p for p in reversed(parts) if p not in ("", ".")]
        cur: list[str] = []
        fds = [os.dup(self.fd)]
        links = 0
        try:
            while todo:
                name = todo.pop()
                if name == "..":
                    if not cur:
                        raise ToolError(f"'{raw}' resolves outside the project (via a link)")
                    cur.pop()
                    os.close(fds.pop())
                    continue
                if denied((*cur, name), self.limits.deny_globs):
                    raise ToolError(f"access to '{raw}' is not allowed (protected file)")
                flags = _BASE_FLAGS | (os.O_DIRECTORY if todo else 0)
                try:
                    fds.append(os.open(name, flags, dir_fd=fds[-1]))
                except OSError as exc:
                    if exc.errno == errno.ENOENT:
                        raise _Missing() from None
                    # O_NOFOLLOW refuses a link with ELOOP, or ENOTDIR along with O_DIRECTORY.
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise ToolError(f"cannot open '{raw}': {exc.strerror}") from None
                    links += 1
                    if links > _MAX_LINKS:
                        raise ToolError(f"cannot resolve '{raw}' (too many links)") from None
                    target = self._link_target(fds[-1], name, raw)
                    if target is None:
                        if exc.errno == errno.ENOTDIR:
                            raise _Missing() from None  # a file where a directory is needed
                        todo.append(name)  # it stopped being a link meanwhile: open it again
                        continue
                    if target.startswith("/"):
                        cur.clear()
                        for fd in fds[1:]:
                            os.close(fd)
                        del fds[1:]
                        target = self._inside(target, raw)
                    todo.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
                    continue
                cur.append(name)
            st = os.fstat(fds[-1])
            return Opened(fds.pop(), "/".join(cur) or ".", tuple(cur), st)
        finally:
            for fd in fds:
                os.close(fd)

    def reaches(self, rel: str) -> bool:
        """Whether `rel` (say, a link found by a walk) leads to something inside the project
        that is not denied."""
        try:
            opened = self.open_parts(rel.split("/"), rel)
        except (ToolError, _Missing, OSError):
            return False
        os.close(opened.fd)
        return True

    def _link_target(self, dir_fd: int, name: str, raw: str) -> str | None:
        try:
            target = os.readlink(name, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):  # not (or no longer) a link
                return None
            raise ToolError(f"cannot resolve '{raw}': {exc.strerror}") from None
        if not target or unsafe(target) or "\\" in target:
            raise ToolError(f"cannot resolve '{raw}' (an unusual symbolic link)")
        return target

    def _inside(self, target: str, raw: str) -> str:
        """An absolute link target as a path relative to the project root, if it names one
        inside (any '..' left in it is then confined by the walk like every other part)."""
        root = str(self.path).rstrip("/") + "/"
        if (target.rstrip("/") + "/") == root:
            return "."
        if not target.startswith(root):
            raise ToolError(f"'{raw}' resolves outside the project (e.g. via a symbolic link)")
        return target[len(root) :]

    def open_file(self, raw: str) -> tuple[IO[bytes], str]:
        """Open a model-supplied path that must be a regular file; (the file, its display path)."""
        opened = self.open(raw)
        try:
            check_regular(opened.st, opened.rel, self.limits)
        except BaseException:
            os.close(opened.fd)
            raise
        return os.fdopen(opened.fd, "rb"), opened.rel


def check_regular(st: os.stat_result, rel: str, limits: ToolLimits) -> None:
    """`st` is the fstat of the open descriptor: the checks hold for what is actually read."""
    if stat.S_ISDIR(st.st_mode):
        raise ToolError(f"'{rel}' is a directory; use Glob to see its contents")
    if not stat.S_ISREG(st.st_mode):
        raise ToolError(f"'{rel}' is not a regular file")
    if st.st_nlink > 1 and not limits.allow_hardlinks:
        raise ToolError(
            f"'{rel}' has {st.st_nlink} hard links, so it may be the same file as one outside "
            "the project; refused (an administrator can allow hard links for this project)"
        )


def open_entry(dir_fd: int, name: str, rel: str, limits: ToolLimits) -> IO[bytes]:
    """Open a regular file found by a walk, by name relative to its directory's descriptor."""
    try:
        fd = os.open(name, _BASE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise ToolError(f"cannot open '{rel}': {exc.strerror}") from None
    try:
        check_regular(os.fstat(fd), rel, limits)
        return os.fdopen(fd, "rb")
    except BaseException:
        with contextlib.suppress(OSError):
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
