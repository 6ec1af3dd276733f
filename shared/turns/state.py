"""A turn's transitions, each a conditional UPDATE so that exactly one actor wins.

    queued --claim--> running --finish_running--> complete | cancelled | failed
      |                  |--requeue_lost--> queued (attempt + 1)       (watchdog: worker vanished)
      |                  |--hand_back--> queued (attempt + 1)          (its worker is stopping)
      |                  |--fail_lost / fail_unstarted--> failed
      |--cancel_queued--> cancelled            (API: stopped before any worker took it)
      |--fail_queued--> failed                 (not enqueued, or no worker took it in time)
      |--fail_unstarted--> failed              (queued or just claimed: could not start)

A turn is owned by (id, attempt). Each function names its allowed starting states itself; the
caller says only which turn and attempt it means. The ending transitions return the seq of the
turn's terminal chunk (one past everything published so far), or None when another actor got
there first; `shared.turns.ending` pairs each with the chunk that announces it. Functions take
the caller's session and never commit: the edge that opened the session does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, bindparam, case, update
from sqlmodel import Session, col, select

from shared.conversations import assistant_reply
from shared.models import (
    ACTIVE_TURN_STATUSES,
    Conversation,
    Message,
    MessageStatus,
    Turn,
    TurnStatus,
    utcnow,
)
from shared.usage import Usage, current_month, record_usage

QUEUED = (TurnStatus.queued,)
RUNNING = (TurnStatus.running,)
TERMINAL_MESSAGE_STATUS = {
    TurnStatus.complete: MessageStatus.complete,
    TurnStatus.cancelled: MessageStatus.cancelled,
    TurnStatus.failed: MessageStatus.failed,
}


class TurnSuperseded(Exception):
    """Another attempt or actor owns this turn now: whoever learns it stops quietly.

    Raised where it is detected (a lost claim, a progress save or publish that finds the turn
    moved on) and caught in one place, the worker's turn runner.
    """


@dataclass(frozen=True)
class ReplyText:
    """What the assistant said so far in a turn: stored with progress saves and endings."""

    message_id: int
    content: str
    tool_calls: list[dict[str, Any]]
    # Known when the reply ends (stored then, never by progress saves).
    references: list[dict[str, Any]] | None = None
    stop_reason: str | None = None
    # Known when the reply ends: the tokens of all its rounds, priced, and the model.
    usage: Usage | None = None
    model: str | None = None


# ---- while a turn runs ----------------------------------------------------------------------


def claim(session: Session, *, turn_id: int, attempt: int, worker: str) -> None:
    """queued -> running for this attempt; TurnSuperseded if another delivery or attempt has it."""
    result = session.execute(
        update(Turn)
        .where(col(Turn.id) == turn_id, col(Turn.attempt) == attempt)
        .where(col(Turn.status).in_(QUEUED))
        .values(status=TurnStatus.running, started_at=utcnow(), worker=worker[:200])
    )
    if _rows(result) != 1:
        raise TurnSuperseded(f"turn {turn_id} attempt {attempt} is not queued")


def reset_reply(session: Session, turn: Turn) -> Message:
    """The turn's one assistant message, created on first run and emptied on a re-run; a
    child of the question it answers (a regenerated reply is thereby a sibling of the old)."""
    assert turn.id is not None
    reply = assistant_reply(session, turn.id)
    if reply is None:
        reply = Message(
            conversation_id=turn.conversation_id,
            parent_id=turn.user_message_id,
            role="assistant",
            turn_id=turn.id,
        )
    reply.content = ""
    reply.tool_calls = []
    reply.status = MessageStatus.streaming
    reply.updated_at = utcnow()
    session.add(reply)
    session.flush()
    return reply


def save_progress(
    session: Session, *, turn_id: int, attempt: int, reply: ReplyText, last_seq: int
) -> None:
    """Store the reply so far, if this attempt still runs the turn; else TurnSuperseded."""
    if save_progress_many(session, [Progress(turn_id, attempt, reply, last_seq)]):
        raise TurnSuperseded(f"turn {turn_id} attempt {attempt} no longer runs")


@dataclass(frozen=True)
class Progress:
    turn_id: int
    attempt: int
    reply: ReplyText
    last_seq: int


def save_progress_many(session: Session, saves: list[Progress]) -> set[tuple[int, int]]:
    """`save_progress` for many turns in three statements, whatever their number; the
    (turn, attempt)s that no longer run (nothing of theirs is written)."""
    if not saves:
        return set()
    turns = Turn.__table__  # type: ignore[attr-defined]
    ids = [p.turn_id for p in saves]
    owning = select(turns.c.id, turns.c.attempt).where(
        turns.c.id.in_(ids), turns.c.status.in_(RUNNING)
    )
    # PostgreSQL: lock the rows until commit, so a watchdog cannot move one in between.
    running = {(row[0], row[1]) for row in session.execute(owning.with_for_update())}
    owned = [p for p in saves if (p.turn_id, p.attempt) in running]
    if owned:
        session.execute(
            update(turns)
            .where(turns.c.id == bindparam("t_id"), turns.c.attempt == bindparam("t_attempt"))
            .values(last_seq=bindparam("t_seq")),
            [{"t_id": p.turn_id, "t_attempt": p.attempt, "t_seq": p.last_seq} for p in owned],
        )
        messages = Message.__table__  # type: ignore[attr-defined]
        now = utcnow()
        session.execute(
            update(messages)
            .where(messages.c.id == bindparam("m_id"))
            .values(
                content=bindparam("m_content"),
                tool_calls=bindparam("m_calls"),
                updated_at=now,
            ),
            [
                {
                    "m_id": p.reply.message_id,
                    "m_content": p.reply.content,
                    "m_calls": p.reply.tool_calls,
                }
                for p in owned
            ],
        )
    return {(p.turn_id, p.attempt) for p in saves} - {(p.turn_id, p.attempt) for p in owned}


def requeue_lost(session: Session, *, turn_id: int, attempt: int, after_seq: int) -> int | None:
    """running -> queued as attempt + 1 (its worker vanished); the seq of the `turn_restarted`
    chunk that tells followers to drop the partial text, or None if another actor moved first."""
    # started_at restarts the clock: the queued time-out counts from the re-queue.
    values = {"status": TurnStatus.queued, "attempt": attempt + 1, "worker": None}
    return _advance(
        session, turn_id, attempt, RUNNING, after_seq, values | {"started_at": utcnow()}
    )


def hand_back(session: Session, *, turn_id: int, attempt: int, after_seq: int) -> int | None:
    """running -> queued as attempt + 1: its worker is shutting down and gives the turn back
    for another worker to re-run; like `requeue_lost`, the seq of the `turn_restarted` chunk,
    or None if another actor moved first."""
    values = {"status": TurnStatus.queued, "attempt": attempt + 1, "worker": None}
    return _advance(
        session, turn_id, attempt, RUNNING, after_seq, values | {"started_at": utcnow()}
    )


# ---- endings: each returns the seq of the terminal chunk, or None ---------------------------


def finish_running(
    session: Session,
    *,
    turn_id: int,
    attempt: int,
    after_seq: int,
    status: TurnStatus,
    reply: ReplyText,
    error: str | None = None,
    message_status: MessageStatus | None = None,
) -> int | None:
    """running -> complete | cancelled | failed, storing the reply with the matching status
    (or `message_status`, e.g. refused), its references, stop reason, usage and model in one
    UPDATE of its row (which the search index then takes once), and adding the usage to its
    user's month in the ledger."""
    now = utcnow()
    seq = _advance(session, turn_id, attempt, RUNNING, after_seq, _ended(status, error, now))
    if seq is None:
        return None
    extra: dict[str, Any] = {}
    if reply.references is not None:
        extra["references"] = reply.references
    if reply.stop_reason is not None:
        extra["stop_reason"] = reply.stop_reason
    if reply.usage is not None:
        extra.update(reply.usage.as_dict())
    if reply.model is not None:
        extra["model"] = reply.model[:100]
    session.execute(
        update(Message)
        .where(col(Message.id) == reply.message_id)
        .values(
            content=reply.content,
            tool_calls=reply.tool_calls,
            status=message_status or TERMINAL_MESSAGE_STATUS[status],
            updated_at=now,
            **extra,
        )
    )
    owner = _close(session, turn_id, status, now)
    if reply.usage is not None:
        record_usage(session, user_id=owner, month=current_month(), usage=reply.usage)
    return seq


def fail_unstarted(
    session: Session, *, turn_id: int, attempt: int, after_seq: int, error: str
) -> int | None:
    """queued | running -> failed for a turn that could not (re)start: never enqueued, its
    project gone, or an error while loading it. A partial reply of an earlier attempt is kept."""
    return _end(session, turn_id, attempt, (*QUEUED, *RUNNING), after_seq, TurnStatus.failed, error)


def cancel_queued(session: Session, *, turn_id: int, attempt: int, after_seq: int) -> int | None:
    """queued -> cancelled. Loses to a worker that has just claimed it (then signal it instead)."""
    return _end(session, turn_id, attempt, QUEUED, after_seq, TurnStatus.cancelled, None)


def fail_queued(
    session: Session, *, turn_id: int, attempt: int, after_seq: int, error: str
) -> int | None:
    """queued -> failed: the broker refused it, or no worker picked it up in time."""
    return _end(session, turn_id, attempt, QUEUED, after_seq, TurnStatus.failed, error)


def fail_lost(
    session: Session, *, turn_id: int, attempt: int, after_seq: int, error: str
) -> int | None:
    """running -> failed: its worker vanished and no attempts are left."""
    return _end(session, turn_id, attempt, RUNNING, after_seq, TurnStatus.failed, error)


# ---- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnRef:
    id: int
    attempt: int
    status: str
    since: datetime
    worker: str | None = None

    def older_than(self, seconds: float) -> bool:
        return utcnow() - self.since > timedelta(seconds=seconds)


def unfinished_turns(session: Session) -> list[TurnRef]:
    rows = session.exec(select(Turn).where(col(Turn.status).in_(ACTIVE_TURN_STATUSES))).all()
    return [
        TurnRef(t.id or 0, t.attempt, t.status, t.started_at or t.created_at, t.worker)
        for t in rows
    ]


# ---- the conditional UPDATE behind every transition -------------------------------------------


def _end(
    session: Session,
    turn_id: int,
    attempt: int,
    from_statuses: tuple[TurnStatus, ...],
    after_seq: int,
    status: TurnStatus,
    error: str | None,
) -> int | None:
    now = utcnow()
    seq = _advance(session, turn_id, attempt, from_statuses, after_seq, _ended(status, error, now))
    if seq is not None:
        _close(session, turn_id, status, now)
    return seq


def _ended(status: TurnStatus, error: str | None, now: datetime) -> dict[str, Any]:
    return {"status": status, "error": error, "finished_at": now}


def _close(session: Session, turn_id: int, status: TurnStatus, now: datetime) -> int:
    """After a turn ended: a reply left "streaming" (by this attempt or an earlier one) ends
    with it, its text so far kept, and the conversation was active now. The turn's user."""
    session.execute(
        update(Message)
        .where(col(Message.turn_id) == turn_id, col(Message.status) == MessageStatus.streaming)
        .values(status=TERMINAL_MESSAGE_STATUS[status], updated_at=now)
    )
    conversation_id, user_id = session.execute(
        select(Turn.conversation_id, Turn.user_id).where(col(Turn.id) == turn_id)
    ).one()
    session.execute(
        update(Conversation).where(col(Conversation.id) == conversation_id).values(updated_at=now)
    )
    return int(user_id)


def _advance(
    session: Session,
    turn_id: int,
    attempt: int,
    from_statuses: tuple[TurnStatus, ...],
    after_seq: int,
    values: dict[str, Any],
) -> int | None:
    """Move (turn_id, attempt) on from one of `from_statuses`, taking the next seq in the same
    UPDATE (one past both the stored last_seq and `after_seq`); None if the row did not match."""
    next_seq = case((col(Turn.last_seq) > after_seq, col(Turn.last_seq)), else_=after_seq) + 1
    row = session.execute(
        update(Turn)
        .where(col(Turn.id) == turn_id, col(Turn.attempt) == attempt)
        .where(col(Turn.status).in_(from_statuses))
        .values(last_seq=next_seq, **values)
        .returning(col(Turn.last_seq))
    ).first()
    return None if row is None else int(row[0])


def record_last_seq(session: Session, *, turn_id: int, seq: int) -> None:
    """An ended turn's terminal chunk went out at `seq` (past a stale producer's chunk)."""
    session.execute(
        update(Turn).where(col(Turn.id) == turn_id, col(Turn.last_seq) < seq).values(last_seq=seq)
    )


def _rows(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
