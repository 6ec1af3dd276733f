"""Where a turn can end, and what each ending stores and publishes: the one place that does it.

Every turn ends exactly once, by `end_turn`: a conditional UPDATE (a named transition of
`shared.turns.state`) and then, only if that UPDATE won, the turn's single terminal chunk. No
other code publishes `response_done` or a turn's `error`.

| ending               | who      | from            | stores                  | publishes          |
|----------------------|----------|-----------------|-------------------------|--------------------|
| completed()          | worker   | running         | reply: complete         | response_done      |
|  (stop_reason,       |          |                 |  + references,          |  + references,     |
|   references)        |          |                 |    stop_reason          |    stop_reason     |
| stopped()            | worker   | running         | reply so far: cancelled | response_done      |
|                      |          |                 |                         |  (cancelled)       |
| refused(msg)         | worker   | running         | msg: refused (the       | error msg          |
|                      |          |                 |  partial text dropped)  |  (stop_reason)     |
| failed(msg)          | worker   | running         | reply so far: failed    | error msg          |
| could_not_start(msg) | worker   | queued, running | earlier partial: failed | error msg          |
| not_enqueued()       | API      | queued          | failed                  | error ENQUEUE_...  |
| cancelled_in_queue() | API      | queued          | earlier partial: cancel.| response_done      |
|                      |          |                 |                         |  (cancelled)       |
| lost()               | watchdog | running         | reply so far: failed    | error LOST         |
| expired_in_queue()   | watchdog | queued          | earlier partial: failed | error EXPIRED      |

The four worker endings of a reply (completed, stopped, refused, failed) also store its usage,
model and cost; their `response_done` names the reply (`message_id`) and carries the usage.

(A lost turn with attempts left is not ended: the watchdog re-queues it, `state.requeue_lost`,
and announces `turn_restarted`.)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from redis.asyncio import Redis
from sqlmodel import Session

from shared.config import Settings
from shared.group_commit import DirectWrites, Writes
from shared.logs import known_ids, remember_turn, turn_scope
from shared.metrics import turn_outcome
from shared.models import MessageStatus, Turn, TurnStatus
from shared.protocol import Chunk, error_chunk
from shared.redis_client import REDIS_ERRORS
from shared.turns import state
from shared.turns.state import ReplyText
from shared.turns.stream import last_logged_seq, publish_terminal

log = logging.getLogger(__name__)
_DIRECT = DirectWrites()

ENQUEUE_FAILED = "The message could not be queued for a worker; please try again."
LOST = "The worker running this reply stopped and it could not be recovered; please retry."
EXPIRED = "No worker picked up this message in time; please retry later."


class Transition(Protocol):
    """(session, turn, attempt, after_seq) -> the terminal chunk's seq, or None if not ours."""

    def __call__(
        self, session: Session, *, turn_id: int, attempt: int, after_seq: int
    ) -> int | None: ...


@dataclass(frozen=True)
class Ending:
    """One way a turn ends: the transition that records it and the chunk that announces it."""

    name: str
    transition: Transition
    chunk: Chunk

    @property
    def outcome(self) -> str:
        """complete | cancelled | failed, as the turn's stored status (and the metrics) say."""
        if self.chunk.type == "error":
            return TurnStatus.failed
        return TurnStatus.cancelled if self.chunk.status == "cancelled" else TurnStatus.complete


def _reply_ending(
    name: str,
    status: TurnStatus,
    chunk: Chunk,
    reply: ReplyText,
    message_status: MessageStatus | None = None,
) -> Ending:
    error = chunk.content if chunk.type == "error" else None

    def transition(session: Session, *, turn_id: int, attempt: int, after_seq: int) -> int | None:
        return state.finish_running(
            session,
            turn_id=turn_id,
            attempt=attempt,
            after_seq=after_seq,
            status=status,
            reply=reply,
            error=error,
            message_status=message_status,
        )

    return Ending(name, transition, chunk)


def _bound(name: str, fn: Callable[..., int | None], chunk: Chunk, **kw: str) -> Ending:
    def transition(session: Session, *, turn_id: int, attempt: int, after_seq: int) -> int | None:
        return fn(session, turn_id=turn_id, attempt=attempt, after_seq=after_seq, **kw)

    return Ending(name, transition, chunk)


def _usage(reply: ReplyText) -> dict[str, Any] | None:
    return None if reply.usage is None else reply.usage.as_dict()


def completed(reply: ReplyText) -> Ending:
    done = Chunk(
        type="response_done",
        status="complete",
        stop_reason=reply.stop_reason,
        references=reply.references,
        message_id=reply.message_id,
        usage=_usage(reply),
    )
    return _reply_ending("completed", TurnStatus.complete, done, reply)


def refused(reply: ReplyText, message: str) -> Ending:
    """Claude declined (stop reason `refusal`): what streamed is not kept as an answer; the
    reply stores `message` instead, marked refused, and the client gets it as an error."""
    notice = ReplyText(
        reply.message_id,
        message,
        reply.tool_calls,
        stop_reason="refusal",
        usage=reply.usage,
        model=reply.model,
    )
    chunk = error_chunk(message, stop_reason="refusal")
    return _reply_ending("refused", TurnStatus.failed, chunk, notice, MessageStatus.refused)


def stopped(reply: ReplyText) -> Ending:
    done = Chunk(
        type="response_done",
        status="cancelled",
        message_id=reply.message_id,
        usage=_usage(reply),
    )
    return _reply_ending("stopped", TurnStatus.cancelled, done, reply)


def failed(reply: ReplyText, message: str) -> Ending:
    return _reply_ending("failed", TurnStatus.failed, error_chunk(message), reply)


def could_not_start(message: str) -> Ending:
    return _bound("could_not_start", state.fail_unstarted, error_chunk(message), error=message)


def not_enqueued() -> Ending:
    chunk = error_chunk(ENQUEUE_FAILED)
    return _bound("not_enqueued", state.fail_queued, chunk, error=ENQUEUE_FAILED)


def cancelled_in_queue() -> Ending:
    done = Chunk(type="response_done", status="cancelled")
    return _bound("cancelled_in_queue", state.cancel_queued, done)


def lost() -> Ending:
    return _bound("lost", state.fail_lost, error_chunk(LOST), error=LOST)


def expired_in_queue() -> Ending:
    return _bound("expired_in_queue", state.fail_queued, error_chunk(EXPIRED), error=EXPIRED)


async def end_turn(
    redis: Redis,
    settings: Settings,
    ending: Ending,
    *,
    turn_id: int,
    attempt: int,
    after_seq: int = 0,
    db: Writes = _DIRECT,
) -> bool:
    """End the turn as `ending` says, if (turn_id, attempt) is still in a state it ends from;
    then publish its one terminal chunk. False when another actor ended or moved it first.
    The UPDATE goes through `db` (the process's group commit, where it has one)."""
    with turn_scope(turn_id):
        with contextlib.suppress(*REDIS_ERRORS):
            # Nothing may be published after the terminal chunk: start past what the log holds.
            after_seq = max(after_seq, await last_logged_seq(redis, turn_id))
        # Who the turn belongs to, for the log, unless this process knows already.
        learn_ids = known_ids(turn_id) is None
        seq = await db.write(partial(_apply, ending, turn_id, attempt, after_seq, learn_ids))
        if seq is None:
            return False
        turn_outcome(ending.outcome, ending.name)
        log.info("turn %s attempt %s: ended (%s)", turn_id, attempt, ending.name)
        sent = await publish_terminal(redis, settings, turn_id, seq, ending.chunk)
        if sent is not None and sent != seq:
            # A stale producer wrote at our seq first: record where the terminal chunk really is.
            await db.write(partial(state.record_last_seq, turn_id=turn_id, seq=sent))
        return True


def _apply(
    ending: Ending,
    turn_id: int,
    attempt: int,
    after_seq: int,
    learn_ids: bool,
    session: Session,
) -> int | None:
    seq = ending.transition(session, turn_id=turn_id, attempt=attempt, after_seq=after_seq)
    if seq is not None and learn_ids:
        turn = session.get(Turn, turn_id)
        if turn is not None:
            remember_turn(turn_id, turn.conversation_id, turn.user_id)
    return seq
