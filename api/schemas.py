"""REST response shapes, kept identical to autocoder's assistant router (fields only added)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field


class ConversationSummary(BaseModel):
    id: int
    project_name: str
    title: str | None
    created_at: str | None
    updated_at: str | None
    message_count: int


class ConversationMessage(BaseModel):
    id: int
    role: str
    content: str
    timestamp: str | None
    status: str = "complete"
    tool_calls: list[dict[str, Any]] = []
    turn_id: int | None = None
    # Added: file references the reply cites, checked against the project
    # ([{path, start, end, verified}]), and why it stopped (e.g. "max_tokens": cut off).
    references: list[dict[str, Any]] | None = None
    stop_reason: str | None = None
    # Added for branches: the message it follows (a reply's question, a question's reply),
    # the ids of it and its siblings (other answers to the same question, other questions
    # after the same reply), ascending, and its 0-based position among them.
    parent_id: int | None = None
    sibling_ids: list[int] = []
    sibling_index: int = 0
    # Added: what writing a reply cost (0 for questions and the greeting) and which model.
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0


class UsageTotals(BaseModel):
    """Tokens and cost summed over messages (a conversation's: every branch)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0


class ConversationDetail(BaseModel):
    id: int
    project_name: str
    title: str | None
    created_at: str | None
    updated_at: str | None
    # The active path: from the first message to the active leaf, then on by the newest replies.
    messages: list[ConversationMessage]
    # Added: the turn still being answered, so a client can re-attach to it.
    active_turn_id: int | None = None
    # Added: the message the path is chosen by (PUT .../active_leaf), who wrote the title
    # ("auto", "model" or "user"), and the usage of the whole conversation, all branches.
    active_leaf_id: int | None = None
    title_source: str = "auto"
    usage: UsageTotals = UsageTotals()


class ActiveLeaf(BaseModel):
    """Show the branch through this message (a sibling the user switched to)."""

    message_id: Annotated[int, Field(ge=1, le=2**63 - 1)]


class SessionInfo(BaseModel):
    project_name: str
    conversation_id: int | None
    is_active: bool


class Success(BaseModel):
    success: bool = True
    message: str


class ProjectPublic(BaseModel):
    name: str
    # The directory on the server: shown to administrators only, null for everyone else.
    path: str | None
    created_at: str | None


class ProjectCreate(BaseModel):
    name: str
    path: str
    # Register a broad directory (/tmp, a home directory, this service's checkout) anyway.
    force: bool = False


class TurnPublic(BaseModel):
    id: int
    conversation_id: int
    status: str
    attempt: int
    last_seq: int
    error: str | None
    created_at: str | None
    finished_at: str | None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str  # "ready" | "not ready"
    database: str  # "ok" | "unavailable"
    redis: str  # "ok" | "unavailable"
    workers: int  # workers seen alive recently that take turns
    missing: list[str]  # what keeps it from being ready: database, redis, workers
