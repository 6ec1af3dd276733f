"""Conversations of a project, at autocoder's paths and in its shapes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser, ReadSessionDep, RedisDep, SessionDep, SettingsDep
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
from shared.db import read_scope
from shared.errors import Conflict
from shared.models import Conversation, Turn

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
    project_name: str, session: ReadSessionDep, user: CurrentUser
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
    project_name: str, conversation_id: ConversationId, session: ReadSessionDep, user: CurrentUser
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
                references=m.references,
                stop_reason=m.stop_reason,
            )
            for m in convs.messages_of(session, conversation_id)
        ],
        active_turn_id=active.id if active else None,
    )


@router.delete("/{project_name}/{conversation_id}", response_model=Success)
def delete_conversation(
    project_name: str, conversation_id: ConversationId, session: SessionDep, user: CurrentUser
) -> Success:
    """Delete a conversation and its messages (not while a reply is being generated)."""
    projects.get_project(session, project_name)
    assert user.id is not None
    conv = convs.get_conversation(session, conversation_id, project_name, user.id)
    if convs.active_turn(session, conversation_id) is not None:
        raise Conflict(REPLY_RUNNING)
    # Turn ids are never reused (AUTOINCREMENT), so the turns' Redis state (replay logs, cancel
    # flags) cannot reach a later turn; it expires on its own.
    convs.delete_conversation(session, conv)
    session.commit()
    return Success(message="Conversation deleted")


def _owned(project_name: str, conversation_id: int, user_id: int) -> None:
    # Its own short read: cancel_turn writes in sessions of its own.
    with read_scope() as session:
        projects.get_project(session, project_name)
        convs.get_conversation(session, conversation_id, project_name, user_id)


@router.post("/{project_name}/{conversation_id}/cancel", response_model=TurnPublic)
async def cancel(
    project_name: str,
    conversation_id: ConversationId,
    user: CurrentUser,
    redis: RedisDep,
    settings: SettingsDep,
    request: Request,
) -> TurnPublic:
    """Stop the reply being generated in a conversation (it is kept, marked cancelled)."""
    assert user.id is not None
    await run_in_threadpool(_owned, project_name, conversation_id, user.id)
    turn: Turn = await cancel_turn(redis, settings, request.app.state.db, conversation_id)
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
