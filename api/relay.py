"""The relay: one Redis pub/sub connection per API process, fanning chunks out to local clients.

It only subscribes and forwards. Ordering, de-duplication and gap filling happen per client in
`api.follow.TurnFollower`, against the replay log, so a chunk published before anyone
subscribed, during a reconnect, or while Redis restarted is either delivered from the log or
turned into a clear error: never silently lost, never a spinner that does not stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from api.chat.registry import CONTROL_CHANNEL
from shared.metrics import redis_error
from shared.protocol import Chunk
from shared.redis_client import REDIS_ERRORS
from shared.turns.stream import parse_chunk, turn_channel

log = logging.getLogger(__name__)

RESYNC = object()  # queued to watchers after a reconnect: "re-read the log, you may have a gap"
SUBSCRIBE_TIMEOUT_S = 5.0

ControlHandler = Callable[[dict[str, Any]], Awaitable[None]]


class Relay:
    def __init__(self, redis: Redis, on_control: ControlHandler | None = None) -> None:
        self.redis = redis
        self.on_control = on_control
        self._watchers: dict[int, set[asyncio.Queue[object]]] = defaultdict(set)
        self._confirmed: dict[str, asyncio.Event] = {}
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._control_tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    @contextlib.asynccontextmanager
    async def watch(self, turn_id: int) -> AsyncIterator[asyncio.Queue[object]]:
        """A queue of this turn's live chunks; subscribed (confirmed) before it is returned."""
        queue: asyncio.Queue[object] = asyncio.Queue()
        first = not self._watchers[turn_id]
        self._watchers[turn_id].add(queue)
        try:
            if first:
                await self._subscribe(turn_channel(turn_id))
            yield queue
        finally:
            watchers = self._watchers.get(turn_id)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    del self._watchers[turn_id]
                    await self._unsubscribe(turn_channel(turn_id))

    async def _subscribe(self, channel: str) -> None:
        event = self._confirmed.setdefault(channel, asyncio.Event())
        try:
            async with self._lock:
                if self._pubsub is not None:
                    await self._pubsub.subscribe(channel)
            await asyncio.wait_for(event.wait(), SUBSCRIBE_TIMEOUT_S)
        except (TimeoutError, *REDIS_ERRORS):
            # Redis is away: the watcher still reads the log and re-syncs after the reconnect.
            log.warning("relay: subscribe to %s not confirmed", channel)

    async def _unsubscribe(self, channel: str) -> None:
        self._confirmed.pop(channel, None)
        with contextlib.suppress(*REDIS_ERRORS):
            async with self._lock:
                if self._pubsub is not None:
                    await self._pubsub.unsubscribe(channel)

    async def _listen_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._connect()
                delay = 0.1
                await self._pump()
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                redis_error("relay")
                log.warning("relay: Redis connection lost (%s); reconnecting", exc)
            except Exception:
                log.exception("relay: unexpected error; reconnecting")
            for event in self._confirmed.values():
                event.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _connect(self) -> None:
        async with self._lock:
            if self._pubsub is not None:
                with contextlib.suppress(*REDIS_ERRORS):
                    await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = self.redis.pubsub()
            channels = [CONTROL_CHANNEL, *(turn_channel(t) for t in self._watchers)]
            await self._pubsub.subscribe(*channels)
        # Anything published while we were away is in the replay logs: tell watchers to look.
        for queues in self._watchers.values():
            for queue in queues:
                queue.put_nowait(RESYNC)

    async def _pump(self) -> None:
        assert self._pubsub is not None
        pubsub = self._pubsub
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
            if msg is None:
                continue
            channel: str = msg["channel"]
            if msg["type"] == "subscribe":
                self._confirmed.setdefault(channel, asyncio.Event()).set()
            elif msg["type"] == "message":
                await self._dispatch(channel, msg["data"])

    async def _dispatch(self, channel: str, data: str) -> None:
        if channel == CONTROL_CHANNEL:
            if self.on_control is not None:
                # In a task: closing slow sockets must not hold up everyone's chunks.
                task = asyncio.create_task(self._control(data))
                self._control_tasks.add(task)
                task.add_done_callback(self._control_tasks.discard)
            return
        chunk = parse_chunk(data)
        if chunk is None or chunk.turn_id is None:
            return
        for queue in list(self._watchers.get(chunk.turn_id, ())):
            queue.put_nowait(chunk)

    async def _control(self, data: str) -> None:
        assert self.on_control is not None
        try:
            await self.on_control(json.loads(data))
        except Exception:
            log.exception("relay: control message failed")

    def watching(self) -> int:
        return sum(len(q) for q in self._watchers.values())


__all__ = ["RESYNC", "Chunk", "Relay"]
