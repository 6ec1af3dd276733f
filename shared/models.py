"""SQLModel tables: users and tokens, projects, conversations, messages and turns."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, MetaData, String, false, text
from sqlmodel import Field, SQLModel

# Explicit constraint names so Alembic migrations are stable across SQLite and PostgreSQL.
SQLModel.metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def utcnow() -> datetime:
    return datetime.now(UTC)


# The largest id both databases store: primary keys are INTEGER, 32-bit on PostgreSQL. A
# larger id (valid in the protocol, which takes 64 bits) cannot name a row, and PostgreSQL
# refuses to compare one: look a client's id up only if it is storable.
MAX_ID = 2**31 - 1


def storable_id(value: int) -> bool:
    return 0 < value <= MAX_ID


def iso(dt: datetime | None) -> str | None:
    """A stored time as ISO 8601 in UTC (SQLite and PostgreSQL give them back without a zone)."""
    if dt is None:
        return None
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).isoformat()


def no_tool_calls() -> list[dict[str, Any]]:
    # A plain function, not the builtin `list`: pydantic inspects a default factory's signature
    # on every construction, and a builtin's costs a text parse (7x the whole construction).
    return []


class TurnStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    complete = "complete"
    cancelled = "cancelled"
    failed = "failed"


ACTIVE_TURN_STATUSES = (TurnStatus.queued, TurnStatus.running)


class MessageStatus(enum.StrEnum):
    streaming = "streaming"
    complete = "complete"
    cancelled = "cancelled"
    failed = "failed"
    # Claude declined (stop reason `refusal`): the stored content is our notice, not an answer.
    refused = "refused"


class StopReason(enum.StrEnum):
    """Why a completed reply ended, when it is worth telling (stored and sent with it)."""

    end_turn = "end_turn"
    max_tokens = "max_tokens"  # cut off at the output limit, after any continuation
    max_tool_rounds = "max_tool_rounds"  # stopped looking at the tool-round limit
    refusal = "refusal"


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    is_admin: bool = False
    # Tokens this user may spend a calendar month (UTC), set by an administrator; None: the
    # deployment's ASSISTANT_USER_MONTHLY_TOKENS.
    monthly_token_budget: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    # Only a SHA-256 of the token is stored; the secret is shown once at creation.
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    prefix: str = Field(max_length=16)
    name: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class Project(SQLModel, table=True):
    __tablename__ = "projects"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(50), unique=True, nullable=False))
    path: str
    # Tools refuse files with several hard links (one may be a file outside the project)
    # unless an administrator allows them here (`assistant projects set NAME --hardlinks on`).
    allow_hardlinks: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    # autocoder's backlog (features.db): the model may add and skip features only where an
    # administrator allows it (`assistant projects set NAME --backlog-writes on`).
    backlog_writes: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    # Anthropic's server-side web search and fetch tools (`--web on`).
    web_tools: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    created_at: datetime = Field(default_factory=utcnow)


# SQLite reuses the largest rowid after a delete unless AUTOINCREMENT is set; Redis state is
# keyed by these ids (replay logs, cancel flags), so an id must never come back.
_NO_ID_REUSE = {"sqlite_autoincrement": True}


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = _NO_ID_REUSE

    id: int | None = Field(default=None, primary_key=True)
    project_name: str = Field(max_length=50, index=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    title: str | None = Field(default=None, max_length=100)
    # Who wrote the title (TitleSource): a model's title never replaces a user's.
    title_source: str = Field(
        default="auto", max_length=8, sa_column_kwargs={"server_default": "auto"}
    )
    # The message the user last looked at or asked from; the conversation shown is the path
    # from the root to it, continued by its newest replies (shared/branches.py).
    active_leaf_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class TitleSource(enum.StrEnum):
    auto = "auto"  # the first 50 characters of the first question, until a model titles it
    model = "model"  # written by ASSISTANT_TITLE_MODEL
    user = "user"  # renamed by the user: never overwritten


_ZERO = {"server_default": "0"}


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = _NO_ID_REUSE

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", index=True, ondelete="CASCADE")
    # Messages form a tree: a question's parent is the reply (or greeting) it follows, a
    # reply's parent is its question. Editing a question adds a sibling; regenerating a reply
    # adds a sibling reply. None only for a conversation's first message.
    parent_id: int | None = Field(
        default=None, foreign_key="messages.id", index=True, ondelete="CASCADE"
    )
    role: str = Field(max_length=16)
    content: str = ""
    # Tool calls made while producing an assistant reply: [{"tool": ..., "input": {...}}].
    tool_calls: list[dict[str, Any]] = Field(default_factory=no_tool_calls, sa_column=Column(JSON))
    status: str = Field(default=MessageStatus.complete, max_length=16)
    # File references cited in a reply, checked against the project: [{"path", "start",
    # "end", "verified"}]; None before the reply ended (and for user messages).
    references: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    # Why a finished reply stopped (StopReason), when the worker knows it.
    stop_reason: str | None = Field(default=None, max_length=32)
    # The assistant reply of a turn: unique, so a re-run can never store a second one.
    turn_id: int | None = Field(default=None, unique=True)
    # What writing a reply cost, summed over its tool-use rounds (from the stream's usage),
    # and the model that wrote it; cost in US dollars from ASSISTANT_MODEL_PRICES.
    model: str | None = Field(default=None, max_length=100)
    input_tokens: int = Field(default=0, sa_column_kwargs=_ZERO)
    output_tokens: int = Field(default=0, sa_column_kwargs=_ZERO)
    cache_read_tokens: int = Field(default=0, sa_column_kwargs=_ZERO)
    cache_write_tokens: int = Field(default=0, sa_column_kwargs=_ZERO)
    cost_usd: float = Field(default=0.0, sa_column_kwargs=_ZERO)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Turn(SQLModel, table=True):
    __tablename__ = "turns"
    __table_args__ = (
        # At most one queued/running turn per conversation, enforced by the database so two
        # API processes racing on the same conversation cannot both start one.
        Index(
            "uq_turns_one_active_per_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        Index(
            "uq_turns_client_message_id",
            "conversation_id",
            "client_message_id",
            unique=True,
        ),
        _NO_ID_REUSE,
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", index=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    user_message_id: int = Field(foreign_key="messages.id")
    client_message_id: str | None = Field(default=None, max_length=100)
    status: str = Field(default=TurnStatus.queued, max_length=16, index=True)
    # Bumped each time the turn is (re)dispatched; a task carrying an older attempt is stale.
    attempt: int = 1
    last_seq: int = 0
    error: str | None = None
    worker: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class UsageMonth(SQLModel, table=True):
    """What a user spent in a calendar month (UTC): the ledger budgets read. Added to when a
    reply ends (and for a model-written title), never derived from the messages, so deleting
    conversations does not give the tokens back."""

    __tablename__ = "usage_months"

    user_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    month: str = Field(sa_column=Column(String(7), primary_key=True))  # YYYY-MM
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
