"""Queued turns outlive the broker: re-dispatch them from the database when Redis lost its data.

A queued turn exists twice: as a row (`queued`) and as a Celery message in Redis. A Redis that
restarts without persistence (the embedded one, or any cache-style deployment), a FLUSHALL or a
failover to an empty replica loses the message, and the turn would wait until the queued
time-out fails it. So the watchdogs keep a sentinel key in Redis: when it is missing, Redis has
lost its data (or this is its first use), and the process whose `SET NX` recreates it
re-dispatches every queued turn from the database, once per loss across all processes.

A turn whose message did survive is then delivered twice; that is harmless, because the worker's
claim is a conditional UPDATE on (turn id, attempt, queued): the second delivery finds the turn
claimed and does nothing. Running turns are not touched here: their heartbeats cover them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio import Redis

from shared.config import Settings
from shared.db import read_scope
from shared.models import TurnStatus
from shared.redis_client import REDIS_ERRORS
from shared.turns import state
from shared.turns.state import TurnRef

log = logging.getLogger(__name__)

SENTINEL_KEY = "assistant:broker-sentinel"


def _unfinished() -> list[TurnRef]:
    with read_scope() as session:
        return state.unfinished_turns(session)


async def redispatch_if_broker_lost(
    redis: Redis, settings: Settings, enqueue: Callable[[int, int], None], owner: str
) -> list[int]:
    """If Redis lost its data since the last look, re-enqueue the queued turns; their ids."""
    if not await redis.set(SENTINEL_KEY, owner, nx=True):
        return []
    try:
        refs = await asyncio.to_thread(_unfinished)
        # Turns past the queued time-out are the watchdog's to fail, not to run.
        queued = [
            ref
            for ref in refs
            if ref.status == TurnStatus.queued and not ref.older_than(settings.queued_timeout_s)
        ]
        for ref in queued:
            await asyncio.to_thread(enqueue, ref.id, ref.attempt)
    except BaseException:
        # Let the next look (this process or another) try again rather than lose the turns.
        with contextlib.suppress(*REDIS_ERRORS):
            await redis.delete(SENTINEL_KEY)
        raise
    if queued:
        log.warning(
            "%s: Redis lost its data; re-dispatched %d queued turn(s): %s",
            owner,
            len(queued),
            ", ".join(str(ref.id) for ref in queued),
        )
    return [ref.id for ref in queued]
