"""Read-only project tools (read_file, list_files, search_files) for the assistant.

Everything here treats tool input as hostile: the model may have been prompt-injected by the very
files it reads, so every path is confined to the project's real directory and secret-looking files
are never opened.  `run_tool` is blocking (disk I/O plus CPU-bound regex work); async callers should
run it in a worker thread.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import time
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase, translate
from pathlib import Path
from typing import IO, Any

import regex

__all__ = ["DEFAULT_LIMITS", "NOISE_DIRS", "TOOL_SCHEMAS", "ToolError", "ToolLimits", "run_tool"]


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


_BINARY_SNIFF_BYTES = 8192
_MAX_PATH_CHARS = 1024
_MAX_PATTERN_CHARS = 1000
# The regex module expands counted repeats at compile time, and compile() has no timeout:
# `a{4294967294}` would pin a worker, so the product of repeat counts is bounded up front.
_MAX_REPEAT_PRODUCT = 100_000
_REPEAT_RE = regex.compile(r"\{(\d+)(?:,(\d*))?\}")
_SNIPPET_CHARS = 300
# Cc/Cf/Cs/Co cover NUL, escapes, bidi overrides (U+202E), zero-width chars and undecodable bytes
# (surrogate-escaped); none belong in a path the model should be able to type or cite.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})

_Args = dict[str, Any]


def _prop(type_: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "description": description, **extra}


_PATH_HINT = "Relative to the project root, '/'-separated"
_SPECS: dict[str, tuple[str, dict[str, dict[str, Any]], tuple[str, ...]]] = {
    "read_file": (
        "Read a UTF-8 text file from the project. Lines are prefixed with 1-based line numbers "
        "('  12| text'). Long files are returned in pages; pass start_line/end_line for more.",
        {
            "path": _prop("string", f"File path. {_PATH_HINT}."),
            "start_line": _prop("integer", "First line to return (1-based).", minimum=1),
            "end_line": _prop("integer", "Last line to return (inclusive).", minimum=1),
        },
        ("path",),
    ),
    "list_files": (
        "List project files and directories matching a glob ('*' within one path component, "
        "'**' any depth). Directories end with '/'. Paths are relative to the project root.",
        {
            "pattern": _prop("string", "Glob relative to `path`.", default="**/*"),
            "path": _prop("string", f"Directory to list. {_PATH_HINT}.", default="."),
        },
        (),
    ),
    "search_files": (
        "Search file contents line by line with a regular expression (Python syntax). Returns "
        "'path:line: text' lines.",
        {
            "pattern": _prop("string", "Regular expression searched for in each line."),
            "path": _prop("string", f"File or directory to search. {_PATH_HINT}.", default="."),
            "glob": _prop(
                "string",
                "Only search files matching this glob: without '/' it matches file names, "
                "with '/' paths relative to `path`.",
            ),
            "case_sensitive": _prop("boolean", "Match case exactly.", default=True),
        },
        ("pattern",),
    ),
}

TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": props,
            "required": list(required),
            "additionalProperties": False,
        },
    }
    for name, (description, props, required) in _SPECS.items()
]


def run_tool(root: Path, name: str, tool_input: object, limits: ToolLimits = DEFAULT_LIMITS) -> str:
    """Run one read-only tool confined to project `root`; return the text result or raise ToolError.

    Blocking (file I/O and CPU-bound regex matching): call it from a thread in async code.
    """
    handler = _HANDLERS.get(name) if isinstance(name, str) else None
    if handler is None:
        raise ToolError(f"unknown tool {str(name)[:64]!r}; available tools: {', '.join(_SPECS)}")
    args = _validate(name, tool_input)
    root_real = _real_root(root)
    try:
        text = handler(root_real, args, limits)
    except OSError as exc:  # str(exc) would embed absolute host paths
        raise ToolError(f"{name} failed: {exc.strerror or 'I/O error'}") from exc
    return _truncate(text, limits.max_output_chars)


def _validate(name: str, tool_input: object) -> _Args:
    _, props, required = _SPECS[name]
    if not isinstance(tool_input, Mapping):
        raise ToolError(f"{name}: input must be a JSON object")
    unknown = [repr(k)[:64] for k in tool_input if k not in props]
    if unknown:
        allowed = ", ".join(props)
        raise ToolError(f"{name}: unknown argument(s) {', '.join(unknown)}; allowed: {allowed}")
    args: _Args = {}
    for key, schema in props.items():
        value = tool_input.get(key)
        if value is None:  # models sometimes send null for "not given"
            if key in required:
                raise ToolError(f"{name}: missing required argument '{key}'")
            args[key] = schema.get("default")
            continue
        kind = schema["type"]
        # bool is an int subclass, so `true` must not pass as a line number.
        ok = {
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
        }[kind]
        if not ok:
            article = "an" if kind == "integer" else "a"
            raise ToolError(f"{name}: argument '{key}' must be {article} {kind}")
        if kind == "integer" and value < schema.get("minimum", value):
            raise ToolError(f"{name}: argument '{key}' must be >= {schema['minimum']}")
        args[key] = value
    return args


def _real_root(root: Path) -> Path:
    try:
        real = Path(root).resolve(strict=True)
    except (OSError, RuntimeError):
        raise ToolError("the project directory is not available") from None
    if not real.is_dir():
        raise ToolError("the project directory is not available")
    return real


def _unsafe(text: str) -> bool:
    return any(unicodedata.category(ch) in _UNSAFE_CATEGORIES for ch in text)


@functools.cache
def _deny_regex(globs: tuple[str, ...]) -> re.Pattern[str]:
    # One alternation instead of len(globs) fnmatch calls per component: walks check every entry.
    return re.compile("|".join(translate(g.casefold()) for g in globs) or r"(?!)")


def _denied(parts: tuple[str, ...] | list[str], globs: tuple[str, ...]) -> bool:
    # Casefold so `.ENV` is caught on case-insensitive filesystems; NFC so lookalike spellings
    # of the same name compare equal.
    folded = [unicodedata.normalize("NFC", p).casefold() for p in parts if p not in ("", ".")]
    rx = _deny_regex(globs)
    return any(rx.match(c) for c in [*folded, "/".join(folded)])


def _resolve(root: Path, raw: str, limits: ToolLimits) -> tuple[Path, str]:
    """Map a model-supplied path to a real path inside `root`, plus its display form."""
    if not raw:
        raise ToolError("path must not be empty (use '.' for the project root)")
    if len(raw) > _MAX_PATH_CHARS:
        raise ToolError("path is too long")
    if _unsafe(raw):
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
        if _denied(cand.split("/"), limits.deny_globs):
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
        if _denied(parts, limits.deny_globs):
            raise ToolError(f"access to '{raw}' is not allowed (protected file)")
        return real, "/".join(parts) or "."
    raise ToolError(f"'{raw}' does not exist in the project")


def _open_regular(path: Path, rel: str) -> IO[bytes]:
    # O_NOFOLLOW narrows the swap-to-symlink race after _resolve; O_NONBLOCK keeps a FIFO from
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


def _iter_lines(f: IO[bytes], cap: int) -> Iterator[str]:
    """Yield decoded lines without their newline, keeping at most `cap` bytes of each in memory."""
    while line := f.readline(cap):
        cut = not line.endswith(b"\n") and len(line) == cap
        while cut and (rest := f.readline(cap)) and not rest.endswith(b"\n"):
            pass
        text = line.rstrip(b"\r\n").decode("utf-8", errors="replace")
        yield text + (" [line truncated]" if cut else "")


def _read_file(root: Path, args: _Args, limits: ToolLimits) -> str:
    real, rel = _resolve(root, args["path"], limits)
    start, end = args["start_line"], args["end_line"]
    if start is not None and end is not None and end < start:
        raise ToolError("read_file: end_line must be >= start_line")
    first = start or 1
    last = first + limits.max_read_lines - 1
    if end is not None:
        last = min(last, end)
    with _open_regular(real, rel) as f:
        size = os.fstat(f.fileno()).st_size
        large = size > limits.max_file_bytes
        if large and start is None and end is None:
            raise ToolError(
                f"'{rel}' is {size} bytes (limit {limits.max_file_bytes}); "
                "read it in parts with start_line/end_line, or use search_files"
            )
        if b"\0" in f.read(_BINARY_SNIFF_BYTES):
            raise ToolError(f"'{rel}' looks like a binary file; only text files can be read")
        f.seek(0)
        shown: list[tuple[int, str]] = []
        total, complete = 0, True
        for total, text in enumerate(_iter_lines(f, limits.max_output_chars), start=1):
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


@dataclass
class _Budget:
    """Wall-clock budget shared by a directory walk and the matching that consumes it."""

    deadline: float
    expired: bool = False

    def left(self) -> float:
        remaining = self.deadline - time.monotonic()
        self.expired = self.expired or remaining <= 0
        return remaining


@dataclass(frozen=True)
class _Entry:
    path: Path
    rel: str  # relative to the project root
    sub: tuple[str, ...]  # components relative to the walk base, for glob matching
    is_dir: bool
    is_link: bool


def _walk(
    root: Path, base: Path, limits: ToolLimits, budget: _Budget, depth: int | None
) -> Iterator[_Entry]:
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
            if _unsafe(e.name) or "\\" in e.name:
                continue  # unaddressable through _resolve, and bidi tricks confuse readers
            if _denied((*base_parts, *parts), limits.deny_globs):
                continue
            try:
                is_link = e.is_symlink()
                is_dir = not is_link and e.is_dir(follow_symlinks=False)
                target = Path(e.path).resolve(strict=True) if is_link else None
            except (OSError, RuntimeError):
                continue
            if target is not None and (
                not target.is_relative_to(root)
                or _denied(target.relative_to(root).parts, limits.deny_globs)
            ):
                continue  # links out of the project (or onto secrets) are invisible
            yield _Entry(Path(e.path), "/".join((*base_parts, *parts)), parts, is_dir, is_link)
            if is_dir and e.name not in NOISE_DIRS and (depth is None or len(parts) < depth):
                subdirs.append((Path(e.path), parts))
        stack.extend(reversed(subdirs))


def _glob_parts(pattern: str, what: str) -> tuple[str, ...]:
    if _unsafe(pattern) or pattern.startswith(("/", "~")) or "\\" in pattern:
        raise ToolError(f"{what} must be a relative '/'-separated glob without control characters")
    parts = tuple(p for p in pattern.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ToolError(f"{what} must not contain '..'")
    return parts or ("**",)


def _glob_match(pat: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    @functools.cache  # memoised so stacked '**' segments stay polynomial
    def match(i: int, j: int) -> bool:
        if i == len(pat):
            return j == len(parts)
        if pat[i] == "**":
            return any(match(i + 1, k) for k in range(j, len(parts) + 1))
        return j < len(parts) and fnmatchcase(parts[j], pat[i]) and match(i + 1, j + 1)

    return match(0, 0)


def _list_files(root: Path, args: _Args, limits: ToolLimits) -> str:
    pat = _glob_parts(args["pattern"], "pattern")
    base, rel = _resolve(root, args["path"], limits)
    if not base.is_dir():
        raise ToolError(f"'{rel}' is not a directory")
    budget = _Budget(time.monotonic() + limits.search_timeout_s)
    depth = None if "**" in pat else len(pat)  # without '**' nothing deeper can match
    found = sorted(
        e.rel + ("/" if e.is_dir else "")
        for e in _walk(root, base, limits, budget, depth)
        if _glob_match(pat, e.sub)
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
    pat = _glob_parts(glob, "glob")
    if "/" in glob:
        return lambda parts: _glob_match(pat, parts)
    return lambda parts: fnmatchcase(parts[-1], pat[-1])  # like ripgrep: a bare glob names files


def _search_files(root: Path, args: _Args, limits: ToolLimits) -> str:
    rx = _compile(args["pattern"], args["case_sensitive"])
    wanted = _glob_filter(args["glob"])
    base, rel = _resolve(root, args["path"], limits)
    budget = _Budget(time.monotonic() + limits.search_timeout_s)
    if base.is_dir():
        files: Iterator[_Entry] = (
            e
            for e in _walk(root, base, limits, budget, None)
            if not e.is_dir and not e.is_link and wanted(e.sub)
        )
    else:
        files = iter([_Entry(base, rel, (base.name,), False, False)])
    hits: list[str] = []
    searched = skipped_large = skipped_binary = 0
    capped = False
    for entry in files:
        try:
            with _open_regular(entry.path, entry.rel) as f:
                data = f.read(limits.max_file_bytes + 1)
        except (ToolError, OSError):
            skipped_binary += 1
            continue
        if len(data) > limits.max_file_bytes:
            skipped_large += 1
            continue
        if b"\0" in data[:_BINARY_SNIFF_BYTES]:
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


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    note = f"\n[truncated: output exceeded {limit} characters; request a smaller range]"
    return text[: max(0, limit - len(note))] + note


_HANDLERS: dict[str, Callable[[Path, _Args, ToolLimits], str]] = {
    "read_file": _read_file,
    "list_files": _list_files,
    "search_files": _search_files,
}
