"""The WebSocket protocol: client messages and server chunks, defined once.

A superset of autocoder's assistant router: the original messages keep their shapes, and turn
chunks also carry `turn_id` and `seq` so a client can order, de-duplicate and resume.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter
from pydantic_core import PydanticCustomError

# ---- client -> server ---------------------------------------------------------------------


class _ClientMsg(BaseModel):
    # Unknown fields are ignored (old clients send extras); wrong types are refused.
    model_config = ConfigDict(extra="ignore", strict=True)


# Ids are database keys: anything outside a signed 64-bit range cannot exist.
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
_DIGITS = re.compile(r"[0-9]{1,19}")


def _digits_to_int(value: Any) -> Any:
    """The original took a conversation id sent as a numeric string ("7") too; any other
    string is refused (strict mode refuses it anyway, with a vaguer message)."""
    if not isinstance(value, str):
        return value
    if not _DIGITS.fullmatch(value):
        raise PydanticCustomError("id_string", "must be an integer or a string of digits")
    return int(value)


ConversationId = Annotated[Id, BeforeValidator(_digits_to_int)]


class StartMsg(_ClientMsg):
    type: Literal["start"]
    conversation_id: ConversationId | None = None


ClientMessageId = Annotated[str, Field(min_length=1, max_length=100)]


class UserMsg(_ClientMsg):
    type: Literal["message"]
    content: str
    client_message_id: ClientMessageId | None = None
    # Added: ask from an earlier point of the conversation: the message the question follows
    # (editing question Q sends Q's parent: the new question is a sibling of Q). Absent: the
    # end of the branch shown (the active leaf); null: the root.
    parent_id: Id | None = None


class RegenerateMsg(_ClientMsg):
    """Added: answer the question before reply `message_id` again, as a sibling reply."""

    type: Literal["regenerate"]
    message_id: Id
    client_message_id: ClientMessageId | None = None


class PingMsg(_ClientMsg):
    type: Literal["ping"]


class CancelMsg(_ClientMsg):
    type: Literal["cancel"]
    turn_id: Id | None = None


class ResumeMsg(_ClientMsg):
    """Re-attach to turn `turn_id` after `after_seq`; or resume a conversation by
    `conversation_id`, answered like `start` with that id (both forms are our additions)."""

    type: Literal["resume"]
    turn_id: Id | None = None
    after_seq: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    conversation_id: ConversationId | None = None


ClientMsg = Annotated[
    StartMsg | UserMsg | PingMsg | CancelMsg | ResumeMsg | RegenerateMsg,
    Field(discriminator="type"),
]
client_msg_adapter: TypeAdapter[ClientMsg] = TypeAdapter(ClientMsg)
CLIENT_TYPES = ("start", "message", "ping", "cancel", "resume", "regenerate")

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
    # Added on a reply's end: why it stopped (`max_tokens`: cut off, `max_tool_rounds`,
    # `refusal`) and the file references it cites, checked against the project.
    stop_reason: str | None = None
    references: list[dict[str, Any]] | None = None
    # Added for branches: on `message_accepted` the question's id and its parent (for a
    # regenerate, the existing question); on a reply's terminal chunk the reply's id.
    user_message_id: int | None = None
    parent_id: int | None = None
    message_id: int | None = None
    # Added on `response_done` of a turn: its tokens and cost, summed over its tool-use rounds
    # ({input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd}).
    usage: dict[str, Any] | None = None
    # Internal: when the producer published it (epoch seconds), carried through Redis for the
    # relay-delay metric. Never sent to a client (`dump` leaves it out).
    published_at: float | None = None

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    def dump(self) -> str:
        """The frame a client gets."""
        return self.model_dump_json(exclude_none=True, exclude=_INTERNAL)

    def wire(self) -> str:
        """The form sent live through Redis pub/sub (with the internal fields)."""
        return self.model_dump_json(exclude_none=True)


_INTERNAL = {"published_at"}


def error_chunk(content: str, **kw: Any) -> Chunk:
    return Chunk(type="error", content=content, **kw)


def greeting(project_name: str) -> str:
    """The first words of a new conversation, naming the project in bold as the original did."""
    return (
        f"Hello! I'm your project assistant for **{project_name}**. I can read, list and "
        "search its files (never change them) and answer questions about the project, "
        "citing paths and lines. What would you like to know?"
    )
