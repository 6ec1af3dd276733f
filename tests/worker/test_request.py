"""The request of each model round: tools in a fixed order, and the prompt-cache breakpoints."""

from __future__ import annotations

import copy
import json
from typing import Any

from shared.backlog import READ_TOOLS, WRITE_TOOLS
from shared.config import Settings
from shared.tools import TOOL_NAMES
from worker.request import EPHEMERAL, Toolset, request_params, tool_definitions

HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "q1"},
    {"role": "assistant", "content": "a1"},
    {"role": "user", "content": "q2"},
]


def marks(value: Any) -> list[str]:
    """Where the cache_control marks are, as JSON paths."""
    found: list[str] = []

    def walk(v: Any, path: str) -> None:
        if isinstance(v, dict):
            if "cache_control" in v:
                found.append(path)
            for k, item in v.items():
                walk(item, f"{path}.{k}")
        elif isinstance(v, list):
            for i, item in enumerate(v):
                walk(item, f"{path}[{i}]")

    walk(value, "")
    return found


def test_three_breakpoints_last_tool_system_last_message() -> None:
    tools = tool_definitions(Toolset(), Settings())
    params = request_params(Settings(), "the system", HISTORY, tools)
    assert marks(params) == [".system[0]", ".messages[2].content[0]", f".tools[{len(tools) - 1}]"]
    assert params["system"][0] == {"type": "text", "text": "the system", "cache_control": EPHEMERAL}
    # Every message's content is a block list, so a question is the same bytes later on.
    assert params["messages"][0]["content"] == [{"type": "text", "text": "q1"}]


def test_marks_go_on_copies_and_move_with_the_last_message() -> None:
    messages = copy.deepcopy(HISTORY)
    tools = tool_definitions(Toolset(), Settings())
    before = json.dumps([messages, tools])
    first = request_params(Settings(), "s", messages, tools)
    assert json.dumps([messages, tools]) == before  # the caller's lists are untouched
    messages += [
        {"role": "assistant", "content": [{"type": "text", "text": "x"}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "out"},
                {"type": "text", "text": ""},  # an empty text block cannot carry a mark
            ],
        },
    ]
    second = request_params(Settings(), "s", messages, tools)
    assert ".messages[4].content[0]" in marks(second)
    assert len(marks(second)) == 3

    def strip(params: dict[str, Any]) -> str:
        return json.dumps(
            {k: params[k] for k in ("tools", "system", "messages")},
            default=str,
        ).replace(', "cache_control": {"type": "ephemeral"}', "")

    # Without the marks, the first request is a byte-identical prefix of the second.
    a, b = json.loads(strip(first)), json.loads(strip(second))
    assert a["tools"] == b["tools"] and a["system"] == b["system"]
    assert json.dumps(b["messages"][:3]) == json.dumps(a["messages"])


def test_prompt_cache_off_sends_no_marks() -> None:
    settings = Settings(prompt_cache=False)
    params = request_params(settings, "s", HISTORY, tool_definitions(Toolset(), settings))
    assert marks(params) == []
    assert params["system"] == "s"


def test_last_round_forbids_tools() -> None:
    params = request_params(Settings(), "s", HISTORY, [], last_round=True)
    assert params["tool_choice"] == {"type": "none"}
    assert "tool_choice" not in request_params(Settings(), "s", HISTORY, [])


def test_tools_by_project_in_a_fixed_order() -> None:
    s = Settings(web_max_uses=3)

    def names(toolset: Toolset) -> list[str]:
        return [t["name"] for t in tool_definitions(toolset, s)]

    assert names(Toolset()) == list(TOOL_NAMES)
    assert names(Toolset(backlog="read")) == [*TOOL_NAMES, *READ_TOOLS]
    assert names(Toolset(backlog="write")) == [*TOOL_NAMES, *READ_TOOLS, *WRITE_TOOLS]
    web = tool_definitions(Toolset(web=True), s)[-2:]
    assert web == [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 3},
    ]
    # The same project always gets byte-identical tools.
    assert json.dumps(tool_definitions(Toolset("write", True), s)) == json.dumps(
        tool_definitions(Toolset("write", True), s)
    )
