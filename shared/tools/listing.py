"""Walking the project tree (sorted, never through symlinks, time-boxed) and list_files."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from shared.tools.sandbox import NOISE_DIRS, ToolError, ToolLimits, denied, resolve, unsafe
from shared.tools.schemas import Args


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
    path: Path
    rel: str  # relative to the project root
    sub: tuple[str, ...]  # components relative to the walk base, for glob matching
    is_dir: bool
    is_link: bool


def walk(
    root: Path, base: Path, limits: ToolLimits, budget: Budget, depth: int | None
) -> Iterator[Entry]:
    """Depth-first, sorted, never descending through symlinks; yields nothing denied or odd."""
    base_parts = base.relative_to(root).parts
    stack: list[tuple[Path, tuple[str, ...]]] = [(base, ())]
    while stack and budget.left() > 0:
        directory, sub = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for e in entries:
            parts = (*sub, e.name)
            if unsafe(e.name) or "\\" in e.name:
                continue  # unaddressable through resolve, and bidi tricks confuse readers
            if denied((*base_parts, *parts), limits.deny_globs):
                continue
            try:
                is_link = e.is_symlink()
                is_dir = not is_link and e.is_dir(follow_symlinks=False)
                target = Path(e.path).resolve(strict=True) if is_link else None
            except (OSError, RuntimeError):
                continue
            if target is not None and (
                not target.is_relative_to(root)
                or denied(target.relative_to(root).parts, limits.deny_globs)
            ):
                continue  # links out of the project (or onto secrets) are invisible
            yield Entry(Path(e.path), "/".join((*base_parts, *parts)), parts, is_dir, is_link)
            if is_dir and e.name not in NOISE_DIRS and (depth is None or len(parts) < depth):
                subdirs.append((Path(e.path), parts))
        stack.extend(reversed(subdirs))


def glob_parts(pattern: str, what: str) -> tuple[str, ...]:
    if unsafe(pattern) or pattern.startswith(("/", "~")) or "\\" in pattern:
        raise ToolError(f"{what} must be a relative '/'-separated glob without control characters")
    parts = tuple(p for p in pattern.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ToolError(f"{what} must not contain '..'")
    return parts or ("**",)


def glob_match(pat: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    @functools.cache  # memoised so stacked '**' segments stay polynomial
    def match(i: int, j: int) -> bool:
        if i == len(pat):
            return j == len(parts)
        if pat[i] == "**":
            return any(match(i + 1, k) for k in range(j, len(parts) + 1))
        return j < len(parts) and fnmatchcase(parts[j], pat[i]) and match(i + 1, j + 1)

    return match(0, 0)


def list_files(root: Path, args: Args, limits: ToolLimits) -> str:
    pat = glob_parts(args["pattern"], "pattern")
    base, rel = resolve(root, args["path"], limits)
    if not base.is_dir():
        raise ToolError(f"'{rel}' is not a directory")
    budget = Budget(time.monotonic() + limits.search_timeout_s)
    depth = None if "**" in pat else len(pat)  # without '**' nothing deeper can match
    found = sorted(
        e.rel + ("/" if e.is_dir else "")
        for e in walk(root, base, limits, budget, depth)
        if glob_match(pat, e.sub)
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
        return "\n".join([f"No entries in '{rel}' match '{args['pattern']}'.", *notes])
    return "\n".join([*found[: limits.max_results], *notes])
