"""Read: a text file's lines with their numbers, in pages.

`read_lines` is the public entry point for other readers (the web client's file viewer): the
same sandbox and caps as the model's `Read`, with the lines as data instead of text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shared.tools.limits import DEFAULT_LIMITS, ToolLimits
from shared.tools.sandbox import BINARY_SNIFF_BYTES, Project, ToolError, iter_lines
from shared.tools.schemas import READ, Args


@dataclass(frozen=True)
class FileLines:
    path: str  # relative to the project root, '/'-separated
    lines: list[tuple[int, str]]  # (1-based line number, text without its newline)
    total: int | None  # lines in the file; None when a large file was not counted to its end
    more: bool  # lines follow the last one shown (within what was asked for)


def read_lines(
    root: Path,
    file_path: str,
    offset: int | None = None,
    limit: int | None = None,
    limits: ToolLimits = DEFAULT_LIMITS,
) -> FileLines:
    """Lines `offset`.. (1-based; at most `limit`, and at most `limits.max_read_lines`) of a
    text file inside project `root`. Raises ToolError with a message safe to show."""
    with Project(root, limits) as project:
        return _read(project, file_path, offset, limit)


def _read(project: Project, raw: str, offset: int | None, limit: int | None) -> FileLines:
    limits = project.limits
    first = offset or 1
    count = min(limit or limits.max_read_lines, limits.max_read_lines)
    last = first + count - 1
    f, rel = project.open_file(raw)
    with f:
        size = os.fstat(f.fileno()).st_size
        large = size > limits.max_file_bytes
        if large and offset is None and limit is None:
            raise ToolError(
                f"'{rel}' is {size} bytes (limit {limits.max_file_bytes}); "
                "read it in parts with offset/limit, or use Grep"
            )
        if b"\0" in f.read(BINARY_SNIFF_BYTES):
            raise ToolError(f"'{rel}' looks like a binary file; only text files can be read")
        f.seek(0)
        shown: list[tuple[int, str]] = []
        total, complete = 0, True
        for total, text in enumerate(iter_lines(f, limits.max_output_chars), start=1):
            if total > last and large:  # counting to EOF of a huge file is not worth the I/O
                complete = False
                break
            if first <= total <= last:
                shown.append((total, text))
    if total and not shown:
        raise ToolError(f"offset {first} is past the end of '{rel}' ({total} lines)")
    shown_last = shown[-1][0] if shown else 0
    more = not complete or shown_last < total
    # Only worth a note when the caller asked for more than the cap let through.
    wanted_more = limit is None or shown_last < first + limit - 1
    return FileLines(rel, shown, total if complete else None, bool(shown) and more and wanted_more)


def read_tool(project: Project, args: Args) -> str:
    got = _read(project, args["file_path"], args["offset"], args["limit"])
    if not got.lines:
        return f"File: {got.path} (empty file)"
    first, last = got.lines[0][0], got.lines[-1][0]
    of_total = "of more (large file; total not counted)"
    if got.total is not None:
        of_total = f"of {got.total}"
    width = len(str(last))
    out = [f"File: {got.path} (lines {first}-{last} {of_total})"]
    out += [f"{n:>{width}}| {text}" for n, text in got.lines]
    if got.more:
        out.append(f"[more lines follow; call {READ} with offset={last + 1}]")
    return "\n".join(out)
