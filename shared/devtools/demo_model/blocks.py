"""The demo model's vocabulary: content blocks to send, the reply plan, request helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class InvalidRequest(ValueError):
    """The request cannot be answered: becomes a 400 invalid_request_error."""


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ServerCall:
    """A server tool call (`server_tool_use`: web search or fetch), streamed like a tool call."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ServerResult:
    """A server tool's result block (`web_search_tool_result`, ...), sent whole."""

    data: dict[str, Any]


Block = TextPart | ToolCall | ServerCall | ServerResult


@dataclass(frozen=True)
class ReplyPlan:
    """What to send: content blocks and how (pace, stall, errors, barrier)."""

    blocks: tuple[Block, ...] = ()
    stop_reason: str = "end_turn"
    delay_s: float = 0.0
    stall_s: float = 0.0
    error_status: int | None = None
    error_midstream: bool = False
    barrier: int | None = None
    barrier_timeout_s: float = 60.0
    stop_details: dict[str, Any] | None = None


def blocks_of(content: Any) -> list[dict[str, Any]]:
    """A message's content as a list of blocks (a string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def text_of(content: Any) -> str:
    return "\n".join(str(b.get("text", "")) for b in blocks_of(content) if b.get("type") == "text")
