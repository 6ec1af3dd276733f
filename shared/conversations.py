"""Conversations, their messages and turns: the database side of a chat (api/ and worker/)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from shared import branches
from shared.errors import Conflict, NotFound
from shared.models import (
    ACTIVE_TURN_STATUSES,
    Conversation,
    Message,
    Turn,
    storable_id,
    utcnow,
)
from shared.protocol import greeting

TITLE_CHARS = 50  # as the original: the first 50 characters, then "..." (fits the 100 column)
BUSY = "A reply is still being generated in this conversation; wait or cancel it"


@dataclass(frozen=True)
class ConversationWithCount:
    conversation: Conversation
    message_count: int


def create_conversation(session: Session, project_name: str, user_id: int) -> Conversation:
    conv = Conversation(project_name=project_name, user_id=user_id)
    session.add(conv)
    session.flush()
    return conv


def add_greeting(session: Session, conv: Conversation) -> Message:
    assert conv.id is not None
    msg = Message(conversation_id=conv.id, role="assistant", content=greeting(conv.project_name))
    session.add(msg)
    session.flush()
    conv.active_leaf_id = msg.id
    return msg


def is_greeting(msg: Message) -> bool:
    """Every reply belongs to a turn; only the greeting is stored without one. Known by that,
    not by its text, which names the project (and was worded differently before)."""
    return msg.role == "assistant" and msg.turn_id is None


def title_for(first_message: str) -> str:
    text = first_message.strip().replace("\n", " ")
    return text[:TITLE_CHARS] + ("..." if len(text) > TITLE_CHARS else "")


def get_conversation(
    session: Session, conversation_id: int, project_name: str, user_id: int
) -> Conversation:
    """The caller's conversation in this project; anything else is indistinguishable from absent."""
    if not storable_id(conversation_id):
        # No such row can exist (and the database would refuse the comparison).
        raise NotFound("Conversation not found")
    conv = session.get(Conversation, conversation_id)
    if conv is None or conv.project_name != project_name or conv.user_id != user_id:
        raise NotFound("Conversation not found")
    return conv


def list_conversations(
    session: Session, project_name: str, user_id: int
) -> list[ConversationWithCount]:
    counts = (
        select(Message.conversation_id, func.count(col(Message.id)).label("n"))
        .group_by(col(Message.conversation_id))
        .subquery()
    )
    rows = session.exec(
        select(Conversation, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.conversation_id == Conversation.id)
        .where(Conversation.project_name == project_name, Conversation.user_id == user_id)
        .order_by(col(Conversation.updated_at).desc(), col(Conversation.id).desc())
    ).all()
    return [ConversationWithCount(conv, int(n)) for conv, n in rows]


def message_count(session: Session, conversation_id: int) -> int:
    """All its messages, every branch (as `list_conversations` counts them)."""
    return int(
        session.exec(
            select(func.count(col(Message.id))).where(Message.conversation_id == conversation_id)
        ).one()
    )


def messages_of(session: Session, conversation_id: int) -> list[Message]:
    return list(
        session.exec(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(col(Message.id))
        ).all()
    )


def active_turn(session: Session, conversation_id: int) -> Turn | None:
    return session.exec(
        select(Turn).where(
            Turn.conversation_id == conversation_id,
            col(Turn.status).in_([s.value for s in ACTIVE_TURN_STATUSES]),
        )
    ).first()


def delete_conversation(session: Session, conv: Conversation) -> None:
    # Explicit child deletes: SQLite only cascades with foreign keys on, PostgreSQL always.
    session.exec(delete(Turn).where(col(Turn.conversation_id) == conv.id))
    session.exec(delete(Message).where(col(Message.conversation_id) == conv.id))
    session.delete(conv)


def touch(conv: Conversation, when: datetime | None = None) -> None:
    conv.updated_at = when or utcnow()


@dataclass(frozen=True)
class NewTurn:
    turn: Turn
    created: bool  # False when client_message_id named a turn that already exists


class AtEnd(enum.Enum):
    """The type of AT_END (an enum member, so type checkers can tell it from an id)."""

    token = "at end"


# A new question's default place: after the end of the path shown (UserMsg without parent_id).
AT_END: Final = AtEnd.token


def turn_by_client_id(
    session: Session, conversation_id: int, client_message_id: str | None
) -> Turn | None:
    if client_message_id is None:
        return None
    return session.exec(
        select(Turn).where(
            Turn.conversation_id == conversation_id, Turn.client_message_id == client_message_id
        )
    ).first()


def start_turn(
    session: Session,
    conv: Conversation,
    content: str,
    client_message_id: str | None = None,
    *,
    parent_id: int | AtEnd | None = AT_END,
) -> NewTurn:
    """Store the user message and a queued turn, atomically; one active turn per conversation.

    The question goes after `parent_id` (a reply or the greeting of this conversation; None:
    the root; AT_END: the end of the path shown) and becomes the active leaf."""
    conv_id = conv.id
    assert conv_id is not None
    found = _existing_turn(session, conv_id, client_message_id)
    if found is not None:
        return found
    parent = branches.question_parent(
        session,
        conv_id,
        None if isinstance(parent_id, AtEnd) else parent_id,
        explicit=not isinstance(parent_id, AtEnd),
        active_leaf_id=conv.active_leaf_id,
    )

    def question() -> int:
        user_msg = Message(conversation_id=conv_id, parent_id=parent, role="user", content=content)
        session.add(user_msg)
        session.flush()
        assert user_msg.id is not None
        return user_msg.id

    new = _insert_turn(session, conv, question, client_message_id)
    if new.created and conv.title is None:
        # Conditional: a rename committed since `conv` was read (PostgreSQL reads committed
        # rows) stands.
        session.execute(
            update(Conversation)
            .where(col(Conversation.id) == conv_id, col(Conversation.title).is_(None))
            .values(title=title_for(content))
        )
    return new


def start_regenerate(
    session: Session, conv: Conversation, reply_id: int, client_message_id: str | None = None
) -> NewTurn:
    """A queued turn answering again the question of reply `reply_id` (its reply will be a
    sibling of that reply); the question becomes the active leaf. One active turn per
    conversation, as for a new question."""
    assert conv.id is not None
    found = _existing_turn(session, conv.id, client_message_id)
    if found is not None:
        return found
    question_id = branches.question_to_regenerate(session, conv.id, reply_id).id
    assert question_id is not None
    return _insert_turn(session, conv, lambda: question_id, client_message_id)


def _existing_turn(
    session: Session, conversation_id: int, client_message_id: str | None
) -> NewTurn | None:
    """The turn a repeated client_message_id names; Conflict while another turn is active."""
    existing = turn_by_client_id(session, conversation_id, client_message_id)
    if existing is not None:
        return NewTurn(existing, created=False)
    active = active_turn(session, conversation_id)
    if active is not None:
        if client_message_id is not None and active.client_message_id == client_message_id:
            return NewTurn(active, created=False)  # its twin committed a moment ago
        raise Conflict(BUSY)
    return None


def _insert_turn(
    session: Session,
    conv: Conversation,
    question: Callable[[], int],
    client_message_id: str | None,
) -> NewTurn:
    """The queued turn for the question `question()` stores or names, in one savepoint."""
    assert conv.id is not None
    assert conv.user_id is not None
    try:
        # A savepoint: losing a race to one of the unique indexes leaves nothing behind.
        with session.begin_nested():
            question_id = question()
            turn = Turn(
                conversation_id=conv.id,
                user_id=conv.user_id,
                user_message_id=question_id,
                client_message_id=client_message_id,
            )
            session.add(turn)
            session.flush()
    except IntegrityError:
        # Another API process stored the same client_message_id (then that turn is the
        # answer) or another turn of this conversation, a moment before us.
        existing = turn_by_client_id(session, conv.id, client_message_id)
        if existing is not None:
            return NewTurn(existing, created=False)
        raise Conflict(BUSY) from None
    # The path shown goes through the question now: its reply continues it when it exists.
    conv.active_leaf_id = question_id
    touch(conv)
    return NewTurn(turn, created=True)


def is_finished(turn: Turn) -> bool:
    return turn.status not in {s.value for s in ACTIVE_TURN_STATUSES}


def assistant_reply(session: Session, turn_id: int) -> Message | None:
    return session.exec(select(Message).where(Message.turn_id == turn_id)).first()


SWITCH_WHILE_BUSY = "A reply is still being generated in this conversation; wait or cancel it first"


def switch_branch(session: Session, conv: Conversation, message_id: int) -> None:
    """Show the branch through `message_id` (a message of this conversation): it becomes the
    active leaf. Refused while a reply is being written, whose branch is the one shown."""
    assert conv.id is not None
    # PostgreSQL: hold the conversation until commit, so a turn starting meanwhile sets its
    # own question as the leaf after this, never before (SQLite serialises writers already).
    session.exec(
        select(Conversation.id).where(Conversation.id == conv.id).with_for_update()
    ).first()
    if branches.own_message(session, conv.id, message_id) is None:
        raise NotFound(branches.MESSAGE_NOT_FOUND)
    if active_turn(session, conv.id) is not None:
        raise Conflict(SWITCH_WHILE_BUSY)
    conv.active_leaf_id = message_id
    session.add(conv)
