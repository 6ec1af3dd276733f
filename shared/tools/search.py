"""search_files: a regular expression over file contents, bounded in time and results."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path

import regex

from shared.tools.listing import Budget, Entry, glob_match, glob_parts, walk
from shared.tools.sandbox import BINARY_SNIFF_BYTES, ToolError, ToolLimits, open_regular, resolve
from shared.tools.schemas import Args

_MAX_PATTERN_CHARS = 1000
# The regex module expands counted repeats at compile time, and compile() has no timeout:
# `a{4294967294}` would pin a worker, so the product of repeat counts is bounded up front.
_MAX_REPEAT_PRODUCT = 100_000
_REPEAT_RE = regex.compile(r"\{(\d+)(?:,(\d*))?\}")
_SNIPPET_CHARS = 300


def _compile(pattern: str, case_sensitive: bool) -> regex.Pattern[str]:
    if len(pattern) > _MAX_PATTERN_CHARS:
        raise ToolError(f"regular expression is too long (max {_MAX_PATTERN_CHARS} characters)")
    product = 1
    for m in _REPEAT_RE.finditer(pattern):
        product *= max(int(m[1]), int(m[2] or 0)) or 1
        if product > _MAX_REPEAT_PRODUCT:
            raise ToolError("regular expression repeat counts are too large")
    try:
        return regex.compile(pattern, 0 if case_sensitive else regex.IGNORECASE)
    except regex.error as exc:
        raise ToolError(f"invalid regular expression: {exc}") from None


def _snippet(line: str, at: int) -> str:
    stripped = line.strip()
    if len(stripped) <= _SNIPPET_CHARS:
        return stripped
    # Centre long lines (minified code) on the match rather than always showing their start.
    at = max(0, at - (len(line) - len(line.lstrip())))
    begin = max(0, min(at - _SNIPPET_CHARS // 3, len(stripped) - _SNIPPET_CHARS))
    text = stripped[begin : begin + _SNIPPET_CHARS]
    return ("…" if begin else "") + text + ("…" if begin + _SNIPPET_CHARS < len(stripped) else "")


def _glob_filter(glob: str | None) -> Callable[[tuple[str, ...]], bool]:
    if not glob:
        return lambda _parts: True
    pat = glob_parts(glob, "glob")
    if "/" in glob:
        return lambda parts: glob_match(pat, parts)
    return lambda parts: fnmatchcase(parts[-1], pat[-1])  # like ripgrep: a bare glob names files


def search_files(root: Path, args: Args, limits: ToolLimits) -> str:
    rx = _compile(args["pattern"], args["case_sensitive"])
    wanted = _glob_filter(args["glob"])
    base, rel = resolve(root, args["path"], limits)
    budget = Budget(time.monotonic() + limits.search_timeout_s)
    if base.is_dir():
        files: Iterator[Entry] = (
            e
            for e in walk(root, base, limits, budget, None)
            if not e.is_dir and not e.is_link and wanted(e.sub)
        )
    else:
        files = iter([Entry(base, rel, (base.name,), False, False)])
    hits: list[str] = []
    searched = skipped_large = skipped_binary = 0
    capped = False
    for entry in files:
        try:
            with open_regular(entry.path, entry.rel) as f:
                data = f.read(limits.max_file_bytes + 1)
        except (ToolError, OSError):
            skipped_binary += 1
            continue
        if len(data) > limits.max_file_bytes:
            skipped_large += 1
            continue
        if b"\0" in data[:BINARY_SNIFF_BYTES]:
            skipped_binary += 1
            continue
        for n, line in enumerate(data.decode("utf-8", errors="replace").split("\n"), start=1):
            remaining = budget.left()
            if remaining <= 0:
                break
            try:
                # The per-call timeout is what actually interrupts a backtracking blow-up.
                m = rx.search(line.rstrip("\r"), timeout=remaining)
            except TimeoutError:
                budget.expired = True
                break
            if m is not None:
                hits.append(f"{entry.rel}:{n}: {_snippet(line, m.start())}")
                if len(hits) >= limits.max_results:
                    capped = True
                    break
        if budget.expired or capped:
            break
        searched += 1
    if budget.expired and not hits and searched == 0:
        raise ToolError(
            f"search timed out after {limits.search_timeout_s}s before any file was searched; "
            "simplify the regular expression or narrow `path`/`glob`"
        )
    notes = []
    if capped:
        notes.append(f"[stopped at {limits.max_results} matches; narrow pattern, path or glob]")
    if budget.expired:
        notes.append(
            f"[search stopped at the {limits.search_timeout_s}s time budget after {searched} "
            "files; results are incomplete. Narrow `path`/`glob` or simplify the pattern]"
        )
    if skipped_large:
        notes.append(f"[{skipped_large} file(s) over {limits.max_file_bytes} bytes not searched]")
    if skipped_binary:
        notes.append(f"[{skipped_binary} binary or unreadable file(s) skipped]")
    if not hits:
        return "\n".join([f"No matches in '{rel}' ({searched} files searched).", *notes])
    return "\n".join([*hits, *notes])
