"""Starting and stopping turns from the API: persist, then enqueue; stop by signal, never kill."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from starlette.concurrency import run_in_threadpool

from shared.config import Settings
from shared.conversations import active_turn
from shared.db import read_scope
from shared.errors import NotFound
from shared.group_commit import Writes
from shared.models import Turn, TurnStatus, storable_id
from shared.turns import ending
from shared.turns.stream import cancel_key
from worker.celery_app import enqueue_turn

log = logging.getLogger(__name__)


async def enqueue_or_fail(
    redis: Redis, settings: Settings, db: Writes, turn_id: int, attempt: int = 1
) -> None:
    """Hand the turn to the workers; if the broker cannot take it, end it with a clear error."""
    try:
        # kombu's Redis publish is blocking I/O: keep it off the event loop.
        await run_in_threadpool(enqueue_turn, turn_id, attempt)
    except Exception:
        log.exception("turn %s: could not enqueue", turn_id)
        await ending.end_turn(
            redis, settings, ending.not_enqueued(), turn_id=turn_id, attempt=attempt, db=db
        )


def _find_turn(conversation_id: int, turn_id: int | None) -> Turn | None:
    with read_scope() as session:
        if turn_id is None:
            return active_turn(session, conversation_id)
        turn = session.get(Turn, turn_id) if storable_id(turn_id) else None
        return turn if turn is not None and turn.conversation_id == conversation_id else None


async def cancel_turn(
    redis: Redis,
    settings: Settings,
    db: Writes,
    conversation_id: int,
    turn_id: int | None = None,
) -> Turn:
    """Ask the running turn of a conversation to stop; a queued one is cancelled right here."""
    turn = await run_in_threadpool(_find_turn, conversation_id, turn_id)
    if turn is None or turn.id is None:
        raise NotFound("No running reply to cancel")
    if turn.status == TurnStatus.queued and await ending.end_turn(
        redis,
        settings,
        ending.cancelled_in_queue(),
        turn_id=turn.id,
        attempt=turn.attempt,
        db=db,
    ):
        turn.status = TurnStatus.cancelled
        return turn
    if turn.status in (TurnStatus.queued, TurnStatus.running):
        # Queued a moment ago but claimed since, or running: the worker's supervisor polls
        # this key several times a second.
        await redis.set(cancel_key(turn.id), "1", ex=settings.replay_ttl_s)
    return turn
