"""Turn state transitions, each a conditional UPDATE so that exactly one actor wins.

A turn is owned by (id, attempt). The worker that claimed an attempt writes progress only while
the row still says `running` with its attempt; the watchdog moves a lost turn on by bumping the
attempt. Whoever's UPDATE matches a row wins; everyone else learns they are stale and stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, update
from sqlmodel import Session, col, select

from shared.conversations import TERMINAL_MESSAGE_STATUS, assistant_reply
from shared.db import session_scope
from shared.models import Conversation, Message, MessageStatus, Turn, TurnStatus, utcnow


def _rows(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def claim(session: Session, turn_id: int, attempt: int, worker: str) -> bool:
    """queued -> running for this attempt; False if another delivery or attempt owns it."""
    result = session.execute(
        update(Turn)
        .where(col(Turn.id) == turn_id, col(Turn.attempt) == attempt)
        .where(col(Turn.status) == TurnStatus.queued)
        .values(status=TurnStatus.running, started_at=utcnow(), worker=worker[:200])
    )
    return _rows(result) == 1


def reset_reply(session: Session, turn: Turn) -> Message:
    """The turn's one assistant message, created on first run and emptied on a re-run."""
    assert turn.id is not None
    reply = assistant_reply(session, turn.id)
    if reply is None:
        reply = Message(conversation_id=turn.conversation_id, role="assistant", turn_id=turn.id)
    reply.content = ""
    reply.tool_calls = []
    reply.status = MessageStatus.streaming
    reply.updated_at = utcnow()
    session.add(reply)
    session.flush()
    return reply


def save_progress(
    turn_id: int,
    attempt: int,
    message_id: int,
    content: str,
    tool_calls: list[dict[str, Any]],
    last_seq: int,
) -> bool:
    with session_scope() as session:
        if not _owns(session, turn_id, attempt, last_seq):
            return False
        session.execute(
            update(Message)
            .where(col(Message.id) == message_id)
            .values(content=content, tool_calls=tool_calls, updated_at=utcnow())
        )
        return True


def finish(
    turn_id: int,
    attempt: int,
    message_id: int | None,
    content: str,
    tool_calls: list[dict[str, Any]],
    status: TurnStatus,
    last_seq: int,
    error: str | None = None,
    from_statuses: tuple[TurnStatus, ...] = (TurnStatus.running,),
) -> bool:
    """A terminal status, from one of `from_statuses`, storing the reply with it.

    False if the turn is not in such a state any more: e.g. the API cancelling a queued turn
    (from queued only) loses to a worker that has just claimed it, and must signal instead.
    """
    with session_scope() as session:
        now = utcnow()
        result = session.execute(
            update(Turn)
            .where(col(Turn.id) == turn_id, col(Turn.attempt) == attempt)
            .where(col(Turn.status).in_(list(from_statuses)))
            .values(status=status, finished_at=now, last_seq=last_seq, error=error)
        )
        if _rows(result) != 1:
            return False
        if message_id is not None:
            session.execute(
                update(Message)
                .where(col(Message.id) == message_id)
                .values(
                    content=content,
                    tool_calls=tool_calls,
                    updated_at=now,
                    status=TERMINAL_MESSAGE_STATUS[status],
                )
            )
        else:
            # Ended before (re)starting: a reply left from an earlier attempt keeps its text
            # but must not stay "streaming" forever.
            _end_reply(session, turn_id, TERMINAL_MESSAGE_STATUS[status])
        turn = session.get(Turn, turn_id)
        if turn is not None:
            session.execute(
                update(Conversation)
                .where(col(Conversation.id) == turn.conversation_id)
                .values(updated_at=now)
            )
        return True


def _end_reply(session: Session, turn_id: int, status: MessageStatus) -> None:
    session.execute(
        update(Message)
        .where(col(Message.turn_id) == turn_id, col(Message.status) == MessageStatus.streaming)
        .values(status=status, updated_at=utcnow())
    )


def _owns(session: Session, turn_id: int, attempt: int, last_seq: int) -> bool:
    result = session.execute(
        update(Turn)
        .where(col(Turn.id) == turn_id, col(Turn.attempt) == attempt)
        .where(col(Turn.status) == TurnStatus.running)
        .values(last_seq=last_seq)
    )
    return _rows(result) == 1


@dataclass(frozen=True)
class Recovery:
    turn_id: int
    rerun: bool  # True: re-dispatched as attempt `attempt`; False: failed
    attempt: int
    seq: int  # the seq the recovery chunk must carry


def recover_lost(turn_id: int, attempt: int, logged_seq: int, max_attempts: int) -> Recovery | None:
    """A running turn whose worker vanished: re-queue it once more, or fail it. Exactly once."""
    with session_scope() as session:
        turn = session.get(Turn, turn_id)
        if turn is None or turn.attempt != attempt or turn.status != TurnStatus.running:
            return None
        seq = max(turn.last_seq, logged_seq) + 1
        rerun = attempt < max_attempts
        values: dict[str, Any] = {"last_seq": seq}
        if rerun:
            # started_at restarts the clock: the queued time-out counts from the re-queue.
            values.update(
                status=TurnStatus.queued, attempt=attempt + 1, worker=None, started_at=utcnow()
            )
        else:
            values.update(
                status=TurnStatus.failed,
                finished_at=utcnow(),
                error="The worker running this reply stopped",
            )
        result = session.execute(
            update(Turn)
            .where(col(Turn.id) == turn_id, col(Turn.attempt) == attempt)
            .where(col(Turn.status) == TurnStatus.running)
            .values(**values)
        )
        if _rows(result) != 1:
            return None
        if not rerun:
            reply = assistant_reply(session, turn_id)
            if reply is not None:
                reply.status = MessageStatus.failed
        return Recovery(turn_id, rerun, attempt + 1 if rerun else attempt, seq)


def expire_queued(turn_id: int, attempt: int, logged_seq: int) -> int | None:
    """A turn no worker picked up in time: fail it; returns the seq of its error chunk."""
    with session_scope() as session:
        turn = session.get(Turn, turn_id)
        if turn is None or turn.attempt != attempt or turn.status != TurnStatus.queued:
            return None
        seq = max(turn.last_seq, logged_seq) + 1
        result = session.execute(
            update(Turn)
            .where(col(Turn.id) == turn_id, col(Turn.attempt) == attempt)
            .where(col(Turn.status) == TurnStatus.queued)
            .values(
                status=TurnStatus.failed,
                finished_at=utcnow(),
                last_seq=seq,
                error="No worker picked up this reply in time",
            )
        )
        if _rows(result) != 1:
            return None
        _end_reply(session, turn_id, MessageStatus.failed)
        return seq


@dataclass(frozen=True)
class TurnRef:
    id: int
    attempt: int
    status: str
    since: datetime


def unfinished_turns() -> list[TurnRef]:
    with session_scope() as session:
        rows = session.exec(
            select(Turn).where(col(Turn.status).in_([TurnStatus.queued, TurnStatus.running]))
        ).all()
        return [TurnRef(t.id or 0, t.attempt, t.status, t.started_at or t.created_at) for t in rows]


def older_than(ref: TurnRef, seconds: float) -> bool:
    return utcnow() - ref.since > timedelta(seconds=seconds)
