"""Per worker process: one asyncio loop, the shared clients, and the turn supervisor.

A turn waits on the network for most of its life, so turns run as coroutines on one event loop
per worker process (hundreds at once cost little). Celery's thread pool hands each task to
`Runtime.run_turn`, which blocks its pool thread on the coroutine's future. The Anthropic and
Redis clients are built once here, not per task.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from concurrent.futures import Future
from typing import Any, ClassVar

from anthropic import AsyncAnthropic
from redis.asyncio import Redis

from shared.channels import REDIS_ERRORS, cancel_key, heartbeat_key
from shared.config import Settings, get_settings
from shared.watchdog import Watchdog
from worker.celery_app import enqueue_turn

log = logging.getLogger(__name__)

SUPERVISE_TICK_S = 0.25


class Runtime:
    _instance: ClassVar[Runtime | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def get(cls) -> Runtime:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls(get_settings())
            return cls._instance

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = f"{socket.gethostname()}:{threading.get_native_id()}"
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="turn-loop", daemon=True)
        self._thread.start()
        # turn id -> cancel event of the turns this process is running now
        self.active: dict[int, asyncio.Event] = {}
        self.redis: Redis
        self.anthropic: AsyncAnthropic
        self._submit(self._setup()).result(timeout=30)

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _submit(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def _setup(self) -> None:
        s = self.settings
        self.redis = Redis.from_url(
            s.redis_dsn, socket_connect_timeout=3, socket_timeout=5, health_check_interval=15
        )
        self.anthropic = AsyncAnthropic(timeout=s.model_timeout_s, max_retries=s.model_max_retries)
        self.watchdog = Watchdog(self.redis, s, enqueue=enqueue_turn, name=f"worker {self.name}")
        self._tasks = [
            self.loop.create_task(self._supervise()),
            self.loop.create_task(self.watchdog.run_forever()),
        ]

    def run_turn(self, turn_id: int, attempt: int) -> str:
        """Run one turn to its end on the loop; called from a Celery pool thread."""
        from worker.turn import run_turn

        result: str = self._submit(run_turn(self, turn_id, attempt)).result()
        return result

    async def _supervise(self) -> None:
        """Refresh the heartbeats of running turns and notice cancel requests, in one place."""
        last_beat = 0.0
        while True:
            await asyncio.sleep(SUPERVISE_TICK_S)
            ids = list(self.active)
            if not ids:
                continue
            try:
                flags = await self.redis.mget([cancel_key(t) for t in ids])
                for turn_id, flag in zip(ids, flags, strict=True):
                    if flag is not None and turn_id in self.active:
                        self.active[turn_id].set()
                now = time.monotonic()
                if now - last_beat >= self.settings.heartbeat_interval_s:
                    await self.beat(ids)
                    last_beat = now
            except REDIS_ERRORS as exc:
                log.warning("supervisor: Redis unavailable (%s); retrying", exc)
            except Exception:
                # E.g. READONLY or OOM replies: keep beating and watching, whatever happens.
                log.exception("supervisor tick failed")

    async def beat(self, ids: list[int]) -> None:
        ttl_ms = int(self.settings.heartbeat_ttl_s * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            for turn_id in ids:
                pipe.set(heartbeat_key(turn_id), self.name, px=ttl_ms)
            await pipe.execute()

    def shutdown(self) -> None:
        async def _close() -> None:
            for task in self._tasks:
                task.cancel()
            await self.redis.aclose()
            await self.anthropic.close()

        try:
            self._submit(_close()).result(timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
