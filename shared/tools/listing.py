"""Walking the project tree by descriptor (sorted, never through links, time-boxed) and Glob."""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from shared.tools.sandbox import NOISE_DIRS, Opened, Project, ToolError, denied, unsafe
from shared.tools.schemas import Args

_MAX_BRACE_EXPANSIONS = 64


@dataclass
class Budget:
    """Wall-clock budget shared by a directory walk and the matching that consumes it."""

    deadline: float
    expired: bool = False

    def left(self) -> float:
        remaining = self.deadline - time.monotonic()
        self.expired = self.expired or remaining <= 0
        return remaining


@dataclass(frozen=True)
class Entry:
    dir_fd: int  # the open directory holding it: valid until the walk moves on
    name: str
    rel: str  # relative to the project root
    sub: tuple[str, ...]  # components relative to the walk base, for glob matching
    is_dir: bool
    is_link: bool


@dataclass
class _Frame:
    fd: int
    sub: tuple[str, ...]
    subdirs: list[str] = field(default_factory=list)
    listed: bool = False


def walk(project: Project, base: Opened, budget: Budget, depth: int | None) -> Iterator[Entry]:
    """Each directory's entries (sorted), then its subdirectories, depth-first. Directories are
    opened by name relative to their parent's descriptor with O_NOFOLLOW, so a directory swapped
    for a link mid-walk is skipped, never followed. Yields nothing denied or odd. Takes over
    `base.fd`."""
    globs = project.limits.deny_globs
    stack = [_Frame(base.fd, ())]
    try:
        while stack and budget.left() > 0:
            top = stack[-1]
            if not top.listed:
                top.listed = True
                yield from _list(top, base.parts, globs, depth)
                top.subdirs.reverse()
            if not top.subdirs:
                os.close(stack.pop().fd)
                continue
            name = top.subdirs.pop()
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(name, flags, dir_fd=top.fd)
            except OSError:
                continue  # gone, or swapped for a link since it was listed
            stack.append(_Frame(fd, (*top.sub, name)))
    finally:
        for frame in stack:
            with contextlib.suppress(OSError):
                os.close(frame.fd)


def _list(
    frame: _Frame, base_parts: tuple[str, ...], globs: tuple[str, ...], depth: int | None
) -> Iterator[Entry]:
    try:
        with os.scandir(frame.fd) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    for e in entries:
        parts = (*frame.sub, e.name)
        if unsafe(e.name) or "\\" in e.name:
            continue  # unaddressable by the tools, and bidi tricks confuse readers
        if denied((*base_parts, *parts), globs):
            continue
        try:
            is_link = e.is_symlink()
            is_dir = not is_link and e.is_dir(follow_symlinks=False)
        except OSError:
            continue
        yield Entry(frame.fd, e.name, "/".join((*base_parts, *parts)), parts, is_dir, is_link)
        if is_dir and e.name not in NOISE_DIRS and (depth is None or len(parts) < depth):
            frame.subdirs.append(e.name)


def expand_braces(pattern: str) -> list[str]:
    """`*.{ts,tsx}` -> `*.ts`, `*.tsx` (as ripgrep's globs do); bounded in count."""
    out, todo = [], [pattern]
    while todo:
        pat = todo.pop()
        close = pat.find("}")
        open_ = pat.rfind("{", 0, close) if close >= 0 else -1
        if open_ < 0:
            out.append(pat)
        else:
            head, body, tail = pat[:open_], pat[open_ + 1 : close], pat[close + 1 :]
            todo.extend(f"{head}{alt}{tail}" for alt in reversed(body.split(",")))
        if len(out) + len(todo) > _MAX_BRACE_EXPANSIONS:
            raise ToolError(f"glob has too many {{...}} alternatives (max {_MAX_BRACE_EXPANSIONS})")
    return out


def glob_parts(pattern: str, what: str) -> list[tuple[str, ...]]:
    """A glob as component tuples, one per brace alternative."""
    if unsafe(pattern) or pattern.startswith(("/", "~")) or "\\" in pattern:
        raise ToolError(f"{what} must be a relative '/'-separated glob without control characters")
    result = []
    for alt in expand_braces(pattern):
        parts = tuple(p for p in alt.split("/") if p not in ("", "."))
        if ".." in parts:
            raise ToolError(f"{what} must not contain '..'")
        result.append(parts or ("**",))
    return result


def glob_match(pat: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    @functools.cache  # memoised so stacked '**' segments stay polynomial
    def match(i: int, j: int) -> bool:
        if i == len(pat):
            return j == len(parts)
        if pat[i] == "**":
            return any(match(i + 1, k) for k in range(j, len(parts) + 1))
        return j < len(parts) and fnmatchcase(parts[j], pat[i]) and match(i + 1, j + 1)

    return match(0, 0)


def glob_tool(project: Project, args: Args) -> str:
    pats = glob_parts(args["pattern"], "pattern")
    base = project.open(args["path"])
    if not base.is_dir:
        os.close(base.fd)
        raise ToolError(f"'{base.rel}' is not a directory")
    limits = project.limits
    budget = Budget(time.monotonic() + limits.search_timeout_s)
    deepest = [None if "**" in p else len(p) for p in pats]  # without '**' nothing deeper
    depth = None if None in deepest else max(d for d in deepest if d is not None)
    found = sorted(
        e.rel + ("/" if e.is_dir else "")
        for e in walk(project, base, budget, depth)
        if any(glob_match(p, e.sub) for p in pats) and (not e.is_link or project.reaches(e.rel))
    )
    notes = []
    if budget.expired:
        notes.append("[listing stopped at the time budget; results may be incomplete]")
    if len(found) > limits.max_results:
        notes.append(
            f"[showing the first {limits.max_results} of {len(found)} entries; "
            f"{len(found) - limits.max_results} left out. Narrow `path` or `pattern`]"
        )
    if not found:
        return "\n".join([f"No files found in '{base.rel}' matching '{args['pattern']}'.", *notes])
    return "\n".join([*found[: limits.max_results], *notes])
