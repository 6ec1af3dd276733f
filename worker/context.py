"""What every turn of one worker process shares, built once per process and passed to each turn
(as arq passes `ctx`): settings, the Redis and Anthropic clients, the turns running here, and
whether the process is shutting down."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from anthropic import AsyncAnthropic
from redis.asyncio import Redis

from shared.config import Settings
from shared.group_commit import GroupCommit
from worker.progress import ProgressWriter


@dataclass
class WorkerContext:
    settings: Settings
    redis: Redis
    anthropic: AsyncAnthropic
    # Names this process in heartbeats and in the turn's `worker` column (host:pid).
    name: str
    # (turn_id, attempt) -> hands the turn to the broker (worker.celery_app.enqueue_turn)
    enqueue: Callable[[int, int], None]
    # turn id -> its stop signal, for the turns this process is running now
    active: dict[int, asyncio.Event] = field(default_factory=dict)
    # This process's database writes (claims, progress, endings), committed together.
    db: GroupCommit = field(default_factory=lambda: GroupCommit("worker-db-writer"))
    # Saves the replies of all running turns together, twice a second.
    progress: ProgressWriter = field(init=False)
    # Shutting down (worker/drain.py): take no new turns; then, once the grace period is over,
    # give the running ones back instead of ending them when their stop signal is set.
    draining: bool = False
    handing_back: bool = False

    def __post_init__(self) -> None:
        self.progress = ProgressWriter(self.db)
