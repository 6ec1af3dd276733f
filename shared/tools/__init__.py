"""Read-only project tools (read_file, list_files, search_files) for the assistant.

Everything here treats tool input as hostile: every path is confined to the project's real
directory (sandbox.py) and secret-looking files are never opened. `run_tool` is blocking (disk
I/O plus CPU-bound regex work); async callers should run it in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shared.tools.listing import list_files
from shared.tools.read import read_file
from shared.tools.sandbox import DEFAULT_LIMITS, NOISE_DIRS, ToolError, ToolLimits, real_root
from shared.tools.schemas import SPECS, TOOL_SCHEMAS, Args, validate
from shared.tools.search import search_files

__all__ = ["DEFAULT_LIMITS", "NOISE_DIRS", "TOOL_SCHEMAS", "ToolError", "ToolLimits", "run_tool"]

_HANDLERS: dict[str, Callable[[Path, Args, ToolLimits], str]] = {
    "read_file": read_file,
    "list_files": list_files,
    "search_files": search_files,
}


def run_tool(root: Path, name: str, tool_input: object, limits: ToolLimits = DEFAULT_LIMITS) -> str:
    """Run one read-only tool confined to project `root`; return the text result or raise ToolError.

    Blocking (file I/O and CPU-bound regex matching): call it from a thread in async code.
    """
    handler = _HANDLERS.get(name) if isinstance(name, str) else None
    if handler is None:
        raise ToolError(f"unknown tool {str(name)[:64]!r}; available tools: {', '.join(SPECS)}")
    args = validate(name, tool_input)
    root_real = real_root(root)
    try:
        text = handler(root_real, args, limits)
    except OSError as exc:  # str(exc) would embed absolute host paths
        raise ToolError(f"{name} failed: {exc.strerror or 'I/O error'}") from exc
    return _truncate(text, limits.max_output_chars)


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    note = f"\n[truncated: output exceeded {limit} characters; request a smaller range]"
    return text[: max(0, limit - len(note))] + note
