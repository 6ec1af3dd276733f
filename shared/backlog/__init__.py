"""autocoder's feature backlog (`features.db`): its tools for the model, and safe access."""

from shared.backlog.store import DB_NAME, NoBacklog, has_backlog, open_backlog
from shared.backlog.tools import (
    BACKLOG_TOOL_NAMES,
    READ_TOOLS,
    WRITE_TOOLS,
    WRITES_DISABLED,
    backlog_schemas,
    run_backlog_tool,
)

__all__ = [
    "BACKLOG_TOOL_NAMES",
    "DB_NAME",
    "READ_TOOLS",
    "WRITES_DISABLED",
    "WRITE_TOOLS",
    "NoBacklog",
    "backlog_schemas",
    "has_backlog",
    "open_backlog",
    "run_backlog_tool",
]
