"""Grep: a regular expression over file contents, bounded in memory, time and output.

The engine is RE2 (google-re2): linear time in the text searched, no backtracking, repeat
counts capped by its parser (1000), and a memory budget per pattern (`RE2_MAX_MEM`) it refuses
to exceed. So no pattern, however written (verbose mode included), can take more than a bounded
amount of memory or time; its syntax is ripgrep's, which is what Claude Code's Grep speaks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import re2

from shared.tools.listing import Budget, glob_match, glob_parts, walk
from shared.tools.sandbox import BINARY_SNIFF_BYTES, Project, ToolError, open_entry
from shared.tools.schemas import Args

MAX_PATTERN_CHARS = 1000
RE2_MAX_MEM = 2 << 20
_SNIPPET_CHARS = 300
FILE_TYPES: dict[str, tuple[str, ...]] = {
    "py": ("*.py", "*.pyi"), "js": ("*.js", "*.jsx", "*.mjs", "*.cjs"),
    "ts": ("*.ts", "*.tsx", "*.mts", "*.cts"), "go": ("*.go",), "rust": ("*.rs",),
    "java": ("*.java",), "c": ("*.c", "*.h"),
    "cpp": ("*.cpp", "*.cc", "*.cxx", "*.hpp", "*.hh", "*.h"),
    "rb": ("*.rb",), "php": ("*.php",), "sh": ("*.sh", "*.bash", "*.zsh"),
    "html": ("*.html", "*.htm"), "css": ("*.css", "*.scss", "*.sass", "*.less"),
    "md": ("*.md", "*.markdown"), "json": ("*.json",), "yaml": ("*.yaml", "*.yml"),
    "toml": ("*.toml",), "sql": ("*.sql",), "txt": ("*.txt",),
}  # fmt: skip


def compile_pattern(pattern: str, ignore_case: bool) -> Any:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ToolError(f"regular expression is too long (max {MAX_PATTERN_CHARS} characters)")
    options = re2.Options()
    options.max_mem = RE2_MAX_MEM
    options.case_sensitive = not ignore_case
    options.log_errors = False  # the reason goes back to the model, not to stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "unknown error"
        reason = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        if "too large" in reason:
            reason += " (the pattern needs more than the engine's memory budget; simplify it)"
        raise ToolError(
            f"invalid regular expression: {reason} (ripgrep/RE2 syntax: no look-around, "
            "no back-references, no verbose mode, repeat counts up to 1000)"
        ) from None
    finally:
        # The module keeps compiled patterns in a cache; a hostile one must not stay there.
        re2.purge()


def _snippet(line: str, at: int) -> str:
    if len(line.rstrip()) <= _SNIPPET_CHARS:
        return line.rstrip()  # indentation kept, as ripgrep shows it
    stripped = line.strip()
    # Centre long lines (minified code) on the match rather than always showing their start.
    at = max(0, at - (len(line) - len(line.lstrip())))
    begin = max(0, min(at - _SNIPPET_CHARS // 3, len(stripped) - _SNIPPET_CHARS))
    text = stripped[begin : begin + _SNIPPET_CHARS]
    return ("…" if begin else "") + text + ("…" if begin + _SNIPPET_CHARS < len(stripped) else "")


def _file_filter(glob: str | None, type_: str | None) -> Callable[[tuple[str, ...]], bool]:
    checks: list[Callable[[tuple[str, ...]], bool]] = []
    if glob:
        pats = glob_parts(glob, "glob")
        if "/" in glob:
            checks.append(lambda parts: any(glob_match(p, parts) for p in pats))
        else:  # like ripgrep: a bare glob names files
            checks.append(lambda parts: any(fnmatchcase(parts[-1], p[-1]) for p in pats))
    if type_:
        if type_ not in FILE_TYPES:
            raise ToolError(f"unknown file type {type_[:32]!r}; known: {', '.join(FILE_TYPES)}")
        names = FILE_TYPES[type_]
        checks.append(lambda parts: any(fnmatchcase(parts[-1], n) for n in names))
    return lambda parts: all(check(parts) for check in checks)


def _files(project: Project, raw: str, args: Args, budget: Budget) -> tuple[str, Iterator[Any]]:
    """(display path of `raw`, an iterator of (display path, open file or ToolError))."""
    wanted = _file_filter(args["glob"], args["type"])
    base = project.open(raw)
    if not base.is_dir:
        os.close(base.fd)
        return base.rel, iter([(base.rel, _open_single(project, raw))])

    def files() -> Iterator[Any]:
        for e in walk(project, base, budget, None):
            if not e.is_dir and not e.is_link and wanted(e.sub):
                try:
                    yield e.rel, open_entry(e.dir_fd, e.name, e.rel, project.limits)
                except ToolError as exc:
                    yield e.rel, exc

    return base.rel, files()


def _open_single(project: Project, raw: str) -> Any:
    try:
        return project.open_file(raw)[0]
    except ToolError as exc:
        return exc


def grep_tool(project: Project, args: Args) -> str:
    limits = project.limits
    rx = compile_pattern(args["pattern"], args["-i"])
    out = _Output(
        mode=args["output_mode"],
        cap=min(args["head_limit"] or limits.max_results, limits.max_results),
        after=args["-A"] if args["-A"] is not None else (args["-C"] or 0),
        before=args["-B"] if args["-B"] is not None else (args["-C"] or 0),
        numbers=args["-n"],
    )
    budget = Budget(time.monotonic() + limits.search_timeout_s)
    rel, files = _files(project, args["path"], args, budget)
    for path, f in files:
        if isinstance(f, ToolError):
            out.skipped_links += "hard links" in str(f)
            out.skipped_binary += "hard links" not in str(f)
            continue
        with f:
            data = f.read(limits.max_file_bytes + 1)
        if len(data) > limits.max_file_bytes:
            out.skipped_large += 1
            continue
        if b"\0" in data[:BINARY_SNIFF_BYTES]:
            out.skipped_binary += 1
            continue
        out.search(rx, path, data.split(b"\n"), budget)
        if budget.expired or out.capped:
            break
        out.searched += 1
    if budget.expired and not out.lines and out.searched == 0:
        raise ToolError(
            f"search timed out after {limits.search_timeout_s}s before any file was searched; "
            "narrow `path`/`glob`"
        )
    return out.report(rel, limits.max_file_bytes, limits.search_timeout_s, budget.expired)


@dataclass
class _Output:
    mode: str
    cap: int
    after: int
    before: int
    numbers: bool
    lines: list[str] = field(default_factory=list)
    searched: int = 0
    skipped_large: int = 0
    skipped_binary: int = 0
    skipped_links: int = 0
    capped: bool = False

    def _add(self, line: str) -> bool:
        if len(self.lines) >= self.cap:
            self.capped = True
            return False
        self.lines.append(line)
        return True

    def search(self, rx: Any, path: str, lines: list[bytes], budget: Budget) -> None:
        if lines and not lines[-1]:
            lines.pop()  # the empty string after a final newline is not a line
        hits, printed, pending_after = 0, -1, 0
        for i, raw in enumerate(lines):
            if budget.left() <= 0:
                return
            line = raw[:-1] if raw.endswith(b"\r") else raw
            m = rx.search(line)
            if m is not None:
                hits += 1
                if self.mode == "files_with_matches":
                    break
            if self.mode != "content":
                continue
            if m is None:
                if pending_after > 0:
                    pending_after -= 1
                    if not self._add(self._line(path, i, line, "-", 0)):
                        return
                    printed = i
                continue
            first = max(i - self.before, printed + 1)
            context = self.before or self.after
            if context and self.lines and (printed < 0 or first > printed + 1):
                self.lines.append("--")
            for j in range(first, i):
                if not self._add(self._line(path, j, lines[j].rstrip(b"\r"), "-", 0)):
                    return
            at = len(line[: m.start()].decode("utf-8", errors="replace"))
            if not self._add(self._line(path, i, line, ":", at)):
                return
            printed, pending_after = i, self.after
        if hits and self.mode != "content":
            self._add(path if self.mode == "files_with_matches" else f"{path}:{hits}")

    def _line(self, path: str, i: int, line: bytes, sep: str, at: int) -> str:
        text = _snippet(line.decode("utf-8", errors="replace"), at)
        return f"{path}{sep}{i + 1}{sep}{text}" if self.numbers else f"{path}{sep}{text}"

    def report(self, rel: str, max_bytes: int, timeout: float, expired: bool) -> str:
        notes = []
        if self.capped:
            notes.append(f"[output stopped at {self.cap} lines; narrow pattern, path or glob]")
        if expired:
            notes.append(
                f"[search stopped at the {timeout}s time budget after {self.searched} files; "
                "results are incomplete. Narrow `path`/`glob`]"
            )
        if self.skipped_large:
            notes.append(f"[{self.skipped_large} file(s) over {max_bytes} bytes not searched]")
        if self.skipped_binary:
            notes.append(f"[{self.skipped_binary} binary or unreadable file(s) skipped]")
        if self.skipped_links:
            notes.append(
                f"[{self.skipped_links} file(s) with several hard links skipped; an "
                "administrator can allow them for this project]"
            )
        if not self.lines:
            return "\n".join([f"No matches in '{rel}' ({self.searched} files searched).", *notes])
        return "\n".join([*self.lines, *notes])
