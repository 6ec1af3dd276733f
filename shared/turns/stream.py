"""A turn's chunks in Redis: key names, the publisher (worker side) and the replay-log reader.

Every chunk of turn T goes, in one Lua script, to a bounded stream `turn:T:log` (the replay log,
entry id `SEQ-0`, so "everything after seq N" is one XRANGE) and to the pub/sub channel `turn:T`
(live). Pub/sub is at-most-once; the log is what makes late subscribers and reconnecting
clients whole. The log refuses a seq it already holds, and then nothing goes out live either:
that is how a producer learns that another attempt owns the turn now.

Terminal chunks (`response_done`, `error`) are published by `shared.turns.ending` only.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import weakref
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from shared.config import Settings
from shared.metrics import CHUNK_BYTES_PUBLISHED, CHUNKS_PUBLISHED, redis_error
from shared.protocol import Chunk
from shared.redis_client import REDIS_ERRORS
from shared.turns.state import TurnSuperseded

log = logging.getLogger(__name__)

# A chunk is retried this long while Redis restarts, then dropped (the reply is still stored,
# and a follower turns the gap into a clear "reload" error). A client waits on the terminal
# chunk, so it gets longer.
RETRY_S = 5.0
TERMINAL_RETRY_S = 20.0


def turn_channel(turn_id: int) -> str:
    return f"turn:{turn_id}"


def turn_log(turn_id: int) -> str:
    return f"turn:{turn_id}:log"


def cancel_key(turn_id: int) -> str:
    return f"turn:{turn_id}:cancel"


def heartbeat_key(turn_id: int) -> str:
    return f"turn:{turn_id}:hb"


# Idempotent for its own retries: if the entry at this seq already holds exactly this chunk, a
# previous attempt of this very call got through before its connection died (Redis clients
# retry on a dropped connection), so it is success and nothing is published twice. Any other
# entry at or past this seq means another producer owns the turn. The live copy (ARGV[5]) also
# carries the publish time, for the relay-delay metric; the log's copy does not, so a retry
# still finds exactly its own chunk there.
_PUBLISH_LUA = """
local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', ARGV[2], ARGV[1], 'd', ARGV[3])
if type(added) == 'table' and added.err then
  local same = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
  if same[1] and same[1][2][2] == ARGV[3] then return 0 end
  return added
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', KEYS[2], ARGV[5])
return 1
"""


class TurnPublisher:
    """Assigns `seq` and publishes the non-terminal chunks of one turn run, in order."""

    def __init__(self, redis: Redis, settings: Settings, turn_id: int, after_seq: int) -> None:
        self.turn_id = turn_id
        self.seq = after_seq
        # The last seq that reached Redis: what progress saves record, so a re-run or the
        # watchdog continues after it.
        self.sent_seq = after_seq
        self._redis = redis
        self._settings = settings
        self._lock = asyncio.Lock()

    async def publish(self, chunk: Chunk, retry_s: float = RETRY_S) -> int:
        """Publish the next chunk; TurnSuperseded when another producer took its seq."""
        if chunk.is_terminal:
            raise ValueError("terminal chunks are published by shared.turns.ending only")
        async with self._lock:
            seq = self.seq + 1
            if await _send(self._redis, self._settings, self.turn_id, seq, chunk, retry_s):
                self.sent_seq = seq
            self.seq = seq
            return seq


async def publish_at(
    redis: Redis, settings: Settings, turn_id: int, seq: int, chunk: Chunk
) -> None:
    """Publish one non-terminal chunk at `seq` for a turn whose producer is gone (watchdog)."""
    await TurnPublisher(redis, settings, turn_id, seq - 1).publish(chunk)


async def publish_terminal(
    redis: Redis, settings: Settings, turn_id: int, seq: int, chunk: Chunk
) -> int | None:
    """For shared.turns.ending only: publish a turn's terminal chunk at `seq`, or at the next
    free seq when a stale producer wrote there first; the seq used, None if Redis stayed away."""
    for _ in range(_TERMINAL_SEQ_TRIES):
        try:
            sent = await _send(redis, settings, turn_id, seq, chunk, TERMINAL_RETRY_S)
            return seq if sent else None
        except TurnSuperseded:
            seq = max(seq, await last_logged_seq(redis, turn_id)) + 1
    log.error("turn %s: no free seq for the terminal chunk", turn_id)
    return None


_TERMINAL_SEQ_TRIES = 5
# How long a chunk waits for others to share its round trip to Redis (see _PublishBatch).
BATCH_WINDOW_S = 0.001


class _PublishBatch:
    """The chunks a process publishes within a millisecond, in one pipeline to Redis.

    A worker streams hundreds of turns; each coalesced chunk was one script call, i.e. one
    write and one read system call, and the profile showed the worker's largest share in
    them. Calls that arrive together now share one pipeline (one write, one read), and each
    caller still gets its own result: success, its seq taken, or the connection's error.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._sha = hashlib.sha1(_PUBLISH_LUA.encode()).hexdigest()
        self._pending: list[tuple[list[str], list[str | int], asyncio.Future[object]]] = []
        self._flushing: set[asyncio.Task[None]] = set()

    async def call(self, keys: list[str], args: list[str | int]) -> object:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        self._pending.append((keys, args, future))
        if len(self._pending) == 1:
            loop.call_later(BATCH_WINDOW_S, self._start_flush)
        return await future

    def _start_flush(self) -> None:
        task = asyncio.ensure_future(self._flush())
        self._flushing.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(self._flushing.discard)

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            results = await self._run(batch)
            if any(isinstance(r, NoScriptError) for r in results):
                # A restarted Redis forgot the script: load it, send those again.
                await self._redis.script_load(_PUBLISH_LUA)
                again = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
                for i, r in zip(again, await self._run([batch[i] for i in again]), strict=True):
                    results[i] = r
        except Exception as exc:  # the connection failed: every caller retries on its own
            results = [exc] * len(batch)
        for (_keys, _args, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _run(self, batch: list[tuple[list[str], list[str | int], Any]]) -> list[object]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                pipe.evalsha(self._sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))


_batches: weakref.WeakKeyDictionary[Redis, _PublishBatch] = weakref.WeakKeyDictionary()


async def _send(
    redis: Redis, settings: Settings, turn_id: int, seq: int, chunk: Chunk, retry_s: float
) -> bool:
    """Write `chunk` as `seq` to the log and the channel; False if Redis stayed away too long."""
    chunk = chunk.model_copy(update={"turn_id": turn_id, "seq": seq})
    data = chunk.dump()
    live = chunk.model_copy(update={"published_at": time.time()}).wire()
    batch = _batches.get(redis)
    if batch is None:
        batch = _batches[redis] = _PublishBatch(redis)
    deadline = time.monotonic() + retry_s
    delay = 0.1
    while True:
        try:
            await batch.call(
                [turn_log(turn_id), turn_channel(turn_id)],
                [f"{seq}-0", settings.replay_maxlen, data, settings.replay_ttl_s, live],
            )
            CHUNKS_PUBLISHED.labels(chunk.type).inc()
            CHUNK_BYTES_PUBLISHED.inc(len(live))
            return True
        except ResponseError as exc:
            if "equal or smaller" in str(exc):
                raise TurnSuperseded(f"turn {turn_id}: seq {seq} is taken") from exc
            raise
        except REDIS_ERRORS as exc:
            redis_error("publish")
            if time.monotonic() >= deadline:
                log.warning("turn %s: dropped seq %s: %s", turn_id, seq, exc)
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def last_logged_seq(redis: Redis, turn_id: int) -> int:
    """The highest seq in the turn's replay log (0 when it has none)."""
    entries = await redis.xrevrange(turn_log(turn_id), count=1)
    if not entries:
        return 0
    entry_id = str(entries[0][0])
    return int(entry_id.split("-", 1)[0])


async def read_log(
    redis: Redis, turn_id: int, after_seq: int, upto_seq: int | None = None
) -> list[Chunk]:
    """Chunks of the turn with after_seq < seq (<= upto_seq), from the replay log."""
    end = f"{upto_seq}-0" if upto_seq is not None else "+"
    entries = await redis.xrange(turn_log(turn_id), min=f"{after_seq + 1}-0", max=end)
    chunks = []
    for _id, fields in entries or []:
        chunk = parse_chunk(str(fields.get("d", ""))) if fields else None
        if chunk is not None:
            chunks.append(chunk)
    return chunks


def parse_chunk(raw: str) -> Chunk | None:
    try:
        return Chunk.model_validate_json(raw)
    except ValueError:
        log.warning("dropping malformed chunk: %r", raw[:200])
        return None
