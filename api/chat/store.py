"""The database side of the chat commands. Reads are short transactions of their own; writes
take the caller's session, so the command runs them on the API's group commit."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from api.deps import current_user, resolve_user
from api.limits import check_new_turn
from shared import conversations as convs
from shared.config import Settings
from shared.db import read_scope
from shared.errors import NotFound, Unauthorized
from shared.models import Message, Turn, TurnStatus, storable_id


@dataclass(frozen=True)
class Opened:
    conversation_id: int
    active_turn_id: int | None  # a reply still being written, to replay


def recheck_credential(settings: Settings, credential: str | None, user_id: int) -> None:
    """The socket's credential still names its user: a revoked token stops working on the
    sockets it opened too, before anything is created or continued (a reply already
    streaming finishes)."""
    if current_user(settings, credential).id != user_id:
        raise Unauthorized("Invalid or revoked token")


def create_conversation(user_id: int, project: str, session: Session) -> Opened:
    """A new conversation with its stored greeting (a write: through the group commit)."""
    conv = convs.create_conversation(session, project, user_id)
    convs.add_greeting(session, conv)
    assert conv.id is not None
    return Opened(conv.id, None)


def reopen_conversation(user_id: int, project: str, conversation_id: int) -> Opened:
    """The caller's conversation and its running reply, if any (a read)."""
    with read_scope() as session:
        convs.get_conversation(session, conversation_id, project, user_id)
        active = convs.active_turn(session, conversation_id)
        return Opened(conversation_id, active.id if active else None)


def owns_conversation(user_id: int, project: str, conversation_id: int) -> bool:
    with read_scope() as session:
        try:
            convs.get_conversation(session, conversation_id, project, user_id)
        except NotFound:
            return False
        return True


def load_turn(user_id: int, project: str, turn_id: int) -> Turn:
    """The caller's turn in this project (anything else is indistinguishable from absent)."""
    with read_scope() as session:
        turn = session.get(Turn, turn_id) if storable_id(turn_id) else None
        if turn is None or turn.user_id != user_id:
            raise NotFound("Turn not found")
        # The turn must belong to this project too (the conversation check covers the user).
        convs.get_conversation(session, turn.conversation_id, project, user_id)
        return turn


@dataclass(frozen=True)
class Begun:
    turn_id: int
    created: bool  # False: the same client_message_id named a turn that already exists
    dispatch_attempt: int  # the attempt to hand to the broker if it still waits, else 0
    user_message_id: int  # the question the turn answers
    parent_id: int | None  # the question's parent (None: it starts the conversation)


@dataclass(frozen=True)
class Ask:
    """A new question, after `parent_id` (AT_END: the end of the path shown)."""

    content: str
    parent_id: int | convs.AtEnd | None = convs.AT_END


@dataclass(frozen=True)
class Regenerate:
    """Answer the question of reply `reply_id` again."""

    reply_id: int


def begin_turn(
    settings: Settings,
    credential: str | None,
    user_id: int,
    project: str,
    conversation_id: int,
    request: Ask | Regenerate,
    client_message_id: str | None,
    session: Session,
) -> Begun:
    """Store the question (or, to regenerate, name the existing one) and its queued turn,
    after re-checking the credential and limits (a write: through the group commit)."""
    if resolve_user(session, settings, credential).id != user_id:
        raise Unauthorized("Invalid or revoked token")
    conv = convs.get_conversation(session, conversation_id, project, user_id)
    assert conv.id is not None
    if convs.turn_by_client_id(session, conv.id, client_message_id) is None:
        check_new_turn(session, settings, user_id)
    if isinstance(request, Regenerate):
        new = convs.start_regenerate(session, conv, request.reply_id, client_message_id)
    else:
        new = convs.start_turn(
            session, conv, request.content, client_message_id, parent_id=request.parent_id
        )
    turn = new.turn
    assert turn.id is not None
    question = session.get(Message, turn.user_message_id)
    assert question is not None
    waiting = turn.status == TurnStatus.queued
    return Begun(
        turn.id,
        new.created,
        turn.attempt if waiting else 0,
        user_message_id=turn.user_message_id,
        parent_id=question.parent_id,
    )
