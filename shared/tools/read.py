"""read_file: a text file's lines with their numbers, in pages."""

from __future__ import annotations

import os
from pathlib import Path

from shared.tools.sandbox import (
    BINARY_SNIFF_BYTES,
    ToolError,
    ToolLimits,
    iter_lines,
    open_regular,
    resolve,
)
from shared.tools.schemas import Args


def read_file(root: Path, args: Args, limits: ToolLimits) -> str:
    real, rel = resolve(root, args["path"], limits)
    start, end = args["start_line"], args["end_line"]
    if start is not None and end is not None and end < start:
        raise ToolError("read_file: end_line must be >= start_line")
    first = start or 1
    last = first + limits.max_read_lines - 1
    if end is not None:
        last = min(last, end)
    with open_regular(real, rel) as f:
        size = os.fstat(f.fileno()).st_size
        large = size > limits.max_file_bytes
        if large and start is None and end is None:
            raise ToolError(
                f"'{rel}' is {size} bytes (limit {limits.max_file_bytes}); "
                "read it in parts with start_line/end_line, or use search_files"
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
            if total >= first and total <= last:
                shown.append((total, text))
    if total == 0:
        return f"File: {rel} (empty file)"
    of_total = f"of {total}" if complete else "of more (large file; total not counted)"
    if not shown:
        raise ToolError(f"start_line {first} is past the end of '{rel}' ({total} lines)")
    shown_last = shown[-1][0]
    width = len(str(shown_last))
    out = [f"File: {rel} (lines {first}-{shown_last} {of_total})"]
    out += [f"{n:>{width}}| {text}" for n, text in shown]
    wanted_more = end is None or end > shown_last
    if wanted_more and (not complete or shown_last < total):
        out.append(f"[more lines follow; call read_file with start_line={shown_last + 1}]")
    return "\n".join(out)
