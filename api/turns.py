"""Starting and stopping turns from the API: persist, then enqueue; stop by signal, never kill."""

from __future__ import annotations

import contextlib
import logging

from redis.asyncio import Redis
from starlette.concurrency import run_in_threadpool

from shared import turn_state
from shared.channels import (
    REDIS_ERRORS,
    SeqConflict,
    cancel_key,
    last_logged_seq,
    publish_at,
)
from shared.config import Settings
from shared.conversations import active_turn
from shared.db import session_scope
from shared.errors import NotFound
from shared.models import Turn, TurnStatus
from shared.protocol import Chunk, error_chunk
from worker.celery_app import enqueue_turn

log = logging.getLogger(__name__)
ENQUEUE_FAILED = "The message could not be queued for a worker; please try again."


async def enqueue_or_fail(redis: Redis, settings: Settings, turn_id: int, attempt: int = 1) -> None:
    """Hand the turn to the workers; if the broker cannot take it, fail it with a clear error."""
    try:
        # kombu's Redis publish is blocking I/O: keep it off the event loop.
        await run_in_threadpool(enqueue_turn, turn_id, attempt)
    except Exception:
        log.exception("turn %s: could not enqueue", turn_id)
        await _end_queued(redis, settings, turn_id, attempt, TurnStatus.failed, ENQUEUE_FAILED)


async def _end_queued(
    redis: Redis,
    settings: Settings,
    turn_id: int,
    attempt: int,
    status: TurnStatus,
    error: str | None = None,
) -> bool:
    """End a turn no worker has claimed, with its one terminal chunk; False if one has."""
    try:
        logged = await last_logged_seq(redis, turn_id)
    except REDIS_ERRORS:
        logged = 0
    seq = logged + 1
    if not await run_in_threadpool(
        turn_state.finish,
        turn_id,
        attempt,
        None,
        "",
        [],
        status,
        seq,
        error,
        (TurnStatus.queued,),
    ):
        return False
    chunk = error_chunk(error) if error else Chunk(type="response_done", status=status.value)
    with contextlib.suppress(SeqConflict, *REDIS_ERRORS):
        await publish_at(redis, settings, turn_id, seq, chunk, retry_s=2)
    return True


def _find_turn(conversation_id: int, turn_id: int | None) -> Turn | None:
    with session_scope() as session:
        if turn_id is None:
            return active_turn(session, conversation_id)
        turn = session.get(Turn, turn_id)
        return turn if turn is not None and turn.conversation_id == conversation_id else None


async def cancel_turn(
    redis: Redis, settings: Settings, conversation_id: int, turn_id: int | None = None
) -> Turn:
    """Ask the running turn of a conversation to stop; a queued one is cancelled right here."""
    turn = await run_in_threadpool(_find_turn, conversation_id, turn_id)
    if turn is None or turn.id is None:
        raise NotFound("No running reply to cancel")
    if turn.status == TurnStatus.queued and await _end_queued(
        redis, settings, turn.id, turn.attempt, TurnStatus.cancelled
    ):
        turn.status = TurnStatus.cancelled
        return turn
    if turn.status in (TurnStatus.queued, TurnStatus.running):
        # The worker's supervisor polls this key several times a second.
        await redis.set(cancel_key(turn.id), "1", ex=settings.replay_ttl_s)
    return turn
