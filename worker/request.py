"""The Messages API request of each model round: tools, system prompt, messages, cache marks.

Prompt caching: the request is a prefix of tools, then system, then messages, and a
`cache_control` breakpoint caches everything before and including the block it is on. Three
breakpoints are set: on the last tool (the tools alone survive a changed README), on the
system prompt (tools + system) and on the last block of the last message. The last one is what
the next request reads back: the next round of a tool-use turn extends this request's messages,
and the next turn's history renders this turn's question identically (shared.prompt), so the
API finds the earlier prefix by looking back from the new breakpoint. Nothing here depends on
time or ids, and the tools come in a fixed order, so the prefix is byte-identical from request
to request (the breakpoint marks themselves are not part of the cached content).

Only copies carry the marks: the caller's messages are reused by the next round, where the
breakpoint moves to the new last block.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from shared.backlog import backlog_schemas
from shared.config import Settings
from shared.tools import TOOL_SCHEMAS

EPHEMERAL: dict[str, str] = {"type": "ephemeral"}
WEB_SEARCH, WEB_FETCH = "web_search", "web_fetch"
WEB_SEARCH_TYPE, WEB_FETCH_TYPE = "web_search_20250305", "web_fetch_20250910"
SERVER_TOOL_NAMES = frozenset({WEB_SEARCH, WEB_FETCH})
# Blocks that accept a cache_control mark (an empty text block is refused by the API anyway).
_CACHEABLE = frozenset(
    {"text", "tool_use", "tool_result", "image", "document", "server_tool_use"}
    | {"web_search_tool_result", "web_fetch_tool_result"}
)


@dataclass(frozen=True)
class Toolset:
    """Which tools a project's turns get besides Read, Glob and Grep."""

    backlog: str | None = None  # None: no features.db; "read"; "write" (admin-enabled)
    web: bool = False


def tool_definitions(toolset: Toolset, settings: Settings) -> list[dict[str, Any]]:
    """Every tool of the request, always in the same order."""
    tools = list(TOOL_SCHEMAS)
    if toolset.backlog is not None:
        tools += backlog_schemas(writes=toolset.backlog == "write")
    if toolset.web:
        uses = settings.web_max_uses
        tools += [
            {"type": WEB_SEARCH_TYPE, "name": WEB_SEARCH, "max_uses": uses},
            {"type": WEB_FETCH_TYPE, "name": WEB_FETCH, "max_uses": uses},
        ]
    return tools


def request_params(
    settings: Settings,
    system: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    *,
    last_round: bool = False,
) -> dict[str, Any]:
    """The keyword arguments of `messages.create` (without `stream`)."""
    # Content always as a list of blocks: the question that is a string in one request is
    # then byte for byte the same in the next, where it is no longer the last message.
    messages = [{**m, "content": as_blocks(m["content"])} for m in messages]
    params: dict[str, Any] = {
        "model": settings.model,
        "max_tokens": settings.max_tokens,
        "system": system,
        "messages": messages,
        "tools": tools,
    }
    if last_round:
        # The tool-round limit: this round must answer with what it has.
        params["tool_choice"] = {"type": "none"}
    if settings.prompt_cache:
        params |= cache_marked(system, messages, tools)
    return params


def as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def cache_marked(
    system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> dict[str, Any]:
    """Copies of system, messages and tools with the three breakpoints set."""
    marked_tools = list(tools)
    if marked_tools:
        marked_tools[-1] = {**marked_tools[-1], "cache_control": EPHEMERAL}
    marked_messages = list(messages)
    if marked_messages:
        last = copy.deepcopy(marked_messages[-1])
        blocks = as_blocks(last["content"])
        for block in reversed(blocks):
            if block.get("type") in _CACHEABLE and (block.get("type") != "text" or block["text"]):
                block["cache_control"] = EPHEMERAL
                break
        last["content"] = blocks
        marked_messages[-1] = last
    return {
        "system": [{"type": "text", "text": system, "cache_control": EPHEMERAL}],
        "messages": marked_messages,
        "tools": marked_tools,
    }
