"""Following one turn for one client (api.follow.TurnFollower) against a real Redis and DB.

The follower must deliver every chunk once, in seq order, ending with the terminal chunk:
from the log first, then live, filling a gap in the live stream from the log, and turning a gap
the log cannot fill into a clear error instead of silence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from sqlalchemy import Engine

from api.follow import GONE, TurnFollower
from api.relay import Relay
from shared.config import Settings
from shared.devtools.redis_server import RedisServer
from shared.protocol import Chunk
from shared.redis_client import create_redis
from shared.turns import ending
from shared.turns.ending import end_turn
from shared.turns.state import ReplyText
from shared.turns.stream import TurnPublisher, turn_channel, turn_log
from tests.support.db import Ids, claim_with_reply, start

T = TypeVar("T")
Scenario = Callable[[Redis, Settings, Relay], Awaitable[T]]


def _run(own_redis: RedisServer, scenario: Scenario[T]) -> T:
    settings = Settings(redis_url=own_redis.url)

    async def main() -> T:
        redis = create_redis(settings)
        relay = Relay(redis)
        await relay.start()
        try:
            return await scenario(redis, settings, relay)
        finally:
            await relay.stop()
            await redis.aclose()

    return asyncio.run(main())


class Client:
    """What one WebSocket client would receive from its follower."""

    def __init__(self, relay: Relay, redis: Redis, turn_id: int, after_seq: int = 0) -> None:
        self.got: list[Chunk] = []
        self.follower = TurnFollower(relay, redis, turn_id, after_seq, self._send)
        self.task = asyncio.create_task(self.follower.run())

    async def _send(self, chunk: Chunk) -> None:
        self.got.append(chunk)

    async def until(self, pred: Callable[[list[Chunk]], bool], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not pred(self.got):
            assert time.monotonic() < deadline, f"timed out; got {self.got}"
            await asyncio.sleep(0.02)

    async def finished(self, timeout: float = 10) -> list[Chunk]:
        await asyncio.wait_for(self.task, timeout)
        return self.got


def _seqs(chunks: list[Chunk]) -> list[tuple[int | None, str]]:
    return [(c.seq, c.type) for c in chunks]


async def _log_only(redis: Redis, turn_id: int, seq: int, text: str) -> None:
    """A chunk that reached the log but whose live message was lost (pub/sub is at-most-once)."""
    chunk = Chunk(type="text", content=text, turn_id=turn_id, seq=seq)
    await redis.xadd(turn_log(turn_id), {"d": chunk.dump()}, id=f"{seq}-0")


async def _live_only(redis: Redis, turn_id: int, seq: int, text: str) -> None:
    chunk = Chunk(type="text", content=text, turn_id=turn_id, seq=seq)
    await redis.publish(turn_channel(turn_id), chunk.dump())


def test_replays_the_log_then_follows_live_to_the_end(
    scoped: Engine, conv_ids: Ids, own_redis: RedisServer
) -> None:
    turn_id = start(scoped, conv_ids)
    reply_id = claim_with_reply(scoped, turn_id)

    async def go(redis: Redis, settings: Settings, relay: Relay) -> list[Chunk]:
        pub = TurnPublisher(redis, settings, turn_id, 0)
        await pub.publish(Chunk(type="text", content="a"))
        await pub.publish(Chunk(type="text", content="b"))
        client = Client(relay, redis, turn_id)
        await client.until(lambda got: len(got) == 2)  # the log
        await pub.publish(Chunk(type="tool_call", tool="Read", input={"file_path": "x"}))
        await pub.publish(Chunk(type="text", content="c"))
        done = ending.completed(ReplyText(reply_id, "abc", []))
        assert await end_turn(redis, settings, done, turn_id=turn_id, attempt=1, after_seq=4)
        return await client.finished()

    got = _run(own_redis, go)
    assert _seqs(got) == [
        (1, "text"),
        (2, "text"),
        (3, "tool_call"),
        (4, "text"),
        (5, "response_done"),
    ]


def test_a_gap_in_the_live_stream_is_filled_from_the_log_in_order(
    scoped: Engine, conv_ids: Ids, own_redis: RedisServer
) -> None:
    turn_id = start(scoped, conv_ids)
    claim_with_reply(scoped, turn_id)

    async def go(redis: Redis, settings: Settings, relay: Relay) -> list[Chunk]:
        pub = TurnPublisher(redis, settings, turn_id, 0)
        await pub.publish(Chunk(type="text", content="1"))
        client = Client(relay, redis, turn_id)
        await client.until(lambda got: len(got) == 1)
        await _log_only(redis, turn_id, 2, "2")  # its live message never arrives
        await _live_only(redis, turn_id, 1, "1")  # a duplicate: dropped
        pub.seq = 2
        await pub.publish(Chunk(type="text", content="3"))  # live, ahead of the gap
        await client.until(lambda got: len(got) == 3)
        return client.got

    got = _run(own_redis, go)
    assert [(c.seq, c.content) for c in got] == [(1, "1"), (2, "2"), (3, "3")]


def test_a_gap_the_log_cannot_fill_ends_with_a_clear_error(
    scoped: Engine, conv_ids: Ids, own_redis: RedisServer
) -> None:
    turn_id = start(scoped, conv_ids)
    claim_with_reply(scoped, turn_id)

    async def go(redis: Redis, settings: Settings, relay: Relay) -> list[Chunk]:
        pub = TurnPublisher(redis, settings, turn_id, 0)
        await pub.publish(Chunk(type="text", content="1"))
        client = Client(relay, redis, turn_id)
        await client.until(lambda got: len(got) == 1)
        await _live_only(redis, turn_id, 3, "3")  # seq 2 is in neither the log nor live
        got = await client.finished()
        await _live_only(redis, turn_id, 4, "4")  # nothing after the error
        return got

    got = _run(own_redis, go)
    assert [(c.seq, c.type) for c in got[:1]] == [(1, "text")]
    assert got[-1].type == "error" and got[-1].content == GONE and got[-1].turn_id == turn_id
    assert len(got) == 2


def test_resuming_after_a_seq_delivers_only_what_follows(
    scoped: Engine, conv_ids: Ids, own_redis: RedisServer
) -> None:
    turn_id = start(scoped, conv_ids)
    reply_id = claim_with_reply(scoped, turn_id)

    async def go(redis: Redis, settings: Settings, relay: Relay) -> list[Chunk]:
        pub = TurnPublisher(redis, settings, turn_id, 0)
        for word in "abcd":
            await pub.publish(Chunk(type="text", content=word))
        done = ending.completed(ReplyText(reply_id, "abcd", []))
        assert await end_turn(redis, settings, done, turn_id=turn_id, attempt=1, after_seq=4)
        return await Client(relay, redis, turn_id, after_seq=2).finished()

    assert _seqs(_run(own_redis, go)) == [(3, "text"), (4, "text"), (5, "response_done")]


def test_a_finished_turn_whose_log_expired_says_to_reload(
    scoped: Engine, conv_ids: Ids, own_redis: RedisServer
) -> None:
    turn_id = start(scoped, conv_ids)
    reply_id = claim_with_reply(scoped, turn_id)

    async def go(redis: Redis, settings: Settings, relay: Relay) -> list[Chunk]:
        pub = TurnPublisher(redis, settings, turn_id, 0)
        await pub.publish(Chunk(type="text", content="a"))
        done = ending.completed(ReplyText(reply_id, "a", []))
        assert await end_turn(redis, settings, done, turn_id=turn_id, attempt=1, after_seq=1)
        await redis.delete(turn_log(turn_id))  # expired (or lost in a Redis restart)
        return await Client(relay, redis, turn_id).finished(timeout=15)

    got = _run(own_redis, go)
    assert [(c.type, c.content) for c in got] == [("error", GONE)]
