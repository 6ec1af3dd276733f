"""Which workers are alive, and how much work waits for them.

Each worker process announces itself in Redis with a short TTL.
A worker refreshes `assistant:worker:{name}` (JSON: host, pid, turns held, draining, metrics
port) every heartbeat interval, with the heartbeat TTL, and lists its name in the set
`assistant:workers`. Readers (the API's /readyz, `assistant status`, the API's metrics) take
the set, then the keys: a name whose key has expired is a worker gone without saying goodbye,
and is dropped from the set. Two round trips, independent of how many turns exist.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any, cast

from redis.asyncio import Redis

WORKERS_KEY = "assistant:workers"
# Celery's default queue (a Redis list); kombu keeps messages sent with a priority in siblings.
QUEUE = "celery"
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def worker_key(name: str) -> str:
    return f"assistant:worker:{name}"


@dataclass(frozen=True)
class WorkerInfo:
    name: str  # host:pid, as in a running turn's `worker` column
    host: str
    pid: int
    turns: int  # turns it runs now
    draining: bool  # shutting down: takes no new turns
    started_at: float  # epoch seconds
    metrics_port: int | None = None
    metrics_address: str | None = None
    node: str | None = None  # the Celery node name, as Flower shows it
    seen_at: float = 0.0  # when it last announced itself (its clock)

    @property
    def metrics_url(self) -> str | None:
        if self.metrics_port is None:
            return None
        return f"http://{self.metrics_address or '127.0.0.1'}:{self.metrics_port}/metrics"


async def announce(redis: Redis, info: WorkerInfo, ttl_s: float) -> None:
    data = json.dumps({**asdict(info), "seen_at": time.time()})
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(worker_key(info.name), data, px=int(ttl_s * 1000))
        pipe.sadd(WORKERS_KEY, info.name)
        await pipe.execute()


async def withdraw(redis: Redis, name: str) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.delete(worker_key(name))
        pipe.srem(WORKERS_KEY, name)
        await pipe.execute()


async def alive_workers(redis: Redis) -> list[WorkerInfo]:
    """Workers seen within their TTL, by name (draining ones included)."""
    names = sorted(cast(set[str], await redis.smembers(WORKERS_KEY)))
    if not names:
        return []
    values = await redis.mget([worker_key(n) for n in names])
    alive, gone = [], []
    for name, raw in zip(names, values, strict=True):
        info = _parse(raw)
        if info is None:
            gone.append(name)
        else:
            alive.append(info)
    if gone:
        await redis.srem(WORKERS_KEY, *gone)
    return alive


def _parse(raw: Any) -> WorkerInfo | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return WorkerInfo(**{k: v for k, v in data.items() if k in WorkerInfo.__annotations__})
    except (TypeError, ValueError):
        return None


async def queue_depth(redis: Redis, queue: str = QUEUE) -> int:
    """Messages waiting in the broker's queue (taken but unfinished ones are not counted)."""
    async with redis.pipeline(transaction=False) as pipe:
        for suffix in _PRIORITY_SUFFIXES:
            pipe.llen(queue + suffix)
        lengths = await pipe.execute()
    return sum(int(n) for n in lengths)
