"""The chunk transport of a turn against a real Redis: publisher, replay log, terminal chunks.

Each test has a Redis server of its own (turn ids restart at 1 in each test database).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from redis.asyncio import Redis

from shared.config import Settings
from shared.devtools.redis_server import RedisServer
from shared.protocol import Chunk, error_chunk
from shared.redis_client import create_redis
from shared.turns.state import TurnSuperseded
from shared.turns.stream import (
    TurnPublisher,
    last_logged_seq,
    publish_terminal,
    read_log,
    turn_channel,
    turn_log,
)

T = TypeVar("T")


def _run(own_redis: RedisServer, fn: Callable[[Redis, Settings], Awaitable[T]], **kw: int) -> T:
    settings = Settings(redis_url=own_redis.url, **kw)  # type: ignore[arg-type]

    async def main() -> T:
        redis = create_redis(settings)
        try:
            return await fn(redis, settings)
        finally:
            await redis.aclose()

    return asyncio.run(main())


def _text(n: int) -> Chunk:
    return Chunk(type="text", content=f"part{n} ")


def test_publisher_numbers_chunks_and_the_log_replays_them(own_redis: RedisServer) -> None:
    async def go(redis: Redis, settings: Settings) -> None:
        pub = TurnPublisher(redis, settings, 7, after_seq=0)
        assert [await pub.publish(_text(n)) for n in range(1, 5)] == [1, 2, 3, 4]
        assert (pub.seq, pub.sent_seq) == (4, 4)
        assert await last_logged_seq(redis, 7) == 4
        after = await read_log(redis, 7, after_seq=1)
        assert [(c.seq, c.turn_id, c.content) for c in after] == [
            (2, 7, "part2 "),
            (3, 7, "part3 "),
            (4, 7, "part4 "),
        ]
        assert [c.seq for c in await read_log(redis, 7, after_seq=1, upto_seq=2)] == [2]
        assert await read_log(redis, 8, after_seq=0) == []
        assert await last_logged_seq(redis, 8) == 0

    _run(own_redis, go)


def test_chunks_go_live_on_the_channel_too(own_redis: RedisServer) -> None:
    async def go(redis: Redis, settings: Settings) -> list[dict[str, object]]:
        pubsub = redis.pubsub()
        await pubsub.subscribe(turn_channel(3))
        await pubsub.get_message(timeout=2)  # the subscribe confirmation
        pub = TurnPublisher(redis, settings, 3, after_seq=10)
        await pub.publish(_text(11))
        await pub.publish(Chunk(type="tool_call", tool="Read", input={"file_path": "a.py"}))
        got = []
        for _ in range(2):
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            assert msg is not None
            got.append(json.loads(msg["data"]))
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        return got

    live = _run(own_redis, go)
    assert [(m["seq"], m["type"]) for m in live] == [(11, "text"), (12, "tool_call")]


def test_a_taken_seq_means_superseded_and_nothing_goes_live(own_redis: RedisServer) -> None:
    async def go(redis: Redis, settings: Settings) -> int:
        first = TurnPublisher(redis, settings, 5, after_seq=0)
        await first.publish(_text(1))
        await first.publish(_text(2))
        pubsub = redis.pubsub()
        await pubsub.subscribe(turn_channel(5))
        await pubsub.get_message(timeout=2)
        stale = TurnPublisher(redis, settings, 5, after_seq=1)  # an older attempt, seq 2 next
        with pytest.raises(TurnSuperseded):
            await stale.publish(_text(99))
        assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.3) is None
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        return await last_logged_seq(redis, 5)

    assert _run(own_redis, go) == 2


def test_terminal_chunks_are_refused_by_the_publisher(own_redis: RedisServer) -> None:
    async def go(redis: Redis, settings: Settings) -> None:
        pub = TurnPublisher(redis, settings, 1, after_seq=0)
        with pytest.raises(ValueError, match="ending"):
            await pub.publish(Chunk(type="response_done", status="complete"))
        with pytest.raises(ValueError, match="ending"):
            await pub.publish(error_chunk("x"))
        assert await last_logged_seq(redis, 1) == 0

    _run(own_redis, go)


def test_a_terminal_chunk_takes_the_next_free_seq(own_redis: RedisServer) -> None:
    async def go(redis: Redis, settings: Settings) -> list[tuple[int | None, str]]:
        pub = TurnPublisher(redis, settings, 4, after_seq=0)
        await pub.publish(_text(1))
        await pub.publish(_text(2))  # a stale producer wrote seq 2 after the turn ended at 1
        assert await publish_terminal(redis, settings, 4, 2, Chunk(type="response_done")) == 3
        return [(c.seq, c.type) for c in await read_log(redis, 4, 0)]

    assert _run(own_redis, go) == [(1, "text"), (2, "text"), (3, "response_done")]


def test_the_log_is_bounded_in_length_and_lifetime(own_redis: RedisServer) -> None:
    async def go(redis: Redis, settings: Settings) -> tuple[int, int, int]:
        pub = TurnPublisher(redis, settings, 9, after_seq=0)
        for n in range(1, 11):
            await pub.publish(_text(n))
        first = (await read_log(redis, 9, 0))[0].seq or 0
        return await redis.xlen(turn_log(9)), await redis.ttl(turn_log(9)), first

    length, ttl, first = _run(own_redis, go, replay_maxlen=4, replay_ttl_s=60)
    assert length == 4 and first == 7  # the oldest are trimmed, the newest kept
    assert 0 < ttl <= 60


def test_a_chunk_is_dropped_not_hung_when_redis_stays_away(own_redis: RedisServer) -> None:
    async def go(redis: Redis, settings: Settings) -> tuple[int, int]:
        pub = TurnPublisher(redis, settings, 2, after_seq=0)
        await pub.publish(_text(1))
        own_redis.stop()
        await pub.publish(_text(2), retry_s=0.3)
        return pub.seq, pub.sent_seq

    # The seq is used (a follower turns the hole into a clear error); sent_seq says what
    # really reached Redis, which is what progress saves record.
    assert _run(own_redis, go) == (2, 1)


def test_a_retried_publish_of_the_same_chunk_is_success_and_goes_live_once(
    own_redis: RedisServer,
) -> None:
    """A client library retries a command whose connection died after Redis ran it: the same
    chunk at the same seq is the publisher's own, not a rival producer's."""

    async def go(redis: Redis, settings: Settings) -> tuple[int, int, list[int]]:
        pubsub = redis.pubsub()
        await pubsub.subscribe(turn_channel(6))
        await pubsub.get_message(timeout=2)
        first = TurnPublisher(redis, settings, 6, after_seq=0)
        await first.publish(_text(1))
        again = TurnPublisher(redis, settings, 6, after_seq=0)  # the same call, retried
        assert await again.publish(_text(1)) == 1
        rival = TurnPublisher(redis, settings, 6, after_seq=0)
        with pytest.raises(TurnSuperseded):
            await rival.publish(_text(7))  # something else at seq 1
        live = []
        while msg := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.3):
            live.append(json.loads(msg["data"])["seq"])
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        return again.sent_seq, await last_logged_seq(redis, 6), live

    assert _run(own_redis, go) == (1, 1, [1])


def test_commands_survive_a_redis_restart_on_pooled_connections(own_redis: RedisServer) -> None:
    """Every process's client (create_redis) retries once on a connection a restart killed,
    also inside MULTI, so the first command after a restart is not an error."""

    async def go(redis: Redis, _settings: Settings) -> list[object]:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set("k", "before")
            await pipe.execute()
        own_redis.restart()
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset("h", "f", "v")
            pipe.expire("h", 60)
            result: list[object] = await pipe.execute()
        own_redis.restart()
        result.append(await redis.get("k"))
        return result

    assert _run(own_redis, go) == [1, True, None]


def test_hundreds_of_commands_at_once_wait_for_a_connection_instead_of_failing(
    own_redis: RedisServer,
) -> None:
    """Hundreds of conversations starting together each need a Redis connection for a moment:
    a busy pool makes them wait, it does not refuse them ("Too many connections")."""

    async def go(redis: Redis, _settings: Settings) -> int:
        async def one(i: int) -> int:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.incr("n")
                pipe.expire("n", 60)
                await pipe.execute()
            return i

        done = await asyncio.gather(*(one(i) for i in range(400)))
        assert len(done) == 400
        return int(await redis.get("n") or 0)

    assert _run(own_redis, go, redis_max_connections=8) == 400


def test_chunks_published_together_share_a_round_trip_and_keep_their_own_results(
    own_redis: RedisServer,
) -> None:
    """Many turns publishing at once go to Redis in one pipeline; a rival's taken seq is that
    caller's TurnSuperseded only, and a Redis restart (the script forgotten) is recovered."""

    async def go(redis: Redis, settings: Settings) -> tuple[list[int | BaseException], list[int]]:
        taken = TurnPublisher(redis, settings, 500, after_seq=0)
        await taken.publish(_text(1))
        pubs = [TurnPublisher(redis, settings, t, after_seq=0) for t in range(1, 41)]
        rival = TurnPublisher(redis, settings, 500, after_seq=0)  # seq 1 is taken
        results = await asyncio.gather(
            *(p.publish(_text(1)) for p in pubs), rival.publish(_text(9)), return_exceptions=True
        )
        own_redis.restart()  # forgets the script and every log
        again = await asyncio.gather(*(p.publish(_text(2)) for p in pubs[:5]))
        return results, [await last_logged_seq(redis, t) for t in range(1, 6)] + again

    results, after = _run(own_redis, go)
    assert results[:40] == [1] * 40
    assert isinstance(results[40], TurnSuperseded)
    assert after == [2] * 5 + [2] * 5
