"""The watchdog: no turn is left without an owner, so no client waits forever.

Runs in every worker and API process; the conditional updates in `turn_state` make sure one of
them acts on a lost turn, once. A running turn whose heartbeat key has been missing for a whole
heartbeat TTL (seen continuously by this process, so a Redis restart that wipes the keys for a
moment does not count) is re-dispatched, up to `max_turn_attempts`, then failed with an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis

from shared import turn_state
from shared.channels import REDIS_ERRORS, heartbeat_key, last_logged_seq, publish_at
from shared.config import Settings
from shared.protocol import Chunk, error_chunk

log = logging.getLogger(__name__)

LOST_MESSAGE = "The worker running this reply stopped and it could not be recovered; please retry."
QUEUED_MESSAGE = "No worker picked up this message in time; please retry later."


class Watchdog:
    def __init__(
        self, redis: Redis, settings: Settings, enqueue: Callable[[int, int], None], name: str
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.enqueue = enqueue
        self.name = name
        self._missing_since: dict[int, float] = {}

    async def run_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except REDIS_ERRORS as exc:
                log.warning("watchdog (%s): Redis unavailable: %s", self.name, exc)
                # Heartbeats cannot be read: forget what we saw, start counting afresh later.
                self._missing_since.clear()
            except Exception:
                log.exception("watchdog (%s) tick failed", self.name)
            await asyncio.sleep(self.settings.watchdog_interval_s)

    async def tick(self) -> None:
        refs = await asyncio.to_thread(turn_state.unfinished_turns)
        running = [r for r in refs if r.status == "running"]
        seen = set()
        if running:
            beats = await self.redis.mget([heartbeat_key(r.id) for r in running])
            now = time.monotonic()
            for ref, beat in zip(running, beats, strict=True):
                seen.add(ref.id)
                if beat is not None:
                    self._missing_since.pop(ref.id, None)
                    continue
                since = self._missing_since.setdefault(ref.id, now)
                grace = self.settings.heartbeat_ttl_s
                if now - since >= grace and turn_state.older_than(ref, grace):
                    await self._recover(ref)
        for turn_id in list(self._missing_since):
            if turn_id not in seen:
                del self._missing_since[turn_id]
        for ref in refs:
            if ref.status == "queued" and turn_state.older_than(
                ref, self.settings.queued_timeout_s
            ):
                await self._expire(ref)

    async def _recover(self, ref: turn_state.TurnRef) -> None:
        logged = await last_logged_seq(self.redis, ref.id)
        outcome = await asyncio.to_thread(
            turn_state.recover_lost, ref.id, ref.attempt, logged, self.settings.max_turn_attempts
        )
        if outcome is None:
            return
        self._missing_since.pop(ref.id, None)
        chunk = Chunk(type="turn_restarted") if outcome.rerun else error_chunk(LOST_MESSAGE)
        await self._publish(ref.id, outcome.seq, chunk)
        if outcome.rerun:
            log.warning("turn %s: worker lost, re-running as attempt %s", ref.id, outcome.attempt)
            await asyncio.to_thread(self.enqueue, ref.id, outcome.attempt)
        else:
            log.warning("turn %s: worker lost again, failed", ref.id)

    async def _expire(self, ref: turn_state.TurnRef) -> None:
        logged = await last_logged_seq(self.redis, ref.id)
        seq = await asyncio.to_thread(turn_state.expire_queued, ref.id, ref.attempt, logged)
        if seq is not None:
            await self._publish(ref.id, seq, error_chunk(QUEUED_MESSAGE))

    async def _publish(self, turn_id: int, seq: int, chunk: Chunk) -> None:
        try:
            await publish_at(self.redis, self.settings, turn_id, seq, chunk)
        except Exception:
            # The database already says what happened; a follower reads it there.
            log.exception("watchdog: could not announce turn %s", turn_id)
