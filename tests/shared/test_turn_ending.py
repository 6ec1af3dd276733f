"""`end_turn`: every turn ends once, with one terminal chunk, whoever tries (real Redis and DB)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from redis.asyncio import Redis
from sqlalchemy import Engine

from shared.config import Settings
from shared.devtools.redis_server import RedisServer
from shared.models import MessageStatus, TurnStatus
from shared.protocol import Chunk
from shared.redis_client import create_redis
from shared.turns import ending
from shared.turns.ending import end_turn
from shared.turns.state import ReplyText
from shared.turns.stream import TurnPublisher, read_log
from tests.support.db import Ids, claim_with_reply, message_row, start, turn_row

T = TypeVar("T")


def _run(own_redis: RedisServer, fn: Callable[[Redis, Settings], Awaitable[T]]) -> T:
    settings = Settings(redis_url=own_redis.url)

    async def main() -> T:
        redis = create_redis(settings)
        try:
            return await fn(redis, settings)
        finally:
            await redis.aclose()

    return asyncio.run(main())


async def _log(redis: Redis, turn_id: int) -> list[tuple[int | None, str, str | None]]:
    return [(c.seq, c.type, c.status or c.content) for c in await read_log(redis, turn_id, 0)]


def test_completed_stores_the_reply_and_publishes_one_response_done(
    scoped: Engine, conv_ids: Ids, own_redis: RedisServer
) -> None:
    turn_id = start(scoped, conv_ids)
    reply_id = claim_with_reply(scoped, turn_id)

    async def go(redis: Redis, settings: Settings) -> list[tuple[int | None, str, str | None]]:
        pub = TurnPublisher(redis, settings, turn_id, after_seq=0)
        await pub.publish(Chunk(type="text", content="Hello"))
        reply = ReplyText(reply_id, "Hello", [])
        done = ending.completed(reply)
        assert await end_turn(redis, settings, done, turn_id=turn_id, attempt=1, after_seq=1)
        # Anyone else ending it afterwards loses and publishes nothing.
        for late in (ending.lost(), ending.stopped(reply), ending.cancelled_in_queue()):
            assert not await end_turn(redis, settings, late, turn_id=turn_id, attempt=1)
        return await _log(redis, turn_id)

    assert _run(own_redis, go) == [(1, "text", "Hello"), (2, "response_done", "complete")]
    turn = turn_row(scoped, turn_id)
    assert (turn.status, turn.last_seq) == (TurnStatus.complete, 2)
    assert message_row(scoped, reply_id).status == MessageStatus.complete


@pytest.mark.parametrize("rounds", range(3))
def test_racing_enders_have_one_winner_and_one_terminal_chunk(
    scoped: Engine, conv_ids: Ids, own_redis: RedisServer, rounds: int
) -> None:
    turn_id = start(scoped, conv_ids, f"race {rounds}")
    reply_id = claim_with_reply(scoped, turn_id)
    reply = ReplyText(reply_id, "partial", [])

    async def go(redis: Redis, settings: Settings) -> list[bool]:
        enders = [ending.completed(reply), ending.lost(), ending.failed(reply, "boom")]
        return list(
            await asyncio.gather(
                *(end_turn(redis, settings, e, turn_id=turn_id, attempt=1) for e in enders)
            )
        )

    won = _run(own_redis, go)
    assert sorted(won) == [False, False, True]

    async def logged(redis: Redis, _settings: Settings) -> list[tuple[int | None, str, str | None]]:
        return await _log(redis, turn_id)

    entries = _run(own_redis, logged)
    assert len(entries) == 1 and entries[0][1] in ("response_done", "error")


def test_cancel_in_queue_loses_to_a_claim_and_publishes_nothing(
    scoped: Engine, conv_ids: Ids, own_redis: RedisServer
) -> None:
    turn_id = start(scoped, conv_ids)
    claim_with_reply(scoped, turn_id)

    async def go(redis: Redis, settings: Settings) -> bool:
        return await end_turn(
            redis, settings, ending.cancelled_in_queue(), turn_id=turn_id, attempt=1
        )

    assert _run(own_redis, go) is False
    assert turn_row(scoped, turn_id).status == TurnStatus.running


def test_the_terminal_chunk_goes_after_what_the_log_holds(
    scoped: Engine, conv_ids: Ids, own_redis: RedisServer
) -> None:
    """A re-queued turn's `turn_restarted` (or a stale producer's chunk) is in the log but not
    in the row: the ending still comes after it, and the row records where it went."""
    turn_id = start(scoped, conv_ids)

    async def go(redis: Redis, settings: Settings) -> list[tuple[int | None, str, str | None]]:
        pub = TurnPublisher(redis, settings, turn_id, after_seq=0)
        for word in ("a", "b", "c"):
            await pub.publish(Chunk(type="text", content=word))
        assert await end_turn(
            redis, settings, ending.expired_in_queue(), turn_id=turn_id, attempt=1
        )
        return await _log(redis, turn_id)

    entries = _run(own_redis, go)
    assert entries[-1] == (4, "error", ending.EXPIRED)
    turn = turn_row(scoped, turn_id)
    assert (turn.status, turn.last_seq, turn.error) == (TurnStatus.failed, 4, ending.EXPIRED)


def test_ending_works_while_redis_is_down_and_the_row_says_so(
    scoped: Engine, conv_ids: Ids, own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is the record: the ending is stored even when its chunk cannot be sent
    (a follower then reads the outcome from the row)."""
    import shared.turns.stream as stream

    monkeypatch.setattr(stream, "TERMINAL_RETRY_S", 0.3)
    turn_id = start(scoped, conv_ids)

    async def go(redis: Redis, settings: Settings) -> bool:
        own_redis.stop()
        return await end_turn(redis, settings, ending.not_enqueued(), turn_id=turn_id, attempt=1)

    assert _run(own_redis, go) is True
    turn = turn_row(scoped, turn_id)
    assert (turn.status, turn.error) == (TurnStatus.failed, ending.ENQUEUE_FAILED)
