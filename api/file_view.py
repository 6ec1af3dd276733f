"""Lines of a project file for the page's read-only viewer, read through the tools' sandbox.

The viewer must never show what the model could not read, so it reads with the very function
behind the model's `Read` tool (same confinement, deny-list, hard-link, binary and size checks,
limits built from the same settings) instead of opening files itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from shared.config import Settings
from shared.errors import AssistantError, Forbidden, InvalidInput, NotFound
from shared.models import Project
from shared.projects import project_root
from shared.tools import ToolError, limits_from_settings
from shared.tools import read_lines as read_tool_lines


@dataclass(frozen=True)
class FileLines:
    path: str  # as the sandbox displays it: relative to the project root
    start: int
    end: int
    total: int | None  # None when the file is too large to count
    lines: list[tuple[int, str]]


# The sandbox's refusals, by the reason it gives; anything else is a plain 400.
_REFUSALS: tuple[tuple[re.Pattern[str], type[AssistantError]], ...] = (
    (re.compile(r"does not exist"), NotFound),
    (re.compile(r"not allowed|outside the project|escapes the project|hard link"), Forbidden),
)


def read_lines(
    project: Project, path: str, start: int, end: int | None, settings: Settings
) -> FileLines:
    """Lines `start`..`end` (1-based, inclusive; to the tool's page size when `end` is None)."""
    root: Path = project_root(project)
    limit = None if end is None else end - start + 1
    limits = limits_from_settings(settings, project.allow_hardlinks)
    try:
        got = read_tool_lines(root, path, start, limit, limits)
    except ToolError as exc:
        message = str(exc)
        error = next((cls for rx, cls in _REFUSALS if rx.search(message)), InvalidInput)
        raise error(message) from None
    last = got.lines[-1][0] if got.lines else start - 1
    return FileLines(got.path, start, last, got.total, got.lines)
