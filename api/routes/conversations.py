"""Conversations of a project, at autocoder's paths and in its shapes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser, ReadSessionDep, RedisDep, SessionDep, SettingsDep
from api.schemas import (
    ActiveLeaf,
    ConversationDetail,
    ConversationMessage,
    ConversationSummary,
    Success,
    TurnPublic,
    UsageTotals,
)
from api.turns import cancel_turn
from shared import branches, projects
from shared import conversations as convs
from shared.db import read_scope
from shared.errors import Conflict
from shared.models import Conversation, Message, Turn, iso
from shared.usage import usage_of

router = APIRouter(prefix="/api/assistant/conversations", tags=["assistant-chat"])

# Database ids are 64-bit: anything outside is refused (422) instead of failing the query (500).
ConversationId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]
REPLY_RUNNING = "A reply is still being generated in this conversation; cancel it first"


def summary_of(conv: Conversation, count: int) -> ConversationSummary:
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
        summary_of(s.conversation, s.message_count)
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
    return summary_of(conv, 0)


@router.get("/{project_name}/{conversation_id}", response_model=ConversationDetail)
def get_conversation(
    project_name: str, conversation_id: ConversationId, session: ReadSessionDep, user: CurrentUser
) -> ConversationDetail:
    """A conversation's active path, with each message's siblings and usage (replies still
    streaming show their text so far)."""
    projects.get_project(session, project_name)
    assert user.id is not None
    conv = convs.get_conversation(session, conversation_id, project_name, user.id)
    return _detail(session, conv)


@router.put("/{project_name}/{conversation_id}/active_leaf", response_model=ConversationDetail)
def put_active_leaf(
    project_name: str,
    conversation_id: ConversationId,
    body: ActiveLeaf,
    session: SessionDep,
    user: CurrentUser,
) -> ConversationDetail:
    """Switch branches: show the path through a message (not while a reply is being written)."""
    projects.get_project(session, project_name)
    assert user.id is not None
    conv = convs.get_conversation(session, conversation_id, project_name, user.id)
    convs.switch_branch(session, conv, body.message_id)
    session.commit()
    return _detail(session, conv)


def _detail(session: Session, conv: Conversation) -> ConversationDetail:
    assert conv.id is not None
    tree = branches.load_tree(session, conv.id)
    active = convs.active_turn(session, conv.id)
    path = branches.shown_path(tree, conv.active_leaf_id, active)
    leaf = tree.leaf(conv.active_leaf_id)
    return ConversationDetail(
        id=conv.id,
        project_name=conv.project_name,
        title=conv.title,
        created_at=iso(conv.created_at),
        updated_at=iso(conv.updated_at),
        messages=[_message(tree, m) for m in path],
        active_turn_id=active.id if active else None,
        active_leaf_id=leaf.id if leaf else None,
        title_source=conv.title_source,
        usage=UsageTotals(**usage_of(tree.by_id.values()).as_dict()),
    )


def _message(tree: branches.Tree, m: Message) -> ConversationMessage:
    assert m.id is not None
    siblings = tree.sibling_ids(m)
    return ConversationMessage(
        id=m.id,
        role=m.role,
        content=m.content,
        timestamp=iso(m.created_at),
        status=m.status,
        tool_calls=m.tool_calls or [],
        turn_id=m.turn_id,
        references=m.references,
        stop_reason=m.stop_reason,
        parent_id=tree.parent_of(m),
        sibling_ids=siblings,
        sibling_index=siblings.index(m.id),
        model=m.model,
        input_tokens=m.input_tokens,
        output_tokens=m.output_tokens,
        cache_read_tokens=m.cache_read_tokens,
        cache_write_tokens=m.cache_write_tokens,
        cost_usd=m.cost_usd,
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
