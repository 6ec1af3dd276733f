"""Folding the model's stream events into the reply: pure, so it is tested on recorded streams.

`fold` takes one raw Messages API stream event (`message_start`, `content_block_start`,
`content_block_delta`, `content_block_stop`, `message_delta`, `message_stop`) and updates two
accumulators: the `Reply` (everything the assistant said in the turn, over all its tool
rounds) and the `Round` (this one response, as the content blocks to send back with the tool
results). It returns what the client should be told: text deltas and finished tool calls.
Coalescing, publishing and persisting are the caller's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from anthropic.types import RawMessageStreamEvent


@dataclass(frozen=True)
class TextOut:
    text: str


@dataclass(frozen=True)
class ToolCallOut:
    tool: str
    input: dict[str, Any]


Out = TextOut | ToolCallOut


@dataclass
class Reply:
    """What the assistant said in a turn: its text and the tools it called, in order."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Round:
    """One model response: its content blocks (as request parameters) and why it stopped.

    `continues`: this response continues text that was cut off (max_tokens), so its first
    text follows the reply's text directly instead of starting a new paragraph."""

    blocks: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    continues: bool = False
    _json: dict[int, list[str]] = field(default_factory=dict)

    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.blocks if b["type"] == "tool_use"]

    def params(self) -> list[dict[str, Any]]:
        """The response as the assistant message of the next request (empty text is refused)."""
        return [b for b in self.blocks if not (b["type"] == "text" and not b["text"])]

    def block(self, index: int) -> dict[str, Any] | None:
        return self.blocks[index] if 0 <= index < len(self.blocks) else None


def fold(reply: Reply, rnd: Round, event: RawMessageStreamEvent) -> list[Out]:
    """Apply one stream event; the outputs it produces for the client."""
    if event.type == "content_block_start":
        block = event.content_block
        if block.type == "text":
            rnd.blocks.append({"type": "text", "text": ""})
            out: list[Out] = []
            # Text blocks after a tool call (or a second text block) start a new paragraph.
            carry_on = rnd.continues and len(rnd.blocks) == 1
            if reply.text and not reply.text.endswith("\n") and not carry_on:
                out.append(_add_text(reply, None, "\n\n"))
            if block.text:
                out.append(_add_text(reply, rnd.blocks[-1], block.text))
            return out
        if block.type in ("tool_use", "server_tool_use"):
            # Server tools (web search, fetch) run at Anthropic; the client sees them as tool
            # calls all the same, and a paused turn sends them back as they came.
            start = dict(block.input) if isinstance(block.input, dict) else {}
            rnd.blocks.append(
                {"type": block.type, "id": block.id, "name": block.name, "input": start}
            )
            rnd._json[event.index] = []
            return []
        rnd.blocks.append(block.model_dump(exclude_none=True))
        return []
    if event.type == "content_block_delta":
        delta = event.delta
        block_ = rnd.block(event.index)
        if delta.type == "text_delta" and block_ is not None and block_["type"] == "text":
            return [_add_text(reply, block_, delta.text)]
        if delta.type == "input_json_delta" and event.index in rnd._json:
            rnd._json[event.index].append(delta.partial_json)
        return []
    if event.type == "content_block_stop" and event.index in rnd._json:
        call = rnd.blocks[event.index]
        raw = "".join(rnd._json.pop(event.index))
        if raw.strip() or not call["input"]:
            call["input"] = _parse_input(raw)
        reply.tool_calls.append({"tool": call["name"], "input": call["input"]})
        return [ToolCallOut(call["name"], call["input"])]
    if event.type == "message_delta":
        rnd.stop_reason = event.delta.stop_reason
    return []


def _add_text(reply: Reply, block: dict[str, Any] | None, text: str) -> TextOut:
    reply.text += text
    if block is not None:
        block["text"] += text
    return TextOut(text)


def _parse_input(raw: str) -> dict[str, Any]:
    """A tool call's input from its JSON fragments ({} when the model sent none)."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
