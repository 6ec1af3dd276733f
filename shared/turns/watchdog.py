"""The watchdog: no turn is left without an owner, so no client waits forever.

Runs in every worker and API process; the conditional updates of `shared.turns.state` make
sure one of them acts on a lost turn, once. A running turn whose heartbeat key has been missing
for a whole heartbeat TTL (seen continuously by this process, so a Redis restart that wipes the
keys for a moment does not count) is re-queued as its next attempt, announced as
`turn_restarted`, up to `max_turn_attempts`; after that it ends as `lost`. A queued turn no
worker picked up within `queued_timeout_s` ends as `expired_in_queue`.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis

from shared.config import Settings
from shared.db import read_scope
from shared.group_commit import DirectWrites, Writes
from shared.metrics import redis_error
from shared.redis_client import REDIS_ERRORS
from shared.turns import ending, state
from shared.turns.broker_recovery import redispatch_if_broker_lost
from shared.turns.restart import Enqueue, restart_turn
from shared.turns.state import TurnRef
from shared.turns.stream import heartbeat_key

log = logging.getLogger(__name__)

__all__ = ["Enqueue", "Watchdog"]


def _unfinished() -> list[TurnRef]:
    with read_scope() as session:
        return state.unfinished_turns(session)


class Watchdog:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        enqueue: Enqueue,
        name: str,
        db: Writes | None = None,
    ) -> None:
        self.redis = redis
        self.db = db or DirectWrites()
        self.settings = settings
        self.enqueue = enqueue
        self.name = name
        self._missing_since: dict[int, float] = {}

    async def run_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except REDIS_ERRORS as exc:
                redis_error("watchdog")
                log.warning("watchdog (%s): Redis unavailable: %s", self.name, exc)
                # Heartbeats cannot be read: forget what we saw, start counting afresh later.
                self._missing_since.clear()
            except Exception:
                log.exception("watchdog (%s) tick failed", self.name)
            await asyncio.sleep(self.settings.watchdog_interval_s)

    async def tick(self) -> None:
        refs = await asyncio.to_thread(_unfinished)
        running = [r for r in refs if r.status == "running"]
        grace = self.settings.heartbeat_ttl_s
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
                if now - since >= grace and ref.older_than(grace):
                    await self._recover(ref)
        for turn_id in list(self._missing_since):
            if turn_id not in seen:
                del self._missing_since[turn_id]
        for ref in refs:
            if ref.status == "queued" and ref.older_than(self.settings.queued_timeout_s):
                await ending.end_turn(
                    self.redis,
                    self.settings,
                    ending.expired_in_queue(),
                    turn_id=ref.id,
                    attempt=ref.attempt,
                    db=self.db,
                )
        # Last, so that a failure here never holds up the recovery of lost turns above.
        await redispatch_if_broker_lost(self.redis, self.settings, self.enqueue, self.name)

    async def _recover(self, ref: TurnRef) -> None:
        """A running turn whose worker vanished: run it again, or end it when out of attempts."""
        self._missing_since.pop(ref.id, None)
        if ref.attempt >= self.settings.max_turn_attempts:
            if await ending.end_turn(
                self.redis,
                self.settings,
                ending.lost(),
                turn_id=ref.id,
                attempt=ref.attempt,
                db=self.db,
            ):
                log.warning("turn %s: worker lost again, failed", ref.id)
            return
        await restart_turn(
            self.redis,
            self.settings,
            self.enqueue,
            turn_id=ref.id,
            attempt=ref.attempt,
            reason="worker_lost",
            worker=ref.worker,
            db=self.db,
        )
