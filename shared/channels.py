"""Redis names and the two halves of chunk transport: publishing (worker) and replay (relay).

Every chunk of turn T goes, in one MULTI, to a bounded stream `turn:T:log` (the replay log,
entry id `SEQ-0`, so "everything after seq N" is one XRANGE) and to the pub/sub channel
`turn:T` (live). Pub/sub is at-most-once; the log is what makes late subscribers and
reconnecting clients whole.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.config import Settings
from shared.protocol import Chunk

log = logging.getLogger(__name__)

REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
SESSION_CONTROL = "assistant:session-control"


def turn_channel(turn_id: int) -> str:
    return f"turn:{turn_id}"


def turn_log(turn_id: int) -> str:
    return f"turn:{turn_id}:log"


def cancel_key(turn_id: int) -> str:
    return f"turn:{turn_id}:cancel"


def heartbeat_key(turn_id: int) -> str:
    return f"turn:{turn_id}:hb"


def rate_key(user_id: int, minute: int) -> str:
    return f"rate:{user_id}:{minute}"


def sessions_key(user_id: int) -> str:
    return f"sessions:{user_id}"


class SeqConflict(Exception):
    """The replay log already holds this seq: another producer owns the turn now."""


_PUBLISH_LUA = """
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], ARGV[1], 'd', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 1
"""


class TurnPublisher:
    """Assigns `seq` and publishes the chunks of one turn run, in order.

    Redis may restart under us: a publish is retried until `retry_s` passes, then dropped
    (the reply is still persisted in the database, and the relay turns the gap into a clear
    error). The terminal chunk gets a longer budget because a client waits on it.
    """

    def __init__(self, redis: Redis, settings: Settings, turn_id: int, after_seq: int) -> None:
        self.turn_id = turn_id
        self.seq = after_seq
        # The last seq that reached Redis: what a re-run or the watchdog must continue after.
        self.sent_seq = after_seq
        self.maxlen = settings.replay_maxlen
        self.ttl_s = settings.replay_ttl_s
        # EVALSHA with the script loaded on demand (also after a Redis restart forgot it).
        self._script = redis.register_script(_PUBLISH_LUA)
        self._lock = asyncio.Lock()

    async def publish(self, chunk: Chunk, retry_s: float = 5.0) -> int:
        """Publish the next chunk; raises SeqConflict when another producer got there first."""
        async with self._lock:
            seq = self.seq + 1
            chunk = chunk.model_copy(update={"turn_id": self.turn_id, "seq": seq})
            data = chunk.dump()
            deadline = time.monotonic() + (max(retry_s, 20.0) if chunk.is_terminal else retry_s)
            delay = 0.1
            while True:
                try:
                    await self._send(seq, data)
                    self.sent_seq = seq
                    break
                except ResponseError as exc:
                    if "equal or smaller" in str(exc):
                        raise SeqConflict(f"turn {self.turn_id}: seq {seq} already taken") from exc
                    raise
                except REDIS_ERRORS as exc:
                    if time.monotonic() >= deadline:
                        # Dropped: the reply is still saved, and a follower reports the gap.
                        log.warning("turn %s: dropped seq %s: %s", self.turn_id, seq, exc)
                        break
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
            self.seq = seq
            return seq

    async def _send(self, seq: int, data: str) -> None:
        # One script: if the log refuses the entry (its seq is taken), nothing goes live either.
        await self._script(
            keys=[turn_log(self.turn_id), turn_channel(self.turn_id)],
            args=[f"{seq}-0", self.maxlen, data, self.ttl_s],
        )


async def publish_at(
    redis: Redis, settings: Settings, turn_id: int, seq: int, chunk: Chunk, retry_s: float = 5.0
) -> None:
    """Publish one chunk at `seq` for a turn whose producer is gone (watchdog, API)."""
    await TurnPublisher(redis, settings, turn_id, seq - 1).publish(chunk, retry_s)


async def last_logged_seq(redis: Redis, turn_id: int) -> int:
    entries = await redis.xrevrange(turn_log(turn_id), count=1)
    if not entries:
        return 0
    entry_id = entries[0][0]
    entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(str(entry_id).split("-", 1)[0])


async def read_log(
    redis: Redis, turn_id: int, after_seq: int, upto_seq: int | None = None
) -> list[Chunk]:
    """Chunks of the turn with after_seq < seq (<= upto_seq), from the replay log."""
    end = f"{upto_seq}-0" if upto_seq is not None else "+"
    entries = await redis.xrange(turn_log(turn_id), min=f"{after_seq + 1}-0", max=end)
    chunks = []
    for _id, fields in entries or []:
        if not fields:
            continue
        raw = fields.get(b"d") if b"d" in fields else fields.get("d")
        if raw is not None:
            chunks.append(Chunk.model_validate_json(raw))
    return chunks


def parse_chunk(raw: bytes | str) -> Chunk | None:
    try:
        return Chunk.model_validate_json(raw)
    except ValueError:
        log.warning("dropping malformed chunk: %r", raw[:200])
        return None
