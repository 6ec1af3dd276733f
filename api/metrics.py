"""The API process's Prometheus metrics (the shared ones are in shared/metrics.py).

Per chunk only in-memory counter increments happen here; the cluster-wide gauges (turns queued
and running, broker queue depth, workers alive) are read once per scrape, by `refresh`.
"""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis
from sqlalchemy import func
from sqlmodel import col, select

from shared.db import read_scope
from shared.metrics import redis_error
from shared.models import ACTIVE_TURN_STATUSES, Turn
from shared.protocol import Chunk
from shared.redis_client import REDIS_ERRORS
from shared.workers import QUEUE, alive_workers, queue_depth

log = logging.getLogger(__name__)

WEBSOCKETS_OPEN = Gauge(
    "assistant_websockets_open", "Authorized WebSocket connections open on this API process."
)
CHUNKS_RELAYED = Counter(
    "assistant_chunks_relayed", "Frames sent to WebSocket clients by this process.", ["type"]
)
BYTES_RELAYED = Counter(
    "assistant_chunk_bytes_relayed", "Bytes of frames sent to WebSocket clients."
)
RELAY_DELAY = Histogram(
    "assistant_relay_delay_seconds",
    "From a worker publishing a chunk to this process having written it to the client's "
    "WebSocket (live chunks; across hosts this includes their clock difference).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
TURNS_NOW = Gauge(
    "assistant_turns_current",
    "Turns queued or running now, cluster-wide, from the database (every API process reports "
    "the same value: aggregate with max, not sum).",
    ["state"],
)
QUEUE_DEPTH = Gauge(
    "assistant_queue_depth",
    "Messages waiting in the broker's queue, cluster-wide (aggregate with max).",
    ["queue"],
)
WORKERS_ALIVE = Gauge(
    "assistant_workers_alive",
    "Worker processes seen alive recently, cluster-wide, by whether they take turns.",
    ["state"],
)


def chunk_sent(chunk: Chunk, size: int) -> None:
    CHUNKS_RELAYED.labels(chunk.type).inc()
    BYTES_RELAYED.inc(size)


def chunk_relayed_live(chunk: Chunk) -> None:
    if chunk.published_at is not None:
        RELAY_DELAY.observe(max(0.0, time.time() - chunk.published_at))


def turn_counts() -> dict[str, int]:
    """Turns per active state (one indexed query)."""
    with read_scope() as session:
        rows = session.exec(
            select(Turn.status, func.count())
            .where(col(Turn.status).in_(ACTIVE_TURN_STATUSES))
            .group_by(col(Turn.status))
        ).all()
    counts = {str(status): 0 for status in ACTIVE_TURN_STATUSES}
    counts.update({str(status): int(n) for status, n in rows})
    return counts


async def refresh(redis: Redis) -> None:
    """Read the cluster-wide gauges, once per scrape; what cannot be read keeps its value."""
    try:
        for state, n in (await asyncio.to_thread(turn_counts)).items():
            TURNS_NOW.labels(state).set(n)
    except Exception as exc:
        log.warning("metrics: could not count turns: %s", exc)
    try:
        QUEUE_DEPTH.labels(QUEUE).set(await queue_depth(redis))
        workers = await alive_workers(redis)
        WORKERS_ALIVE.labels("taking_turns").set(sum(not w.draining for w in workers))
        WORKERS_ALIVE.labels("draining").set(sum(w.draining for w in workers))
    except REDIS_ERRORS:
        redis_error("metrics")
