"""The tools as the model sees them (Messages API tool definitions), and input validation.

Names and inputs are Claude Code's own read-only tools (`Read`, `Glob`, `Grep`), which Claude
models know well and which autocoder's web client labels ("Reading file: ...").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.tools.sandbox import ToolError

Args = dict[str, Any]

READ, GLOB, GREP = "Read", "Glob", "Grep"
TOOL_NAMES: tuple[str, ...] = (READ, GLOB, GREP)
# Names of the same tools in conversations stored before the rename (their `tool_calls` are
# returned as stored): read_file {path, start_line, end_line}, list_files {pattern, path},
# search_files {pattern, path, glob, case_sensitive}.
LEGACY_TOOL_NAMES: dict[str, str] = {"read_file": READ, "list_files": GLOB, "search_files": GREP}
OUTPUT_MODES = ("content", "files_with_matches", "count")
MAX_CONTEXT_LINES = 20


def _prop(type_: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "description": description, **extra}


_CONTEXT = 'Requires output_mode: "content", ignored otherwise.'
SPECS: dict[str, tuple[str, dict[str, dict[str, Any]], tuple[str, ...]]] = {
    READ: (
        "Reads a file from the project (read-only).\n\n"
        "Usage:\n"
        "- The file_path parameter is relative to the project root, '/'-separated "
        "(e.g. \"src/app.py\"); absolute paths are not accepted\n"
        "- By default, it reads up to 2000 lines starting from the beginning of the file\n"
        "- You can optionally specify a line offset and limit (especially handy for long "
        "files), but it's recommended to read the whole file by not providing these "
        "parameters\n"
        "- Results come under a header naming the file and the lines shown, one line each "
        "with its number, starting at 1: '  12| text'\n"
        "- Directories cannot be read (use Glob); binary files, and protected files such as "
        ".env files and keys, are refused",
        {
            "file_path": _prop(
                "string", "The path of the file to read, relative to the project root"
            ),
            "offset": _prop(
                "integer",
                "The line number to start reading from (1-based). Only provide if the file "
                "is too large to read at once",
                minimum=1,
            ),
            "limit": _prop(
                "integer",
                "The number of lines to read. Only provide if the file is too large to read "
                "at once.",
                minimum=1,
            ),
        },
        ("file_path",),
    ),
    GLOB: (
        "- Fast file pattern matching tool for the project\n"
        "- Supports glob patterns like \"**/*.js\" or \"src/**/*.ts\" ('*' matches within one "
        "path component, '**' any number of directories, '{a,b}' either)\n"
        "- Returns matching paths relative to the project root, sorted; directories end "
        "with '/'\n"
        "- Use this tool when you need to find files by name patterns",
        {
            "pattern": _prop("string", "The glob pattern to match files against"),
            "path": _prop(
                "string",
                "The directory to search in, relative to the project root. Omit this field "
                "to search the whole project.",
                default=".",
            ),
        },
        ("pattern",),
    ),
    GREP: (
        "A search tool for file contents, with ripgrep's regular expression syntax (a "
        "linear-time engine).\n\n"
        "Usage:\n"
        "- Supports full regex syntax (e.g. \"log.*Error\", \"function\\s+\\w+\"); "
        "look-around and back-references are not supported\n"
        "- Literal braces need escaping (use `interface\\{\\}` to find `interface{}`)\n"
        "- Filter files with the glob parameter (e.g. \"*.js\", \"**/*.tsx\", "
        "\"*.{ts,tsx}\") or the type parameter (e.g. \"py\", \"js\", \"rust\")\n"
        "- Output modes: \"content\" shows matching lines (as path:line:text), "
        "\"files_with_matches\" shows only file paths (default), \"count\" shows match "
        "counts per file\n"
        "- Patterns match within single lines; paths are relative to the project root",
        {
            "pattern": _prop(
                "string", "The regular expression pattern to search for in file contents"
            ),
            "path": _prop(
                "string",
                "File or directory to search in, relative to the project root. Defaults to "
                "the whole project.",
                default=".",
            ),
            "glob": _prop(
                "string",
                "Glob pattern to filter files (e.g. \"*.js\", \"*.{ts,tsx}\"): without '/' it "
                "matches file names, with '/' paths relative to `path`",
            ),
            "type": _prop(
                "string",
                "File type to search: py, js, ts, go, rust, java, c, cpp, rb, php, sh, html, "
                "css, md, json, yaml, toml, sql, txt",
            ),
            "output_mode": _prop(
                "string",
                "Output mode: \"content\" shows matching lines (supports -A/-B/-C context, "
                "-n line numbers, head_limit), \"files_with_matches\" shows file paths "
                "(supports head_limit), \"count\" shows match counts (supports head_limit). "
                "Defaults to \"files_with_matches\".",
                enum=list(OUTPUT_MODES),
                default="files_with_matches",
            ),
            "-i": _prop("boolean", "Case insensitive search", default=False),
            "-n": _prop("boolean", f"Show line numbers in output. {_CONTEXT}", default=True),
            "-A": _prop(
                "integer", f"Number of lines to show after each match. {_CONTEXT}",
                minimum=0, maximum=MAX_CONTEXT_LINES,
            ),
            "-B": _prop(
                "integer", f"Number of lines to show before each match. {_CONTEXT}",
                minimum=0, maximum=MAX_CONTEXT_LINES,
            ),
            "-C": _prop(
                "integer", f"Number of lines to show before and after each match. {_CONTEXT}",
                minimum=0, maximum=MAX_CONTEXT_LINES,
            ),
            "head_limit": _prop(
                "integer",
                "Limit output to the first N lines/entries, like \"| head -N\". Without it "
                "the output stops at the service's own cap.",
                minimum=1,
            ),
        },
        ("pattern",),
    ),
}  # fmt: skip

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
        if "enum" in schema and value not in schema["enum"]:
            choices = ", ".join(repr(c) for c in schema["enum"])
            raise ToolError(f"{name}: argument '{key}' must be one of {choices}")
        if kind == "integer" and value < schema.get("minimum", value):
            raise ToolError(f"{name}: argument '{key}' must be >= {schema['minimum']}")
        if kind == "integer" and value > schema.get("maximum", value):
            raise ToolError(f"{name}: argument '{key}' must be <= {schema['maximum']}")
        args[key] = value
    return args
