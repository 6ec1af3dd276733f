"""Read-only project tools for the assistant: Claude Code's `Read`, `Glob` and `Grep`.

Everything here treats tool input as hostile: every path is opened inside the project's real
directory (sandbox.py) and secret-looking files are never opened. `run_tool` is blocking (disk
I/O plus regex work); async callers should run it in a worker thread.

Other modules refer to the tools by the names defined here (`READ`, `GLOB`, `GREP`,
`TOOL_NAMES`, and `LEGACY_TOOL_NAMES` for conversations stored before the rename).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shared.tools.limits import DEFAULT_LIMITS, DENY_GLOBS, ToolLimits, limits_from_settings
from shared.tools.listing import glob_tool
from shared.tools.read import FileLines, read_lines, read_tool
from shared.tools.sandbox import NOISE_DIRS, Project, ToolError
from shared.tools.schemas import (
    GLOB,
    GREP,
    LEGACY_TOOL_NAMES,
    READ,
    SPECS,
    TOOL_NAMES,
    TOOL_SCHEMAS,
    Args,
    validate,
)
from shared.tools.search import grep_tool

__all__ = [
    "DEFAULT_LIMITS",
    "DENY_GLOBS",
    "GLOB",
    "GREP",
    "LEGACY_TOOL_NAMES",
    "NOISE_DIRS",
    "READ",
    "TOOL_NAMES",
    "TOOL_SCHEMAS",
    "FileLines",
    "ToolError",
    "ToolLimits",
    "limits_from_settings",
    "read_lines",
    "run_tool",
]

_HANDLERS: dict[str, Callable[[Project, Args], str]] = {
    READ: read_tool,
    GLOB: glob_tool,
    GREP: grep_tool,
}


def run_tool(root: Path, name: str, tool_input: object, limits: ToolLimits = DEFAULT_LIMITS) -> str:
    """Run one read-only tool confined to project `root`; return the text result or raise ToolError.

    Blocking (file I/O and regex matching): call it from a thread in async code.
    """
    handler = _HANDLERS.get(name) if isinstance(name, str) else None
    if handler is None:
        raise ToolError(f"unknown tool {str(name)[:64]!r}; available tools: {', '.join(SPECS)}")
    args = validate(name, tool_input)
    with Project(root, limits) as project:
        try:
            text = handler(project, args)
        except OSError as exc:  # str(exc) would embed absolute host paths
            raise ToolError(f"{name} failed: {exc.strerror or 'I/O error'}") from exc
    return _truncate(text, limits.max_output_chars)


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    note = f"\n[truncated: output exceeded {limit} characters; request a smaller range]"
    return text[: max(0, limit - len(note))] + note
