"""Shapes of search, rename and export (issue 13); api/schemas.py keeps autocoder's shapes."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, field_validator

from shared.models import iso
from shared.search import SearchHit

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


TITLE_MAX_CHARS = 100  # the column's size


class RenameRequest(BaseModel):
    title: str

    @field_validator("title")
    @classmethod
    def _trimmed_one_line(cls, title: str) -> str:
        # Titles are one line (the automatic ones flatten newlines too): control characters
        # become spaces rather than an error a user could not see. Then trimmed, 1..100 chars.
        title = _CONTROL.sub(" ", title).strip()
        if not 1 <= len(title) <= TITLE_MAX_CHARS:
            raise ValueError(f"a title is 1 to {TITLE_MAX_CHARS} characters (trimmed)")
        return title


class SnippetSegment(BaseModel):
    text: str
    match: bool  # a word of the query: highlight it (as text, never as HTML)


class SearchResult(BaseModel):
    conversation_id: int
    project_name: str
    conversation_title: str | None
    message_id: int | None  # the message to open the conversation at; null: the title matched
    role: str | None  # "user" | "assistant"; null for a title
    snippet: list[SnippetSegment]
    rank: float  # the database's full-text rank, higher is better
    created_at: str | None

    @classmethod
    def of(cls, hit: SearchHit) -> SearchResult:
        return cls(
            conversation_id=hit.conversation_id,
            project_name=hit.project_name,
            conversation_title=hit.conversation_title,
            message_id=hit.message_id,
            role=hit.role,
            snippet=[SnippetSegment(text=s.text, match=s.match) for s in hit.snippet],
            rank=hit.rank,
            created_at=iso(hit.created_at),
        )


class SearchResponse(BaseModel):
    query: str
    results: list[SearchResult]


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


class ExportedConversation(BaseModel):
    id: int
    project_name: str
    title: str | None
    title_source: str
    created_at: str | None
    updated_at: str | None
    active_leaf_id: int | None


class ExportedMessage(Usage):
    id: int
    parent_id: int | None
    role: str
    content: str
    status: str
    tool_calls: list[dict[str, Any]]
    references: list[dict[str, Any]] | None
    stop_reason: str | None
    turn_id: int | None
    model: str | None
    created_at: str | None


class ConversationExport(BaseModel):
    """format_version 1: every message of every branch (rebuild the tree by parent_id)."""

    format_version: int
    exported_at: str | None
    conversation: ExportedConversation
    messages: list[ExportedMessage]
    active_path: list[int]
    usage: Usage
