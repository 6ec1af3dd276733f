"""The Messages API's wire format for a planned reply: its blocks as the JSON of a message and
as the SSE events of a stream (content blocks, deltas, usage). Pure: no I/O, no server."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared.devtools.demo_model.blocks import (
    Block,
    ServerCall,
    ServerResult,
    TextPart,
    ToolCall,
)
from shared.devtools.demo_model.planning import (
    json_chunks,
    text_chunks,
)


def output_tokens(blocks: tuple[Block, ...]) -> int:
    out = 0
    for b in blocks:
        if isinstance(b, TextPart):
            out += len(b.text.split())
        elif isinstance(b, ToolCall | ServerCall):
            out += len(json.dumps(b.input)) // 4
    return max(1, out)


def server_tool_use(blocks: tuple[Block, ...]) -> dict[str, int] | None:
    calls = [b.name for b in blocks if isinstance(b, ServerCall)]
    if not calls:
        return None
    return {
        "web_search_requests": calls.count("web_search"),
        "web_fetch_requests": calls.count("web_fetch"),
    }


def block_json(block: Block, empty: bool = False) -> dict[str, Any]:
    if isinstance(block, TextPart):
        return {"type": "text", "text": "" if empty else block.text}
    if isinstance(block, ServerResult):
        return dict(block.data)
    return {
        "type": "server_tool_use" if isinstance(block, ServerCall) else "tool_use",
        "id": block.id,
        "name": block.name,
        "input": {} if empty else block.input,
    }


def message(
    msg_id: str,
    body: Mapping[str, Any],
    blocks: tuple[Block, ...],
    stop_reason: str | None,
    usage: Mapping[str, Any],
) -> dict[str, Any]:
    full_usage = {**usage, "output_tokens": output_tokens(blocks) if stop_reason else 1}
    if stop_reason and (server := server_tool_use(blocks)) is not None:
        full_usage["server_tool_use"] = server
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [block_json(b) for b in blocks] if stop_reason else [],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": full_usage,
    }


def sse(event: str, **fields: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps({'type': event, **fields})}\n\n".encode()


def deltas(block: Block) -> list[dict[str, Any]]:
    if isinstance(block, TextPart):
        return [{"type": "text_delta", "text": t} for t in text_chunks(block.text)]
    if isinstance(block, ServerResult):
        return []  # result blocks arrive whole in content_block_start
    fragments = ["", *json_chunks(block.input)]  # the real API starts with an empty one too
    return [{"type": "input_json_delta", "partial_json": p} for p in fragments]
