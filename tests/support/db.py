"""Helpers for the persistence tests: a user and conversation, turns started and claimed, races.

The fixtures that give each database kind (`engine`, `scoped`, `conv_ids`) are in
tests/shared/conftest.py; these helpers work on any engine.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from shared import auth
from shared import conversations as convs
from shared.models import Conversation, Message, Turn, TurnStatus
from shared.turns import state

T = TypeVar("T")


@dataclass(frozen=True)
class Ids:
    user_id: int
    conversation_id: int


def new_user(session: Session, name: str | None = None) -> int:
    user = auth.create_user(session, name or f"u{uuid.uuid4().hex[:8]}")
    assert user.id is not None
    return user.id


def conv_of(s: Session, ids: Ids) -> Conversation:
    return convs.get_conversation(s, ids.conversation_id, "demo", ids.user_id)


def count(engine: Engine, model: type[Any], conversation_id: int) -> int:
    with Session(engine) as s:
        return int(
            s.exec(
                select(func.count())
                .select_from(model)
                .where(model.conversation_id == conversation_id)
            ).one()
        )


def start(engine: Engine, ids: Ids, content: str = "hello", cmid: str | None = None) -> int:
    """A stored user message and its queued turn; the turn's id."""
    with Session(engine) as s:
        new = convs.start_turn(s, conv_of(s, ids), content, cmid)
        assert new.created
        assert new.turn.id is not None
        turn_id = new.turn.id
        s.commit()
    return turn_id


def turn_row(engine: Engine, turn_id: int) -> Turn:
    with Session(engine) as s:
        turn = s.get(Turn, turn_id)
        assert turn is not None
        return turn


def message_row(engine: Engine, message_id: int) -> Message:
    with Session(engine) as s:
        msg = s.get(Message, message_id)
        assert msg is not None
        return msg


def set_status(engine: Engine, turn_id: int, status: TurnStatus) -> None:
    with Session(engine) as s:
        turn = s.get(Turn, turn_id)
        assert turn is not None
        turn.status = status
        s.add(turn)
        s.commit()


def claim_with_reply(engine: Engine, turn_id: int, attempt: int = 1) -> int:
    """What a worker does first: claim the attempt and (re)create the reply message."""
    with Session(engine) as s:
        state.claim(s, turn_id=turn_id, attempt=attempt, worker="w1@test")
        turn = s.get(Turn, turn_id)
        assert turn is not None
        reply = state.reset_reply(s, turn)
        assert reply.id is not None
        reply_id = reply.id
        s.commit()
    return reply_id


def race(n: int, fn: Callable[[], T]) -> list[T]:
    """Run `fn` in n threads released together; their results (exceptions re-raised)."""
    barrier = threading.Barrier(n)
    results: list[T] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            out = fn()
            with lock:
                results.append(out)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    if errors:
        raise errors[0]
    return results
