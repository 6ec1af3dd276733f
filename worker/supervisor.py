"""Heartbeats and stop requests for the turns of one worker process, in one loop.

A running turn keeps a heartbeat key with a short TTL (the watchdog re-runs a turn whose key
lapsed), and a stop request is a Redis flag polled here, which sets the turn's stop signal:
cooperative, never a killed thread.
"""

from __future__ import annotations

import asyncio
import logging
import time

from shared.metrics import redis_error
from shared.redis_client import REDIS_ERRORS
from shared.turns.stream import cancel_key, heartbeat_key
from worker.context import WorkerContext

log = logging.getLogger(__name__)

TICK_S = 0.25


async def beat(ctx: WorkerContext, turn_ids: list[int]) -> None:
    """Refresh the heartbeats of these turns (one round trip)."""
    ttl_ms = int(ctx.settings.heartbeat_ttl_s * 1000)
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for turn_id in turn_ids:
            pipe.set(heartbeat_key(turn_id), ctx.name, px=ttl_ms)
        await pipe.execute()


async def supervise(ctx: WorkerContext) -> None:
    """Forever: notice stop requests four times a second, and beat every heartbeat interval."""
    last_beat = 0.0
    while True:
        await asyncio.sleep(TICK_S)
        ids = list(ctx.active)
        if not ids:
            continue
        try:
            flags = await ctx.redis.mget([cancel_key(t) for t in ids])
            for turn_id, flag in zip(ids, flags, strict=True):
                if flag is not None and turn_id in ctx.active:
                    ctx.active[turn_id].set()
            now = time.monotonic()
            if now - last_beat >= ctx.settings.heartbeat_interval_s:
                await beat(ctx, ids)
                last_beat = now
        except REDIS_ERRORS as exc:
            redis_error("supervisor")
            log.warning("supervisor: Redis unavailable (%s); retrying", exc)
        except Exception:
            # E.g. READONLY or OOM replies: keep beating and watching, whatever happens.
            log.exception("supervisor tick failed")
