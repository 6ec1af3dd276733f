"""The tools as the model sees them (Messages API tool definitions), and input validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.tools.sandbox import ToolError

Args = dict[str, Any]


def _prop(type_: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "description": description, **extra}


_PATH_HINT = "Relative to the project root, '/'-separated"
SPECS: dict[str, tuple[str, dict[str, dict[str, Any]], tuple[str, ...]]] = {
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
    for name, (description, props, required) in SPECS.items()
]


def validate(name: str, tool_input: object) -> Args:
    _, props, required = SPECS[name]
    if not isinstance(tool_input, Mapping):
        raise ToolError(f"{name}: input must be a JSON object")
    unknown = [repr(k)[:64] for k in tool_input if k not in props]
    if unknown:
        allowed = ", ".join(props)
        raise ToolError(f"{name}: unknown argument(s) {', '.join(unknown)}; allowed: {allowed}")
    args: Args = {}
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
