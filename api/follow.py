"""Follow one turn for one client: replay from the log after `after_seq`, then live, in order.

Every chunk is delivered once, by increasing `seq`, ending with the turn's terminal chunk. When
part of the stream cannot be recovered (the log expired, or Redis lost it in a restart), the
client gets a clear error pointing at the stored conversation instead of silence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from starlette.concurrency import run_in_threadpool

from api.metrics import chunk_relayed_live
from api.relay import RESYNC, Relay
from shared.conversations import is_finished
from shared.db import read_scope
from shared.metrics import redis_error
from shared.models import Turn
from shared.protocol import Chunk, error_chunk
from shared.redis_client import REDIS_ERRORS
from shared.turns.stream import read_log

# With no chunk for this long, re-read the log and the turn's state (covers lost messages).
IDLE_CHECK_S = 1.0
# A client is told within ~10 s when Redis stays away (the reply is still saved in the database).
REDIS_GIVE_UP_S = 7.0
# A finished turn's missing tail may still be on its way (the producer commits, then publishes).
TAIL_GRACE_S = 3.0
GONE = "Part of this reply can no longer be streamed; reload the conversation to see it in full."

Send = Callable[[Chunk], Awaitable[None]]


def _turn_finished(turn_id: int) -> tuple[bool, int]:
    """(whether the turn has ended, the seq of its last chunk)."""
    with read_scope() as session:
        turn = session.get(Turn, turn_id)
        if turn is None:
            return True, 0
        return is_finished(turn), turn.last_seq


class TurnFollower:
    def __init__(
        self,
        relay: Relay,
        redis: Redis,
        turn_id: int,
        after_seq: int,
        send: Send,
        *,
        new_turn: bool = False,
    ) -> None:
        self.relay = relay
        self.redis = redis
        self.turn_id = turn_id
        self.last = after_seq
        self.send = send
        self.done = False
        self._redis_down_since: float | None = None
        self.subscribed = asyncio.Event()
        self._tail_missing_since: float | None = None
        # A turn stored a moment ago cannot have ended unseen: its end reaches the stream (or,
        # if not, the idle check reads the row), so the first catch-up skips the row.
        self._new_turn = new_turn

    async def run(self) -> None:
        async with self.relay.watch(self.turn_id) as queue:
            self.subscribed.set()
            # Subscribed first, then the log: nothing published in between can be missed.
            if not await self._catch_up(check_row=not self._new_turn):
                return
            while not self.done:
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel.
                    async with asyncio.timeout(IDLE_CHECK_S):
                        item = await queue.get()
                except TimeoutError:
                    item = RESYNC
                if item is RESYNC:
                    if not await self._catch_up():
                        return
                    continue
                assert isinstance(item, Chunk)
                assert item.seq is not None
                if item.seq <= self.last:
                    continue  # already delivered from the log
                if item.seq > self.last + 1 and not await self._fill_gap(item.seq - 1):
                    return
                await self._deliver(item)
                chunk_relayed_live(item)

    async def _catch_up(self, check_row: bool = True) -> bool:
        """Deliver what the log holds after `last`; False once the client's stream has ended."""
        try:
            await self._deliver_log()
            if self.done or not check_row:
                return not self.done
            finished, last_seq = await run_in_threadpool(_turn_finished, self.turn_id)
            if finished:
                # It may have finished just after we read: read once more before giving up.
                await self._deliver_log()
                if self.done:
                    return False
                if self.last >= last_seq:
                    self.done = True  # the client already has everything, terminal included
                    return False
                # Finished, yet the rest is not in the log. Either its producer committed and
                # is still publishing (a moment), or the log expired or was lost: wait a little.
                now = time.monotonic()
                self._tail_missing_since = self._tail_missing_since or now
                if now - self._tail_missing_since > TAIL_GRACE_S:
                    await self._give_up()
                    return False
        except REDIS_ERRORS:
            redis_error("follower")
            # Redis is away; the relay will RESYNC us when it is back, unless that takes long.
            now = time.monotonic()
            self._redis_down_since = self._redis_down_since or now
            if now - self._redis_down_since > REDIS_GIVE_UP_S:
                await self._give_up()
                return False
            return True
        self._redis_down_since = None
        return True

    async def _deliver_log(self) -> None:
        for chunk in await read_log(self.redis, self.turn_id, self.last):
            if chunk.seq is not None and chunk.seq > self.last + 1:
                # The log no longer holds what came before (a Redis restart emptied it).
                await self._give_up()
                return
            await self._deliver(chunk)
            if self.done:
                return

    async def _fill_gap(self, upto: int) -> bool:
        try:
            chunks = await read_log(self.redis, self.turn_id, self.last, upto)
        except REDIS_ERRORS:
            chunks = []
        for chunk in chunks:
            await self._deliver(chunk)
        if self.last < upto:
            await self._give_up()
            return False
        return not self.done

    async def _deliver(self, chunk: Chunk) -> None:
        if chunk.seq is None or chunk.seq <= self.last or self.done:
            return
        self.last = chunk.seq
        await self.send(chunk)
        if chunk.is_terminal:
            self.done = True

    async def _give_up(self) -> None:
        self.done = True
        await self.send(error_chunk(GONE, turn_id=self.turn_id))
