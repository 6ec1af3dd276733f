"""Conversations of a project, at autocoder's paths and in its shapes."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser, RedisDep, SessionDep, SettingsDep
from api.schemas import (
    ConversationDetail,
    ConversationMessage,
    ConversationSummary,
    Success,
    TurnPublic,
    iso,
)
from api.turns import cancel_turn
from shared import conversations as convs
from shared import projects
from shared.channels import REDIS_ERRORS, cancel_key, heartbeat_key, turn_log
from shared.errors import Conflict
from shared.models import Conversation, Turn

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/assistant/conversations", tags=["assistant-chat"])

# Database ids are 64-bit: anything outside is refused (422) instead of failing the query (500).
ConversationId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]
REPLY_RUNNING = "A reply is still being generated in this conversation; cancel it first"


def _summary(conv: Conversation, count: int) -> ConversationSummary:
    assert conv.id is not None
    return ConversationSummary(
        id=conv.id,
        project_name=conv.project_name,
        title=conv.title,
        created_at=iso(conv.created_at),
        updated_at=iso(conv.updated_at),
        message_count=count,
    )


@router.get("/{project_name}", response_model=list[ConversationSummary])
def list_conversations(
    project_name: str, session: SessionDep, user: CurrentUser
) -> list[ConversationSummary]:
    """List your conversations about a project, most recently active first."""
    projects.get_project(session, project_name)
    assert user.id is not None
    return [
        _summary(s.conversation, s.message_count)
        for s in convs.list_conversations(session, project_name, user.id)
    ]


@router.post("/{project_name}", response_model=ConversationSummary)
def create_conversation(
    project_name: str, session: SessionDep, user: CurrentUser
) -> ConversationSummary:
    """Create an empty conversation about a project."""
    projects.get_project(session, project_name)
    assert user.id is not None
    conv = convs.create_conversation(session, project_name, user.id)
    session.commit()  # before the response: the client may use the id at once
    return _summary(conv, 0)


@router.get("/{project_name}/{conversation_id}", response_model=ConversationDetail)
def get_conversation(
    project_name: str, conversation_id: ConversationId, session: SessionDep, user: CurrentUser
) -> ConversationDetail:
    """A conversation with all its messages (replies still streaming show their text so far)."""
    projects.get_project(session, project_name)
    assert user.id is not None
    conv = convs.get_conversation(session, conversation_id, project_name, user.id)
    active = convs.active_turn(session, conversation_id)
    return ConversationDetail(
        id=conversation_id,
        project_name=conv.project_name,
        title=conv.title,
        created_at=iso(conv.created_at),
        updated_at=iso(conv.updated_at),
        messages=[
            ConversationMessage(
                id=m.id or 0,
                role=m.role,
                content=m.content,
                timestamp=iso(m.created_at),
                status=m.status,
                tool_calls=m.tool_calls or [],
                turn_id=m.turn_id,
            )
            for m in convs.messages_of(session, conversation_id)
        ],
        active_turn_id=active.id if active else None,
    )


def _turns_to_delete(
    session: Session, project_name: str, conversation_id: int, user_id: int
) -> list[int]:
    """The ids of the conversation's turns, all finished (Conflict while a reply runs)."""
    projects.get_project(session, project_name)
    convs.get_conversation(session, conversation_id, project_name, user_id)
    if convs.active_turn(session, conversation_id) is not None:
        raise Conflict(REPLY_RUNNING)
    turns = session.exec(select(Turn).where(Turn.conversation_id == conversation_id)).all()
    return [t.id for t in turns if t.id is not None]


def _delete(session: Session, project_name: str, conversation_id: int, user_id: int) -> None:
    conv = convs.get_conversation(session, conversation_id, project_name, user_id)
    if convs.active_turn(session, conversation_id) is not None:
        raise Conflict(REPLY_RUNNING)  # one started since we looked
    convs.delete_conversation(session, conv)
    session.commit()


@router.delete("/{project_name}/{conversation_id}", response_model=Success)
async def delete_conversation(
    project_name: str,
    conversation_id: ConversationId,
    session: SessionDep,
    user: CurrentUser,
    redis: RedisDep,
) -> Success:
    """Delete a conversation and its messages (not while a reply is being generated)."""
    assert user.id is not None
    turn_ids = await run_in_threadpool(
        _turns_to_delete, session, project_name, conversation_id, user.id
    )
    # SQLite hands a deleted row's id to the next row: drop the turns' Redis state first, so
    # a future turn with the same id cannot replay this conversation's chunks (or be cancelled
    # by its cancel flag). The turns are finished, so nothing writes these keys any more.
    if turn_ids:
        keys = [k for t in turn_ids for k in (turn_log(t), cancel_key(t), heartbeat_key(t))]
        try:
            await redis.delete(*keys)
        except REDIS_ERRORS:
            log.warning("conversation %s: Redis unavailable, not deleted", conversation_id)
            raise HTTPException(
                503, "The conversation cannot be deleted right now; please try again"
            ) from None
    await run_in_threadpool(_delete, session, project_name, conversation_id, user.id)
    return Success(message="Conversation deleted")


def _owned(session: Session, project_name: str, conversation_id: int, user_id: int) -> None:
    projects.get_project(session, project_name)
    convs.get_conversation(session, conversation_id, project_name, user_id)
    # End the request's transaction before cancel_turn writes in sessions of its own: signing
    # in wrote the token's last-use time, and SQLite would hold that write lock against them.
    session.commit()


@router.post("/{project_name}/{conversation_id}/cancel", response_model=TurnPublic)
async def cancel(
    project_name: str,
    conversation_id: ConversationId,
    session: SessionDep,
    user: CurrentUser,
    redis: RedisDep,
    settings: SettingsDep,
) -> TurnPublic:
    """Stop the reply being generated in a conversation (it is kept, marked cancelled)."""
    assert user.id is not None
    await run_in_threadpool(_owned, session, project_name, conversation_id, user.id)
    turn: Turn = await cancel_turn(redis, settings, conversation_id)
    assert turn.id is not None
    return TurnPublic(
        id=turn.id,
        conversation_id=turn.conversation_id,
        status=turn.status,
        attempt=turn.attempt,
        last_seq=turn.last_seq,
        error=turn.error,
        created_at=iso(turn.created_at),
        finished_at=iso(turn.finished_at),
    )
