"""The backlog tools as the model sees them (autocoder's names and inputs) and their runner.

`feature_get_stats`, `feature_get_next` and `feature_get_for_regression` read the backlog;
`feature_create`, `feature_create_bulk` and `feature_skip` change it and are offered (and
run) only where an administrator enabled backlog writes for the project. Results are JSON, as
autocoder's own feature tools return them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.backlog import store
from shared.tools import DEFAULT_LIMITS, ToolError, ToolLimits

GET_STATS, GET_NEXT, GET_FOR_REGRESSION = (
    "feature_get_stats",
    "feature_get_next",
    "feature_get_for_regression",
)
CREATE, CREATE_BULK, SKIP = "feature_create", "feature_create_bulk", "feature_skip"
READ_TOOLS: tuple[str, ...] = (GET_STATS, GET_NEXT, GET_FOR_REGRESSION)
WRITE_TOOLS: tuple[str, ...] = (CREATE, CREATE_BULK, SKIP)
BACKLOG_TOOL_NAMES: frozenset[str] = frozenset(READ_TOOLS + WRITE_TOOLS)
WRITES_DISABLED = (
    "backlog changes are not enabled for this project; an administrator can allow them with "
    "`assistant projects set NAME --backlog-writes on`"
)
MAX_BULK = 100
LIMITS = {"category": 100, "name": 255, "description": 10_000, "step": 2_000, "steps": 50}

_FEATURE_PROPS: dict[str, Any] = {
    "category": {
        "type": "string",
        "description": "Feature category (e.g. 'Authentication', 'API', 'UI')",
    },
    "name": {"type": "string", "description": "Feature name"},
    "description": {"type": "string", "description": "What the feature should do, in detail"},
    "steps": {
        "type": "array",
        "items": {"type": "string"},
        "description": "Steps to implement or verify the feature",
    },
}
_FEATURE_SCHEMA = {"type": "object", "properties": _FEATURE_PROPS, "required": list(_FEATURE_PROPS)}


def _tool(
    name: str, description: str, props: dict[str, Any], required: list[str]
) -> dict[str, Any]:
    schema = {"type": "object", "properties": props, "required": required}
    return {"name": name, "description": description, "input_schema": schema}


SCHEMAS: dict[str, dict[str, Any]] = {
    GET_STATS: _tool(
        GET_STATS,
        "Progress of the project's feature backlog: passing, in_progress and total "
        "features, and the percentage passing.",
        {},
        [],
    ),
    GET_NEXT: _tool(
        GET_NEXT,
        "The next feature to build: the pending (not passing) feature with the lowest "
        "priority number, with its description and steps.",
        {},
        [],
    ),
    GET_FOR_REGRESSION: _tool(
        GET_FOR_REGRESSION,
        "Random passing features, to re-check for regressions.",
        {
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": 10,
                "default": 3,
                "description": "How many passing features to return (1-10)",
            }
        },
        [],
    ),
    CREATE: _tool(
        CREATE,
        "Add one feature to the backlog, after all others (only when the user asks).",
        _FEATURE_PROPS,
        list(_FEATURE_PROPS),
    ),
    CREATE_BULK: _tool(
        CREATE_BULK,
        "Add several features to the backlog at once, in order, after all others (only when "
        "the user asks).",
        {"features": {"type": "array", "items": _FEATURE_SCHEMA, "minItems": 1}},
        ["features"],
    ),
    SKIP: _tool(
        SKIP,
        "Move a pending feature to the end of the queue and clear its in-progress flag (when "
        "it is blocked); a passing feature cannot be skipped.",
        {"feature_id": {"type": "integer", "minimum": 1, "description": "The feature's id"}},
        ["feature_id"],
    ),
}


def backlog_schemas(writes: bool) -> list[dict[str, Any]]:
    """The tool definitions to offer, in a fixed order (a stable, cacheable prefix)."""
    return [SCHEMAS[n] for n in READ_TOOLS + (WRITE_TOOLS if writes else ())]


def _text(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ToolError(f"'{field}' must be a non-empty string")
    if len(value) > limit:
        raise ToolError(f"'{field}' is longer than {limit} characters")
    return value.strip()


def _feature(raw: Any, where: str = "") -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ToolError(
            f"{where}a feature must be an object with category, name, description, steps"
        )
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps or len(steps) > LIMITS["steps"]:
        raise ToolError(f"{where}'steps' must be a list of 1 to {LIMITS['steps']} strings")
    return {
        "category": _text(raw.get("category"), f"{where}category", LIMITS["category"]),
        "name": _text(raw.get("name"), f"{where}name", LIMITS["name"]),
        "description": _text(raw.get("description"), f"{where}description", LIMITS["description"]),
        "steps": [_text(s, f"{where}steps[{i}]", LIMITS["step"]) for i, s in enumerate(steps)],
    }


def _int(raw: Any, field: str, low: int, high: int, default: int | None = None) -> int:
    if raw is None and default is not None:
        return default
    if not isinstance(raw, int) or isinstance(raw, bool) or not low <= raw <= high:
        raise ToolError(f"'{field}' must be an integer from {low} to {high}")
    return raw


def run_backlog_tool(
    root: Path,
    name: str,
    tool_input: object,
    *,
    writes: bool,
    limits: ToolLimits = DEFAULT_LIMITS,
) -> str:
    """Run one backlog tool on project `root`'s features.db; JSON text, or ToolError.

    Blocking (SQLite): call it from a thread in async code."""
    if name not in BACKLOG_TOOL_NAMES:
        raise ToolError(f"unknown backlog tool {name[:64]!r}")
    args = tool_input if isinstance(tool_input, dict) else {}
    if name in WRITE_TOOLS:
        if not writes:
            raise ToolError(WRITES_DISABLED)
        return _write(root, name, args, limits)
    with store.open_backlog(root, limits) as conn:
        if name == GET_STATS:
            result: Any = store.stats(conn)
        elif name == GET_NEXT:
            result = store.next_feature(conn) or {
                "message": "All features are passing: nothing left to build."
            }
        else:
            features = store.for_regression(conn, _int(args.get("limit"), "limit", 1, 10, 3))
            result = {"features": features, "count": len(features)}
    return json.dumps(result, indent=2)


def _write(root: Path, name: str, args: dict[str, Any], limits: ToolLimits) -> str:
    # Inputs are checked before the database is opened, so a bad call takes no lock.
    features: list[dict[str, Any]] = []
    feature_id = 0
    if name == CREATE:
        features = [_feature(args)]
    elif name == CREATE_BULK:
        raw = args.get("features")
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_BULK:
            raise ToolError(f"'features' must be a list of 1 to {MAX_BULK} features")
        features = [_feature(f, f"features[{i}].") for i, f in enumerate(raw)]
    else:
        feature_id = _int(args.get("feature_id"), "feature_id", 1, 2**63 - 1)
    with store.open_backlog(root, limits, write=True) as conn:
        if name == SKIP:
            return json.dumps(store.skip(conn, feature_id), indent=2)
        created = store.create(conn, features)
    if name == CREATE:
        return json.dumps({"success": True, **created[0]}, indent=2)
    return json.dumps({"created": len(created), "features": created}, indent=2)
