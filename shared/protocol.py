"""The WebSocket protocol: client messages and server chunks, defined once.

A superset of autocoder's assistant router: the original messages keep their shapes, and turn
chunks also carry `turn_id` and `seq` so a client can order, de-duplicate and resume.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

# ---- client -> server ---------------------------------------------------------------------


class _ClientMsg(BaseModel):
    # Unknown fields are ignored (old clients send extras); wrong types are refused.
    model_config = ConfigDict(extra="ignore", strict=True)


# Ids are database keys: anything outside a signed 64-bit range cannot exist.
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class StartMsg(_ClientMsg):
    type: Literal["start"]
    conversation_id: Id | None = None


class UserMsg(_ClientMsg):
    type: Literal["message"]
    content: str
    client_message_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class PingMsg(_ClientMsg):
    type: Literal["ping"]


class CancelMsg(_ClientMsg):
    type: Literal["cancel"]
    turn_id: Id | None = None


class ResumeMsg(_ClientMsg):
    """Re-attach to turn `turn_id` after `after_seq`; or, autocoder's form, resume a
    conversation by `conversation_id` without a greeting."""

    type: Literal["resume"]
    turn_id: Id | None = None
    after_seq: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    conversation_id: Id | None = None


ClientMsg = Annotated[
    StartMsg | UserMsg | PingMsg | CancelMsg | ResumeMsg, Field(discriminator="type")
]
client_msg_adapter: TypeAdapter[ClientMsg] = TypeAdapter(ClientMsg)
CLIENT_TYPES = ("start", "message", "ping", "cancel", "resume")

# ---- server -> client ---------------------------------------------------------------------

ChunkType = Literal[
    "conversation_created",
    "message_accepted",
    "text",
    "tool_call",
    "turn_restarted",
    "response_done",
    "error",
    "pong",
]
TERMINAL_TYPES = frozenset({"response_done", "error"})


class Chunk(BaseModel):
    """One server-to-client frame. Fields that do not apply stay None and are not sent."""

    type: ChunkType
    content: str | None = None
    tool: str | None = None
    input: dict[str, Any] | None = None
    status: Literal["complete", "cancelled"] | None = None
    conversation_id: int | None = None
    client_message_id: str | None = None
    turn_id: int | None = None
    seq: int | None = None

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    def dump(self) -> str:
        return self.model_dump_json(exclude_none=True)


def error_chunk(content: str, **kw: Any) -> Chunk:
    return Chunk(type="error", content=content, **kw)


GREETING = (
    "Hello! I'm your project assistant. I can read, list and search this project's files "
    "(never change them) and answer questions about it, citing paths and lines. "
    "What would you like to know?"
)
