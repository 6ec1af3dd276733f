"""The worker process's turn loop: one asyncio loop in a thread of its own.

A turn waits on the network for most of its life, so turns run as coroutines on one event loop
per worker process (hundreds at once cost little). Celery's thread pool hands each task to
`TurnLoop.run`, which blocks its pool thread on the coroutine's result. The clients in the
`WorkerContext` are built here once, with the supervisor (heartbeats, stop requests), the
watchdog and the worker's presence running beside the turns; its metrics are served from here
too, and a shutdown drains the turns here (worker/drain.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from anthropic import AsyncAnthropic

from shared.config import Settings, get_settings
from shared.redis_client import create_redis
from shared.turns.watchdog import Enqueue, Watchdog
from worker import metrics
from worker.celery_app import enqueue_turn
from worker.context import WorkerContext
from worker.drain import drain
from worker.presence import Presence
from worker.supervisor import supervise

T = TypeVar("T")


class TurnLoop:
    def __init__(self, settings: Settings, enqueue: Enqueue) -> None:
        # uvloop where installed (uvicorn[standard] brings it): the same asyncio API with a
        # cheaper event loop; the SDK's streams and Redis spend less time in the selector.
        self.loop = _new_loop()
        self._thread = threading.Thread(target=self._run_loop, name="turn-loop", daemon=True)
        self._thread.start()
        self._tasks: list[asyncio.Task[None]] = []
        self.presence: Presence | None = None
        self.ctx = asyncio.run_coroutine_threadsafe(
            self._setup(settings, enqueue), self.loop
        ).result(timeout=30)

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _setup(self, settings: Settings, enqueue: Enqueue) -> WorkerContext:
        ctx = WorkerContext(
            settings=settings,
            redis=create_redis(settings),
            anthropic=AsyncAnthropic(
                timeout=settings.model_timeout_s, max_retries=settings.model_max_retries
            ),
            name=f"{socket.gethostname()}:{os.getpid()}",
            enqueue=enqueue,
        )
        watchdog = Watchdog(
            ctx.redis, settings, enqueue=enqueue, name=f"worker {ctx.name}", db=ctx.db
        )
        metrics.track(lambda: len(ctx.active), lambda: float(ctx.draining))
        self.presence = Presence(ctx, metrics.serve(settings))
        self._tasks = [
            asyncio.create_task(supervise(ctx), name="supervisor"),
            asyncio.create_task(watchdog.run_forever(), name="watchdog"),
            asyncio.create_task(ctx.progress.run_forever(), name="progress-writer"),
            asyncio.create_task(self.presence.run_forever(), name="presence"),
        ]
        return ctx

    def run(self, fn: Callable[[WorkerContext, int, int], Coroutine[Any, Any, T]], *args: int) -> T:
        """Run `fn(ctx, *args)` on the loop and wait for it (called from a Celery pool thread)."""
        return asyncio.run_coroutine_threadsafe(fn(self.ctx, *args), self.loop).result()

    def begin_drain(self, grace_s: float) -> None:
        """Shutting down: take no new turns, finish or hand back the running ones (returns at
        once; Celery's warm shutdown waits for the tasks, which wait for their turns)."""
        asyncio.run_coroutine_threadsafe(drain(self.ctx, self.presence, grace_s), self.loop)

    def close(self) -> None:
        async def _close() -> None:
            for task in self._tasks:
                task.cancel()
            if self.presence is not None:
                await self.presence.withdraw()
            await self.ctx.redis.aclose()
            await self.ctx.anthropic.close()
            self.ctx.db.close()

        try:
            asyncio.run_coroutine_threadsafe(_close(), self.loop).result(timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


_current: TurnLoop | None = None
_lock = threading.Lock()


def turn_loop() -> TurnLoop:
    """This process's turn loop, started on first use (the worker starts it when ready)."""
    global _current
    with _lock:
        if _current is None:
            _current = TurnLoop(get_settings(), enqueue_turn)
        return _current


def current_turn_loop() -> TurnLoop | None:
    """This process's turn loop if it has started (a shutdown must not start one)."""
    return _current


def close_turn_loop() -> None:
    global _current
    with _lock:
        current, _current = _current, None
    if current is not None:
        current.close()
