"""Re-running a turn (shared.turns.restart, state.hand_back) on both databases and real Redis.

A worker that shuts down hands its turn back (running -> queued as the next attempt), as the
watchdog re-queues a lost worker's turn: once, announced by one `turn_restarted` after
everything the old attempt published, recorded for `assistant status`, enqueued once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import Engine
from sqlmodel import Session

from shared.config import Settings
from shared.devtools.redis_server import RedisServer
from shared.models import TurnStatus
from shared.protocol import Chunk
from shared.redis_client import create_redis
from shared.turns import state
from shared.turns.restart import recent_restarts, restart_turn
from shared.turns.state import ReplyText, TurnSuperseded
from shared.turns.stream import TurnPublisher, read_log
from tests.support.db import Ids, claim_with_reply, message_row, start, turn_row


def _tx(engine: Engine, fn: Any, **kw: Any) -> Any:
    with Session(engine) as s:
        result = fn(s, **kw)
        s.commit()
        return result


class TestHandBack:
    def test_only_the_running_attempt_is_handed_back_and_only_once(
        self, scoped: Engine, conv_ids: Ids
    ) -> None:
        turn_id = start(scoped, conv_ids)
        back = {"turn_id": turn_id, "attempt": 1, "after_seq": 5}
        assert _tx(scoped, state.hand_back, **back) is None  # queued: nothing to hand back
        reply_id = claim_with_reply(scoped, turn_id)
        assert _tx(scoped, state.hand_back, **{**back, "attempt": 2}) is None  # not its attempt
        assert _tx(scoped, state.hand_back, **back) == 6  # the turn_restarted chunk's seq
        turn = turn_row(scoped, turn_id)
        assert (turn.status, turn.attempt, turn.worker, turn.last_seq) == (
            TurnStatus.queued,
            2,
            None,
            6,
        )
        assert _tx(scoped, state.hand_back, **back) is None  # once

        # The attempt that gave it back can do nothing more; the next one runs it.
        late = {"turn_id": turn_id, "attempt": 1, "reply": ReplyText(reply_id, "late", [])}
        with pytest.raises(TurnSuperseded):
            _tx(scoped, state.save_progress, last_seq=7, **late)
        assert claim_with_reply(scoped, turn_id, attempt=2) == reply_id
        assert message_row(scoped, reply_id).content == ""


def test_restart_turn_has_one_winner_and_announces_it_once(
    scoped: Engine, conv_ids: Ids, own_redis: RedisServer
) -> None:
    turn_id = start(scoped, conv_ids)
    claim_with_reply(scoped, turn_id)
    settings = Settings(redis_url=own_redis.url)
    enqueued: list[tuple[int, int]] = []

    async def main() -> tuple[list[bool], list[tuple[int | None, str]], list[Any]]:
        redis: Redis = create_redis(settings)
        try:
            publisher = TurnPublisher(redis, settings, turn_id, after_seq=0)
            for word in ("one ", "two "):
                await publisher.publish(Chunk(type="text", content=word))
            # The shutting-down worker and a watchdog that thinks it vanished, at once.
            won = await asyncio.gather(
                restart_turn(
                    redis,
                    settings,
                    lambda t, a: enqueued.append((t, a)),
                    turn_id=turn_id,
                    attempt=1,
                    reason="shutdown",
                    after_seq=2,
                    worker="w1@test",
                ),
                restart_turn(
                    redis,
                    settings,
                    lambda t, a: enqueued.append((t, a)),
                    turn_id=turn_id,
                    attempt=1,
                    reason="worker_lost",
                ),
            )
            log: list[tuple[int | None, str]] = [
                (c.seq, c.type) for c in await read_log(redis, turn_id, 0)
            ]
            return list(won), log, await recent_restarts(redis, 3600)
        finally:
            await redis.aclose()

    won, log, restarts = asyncio.run(main())
    assert sorted(won) == [False, True]
    assert log == [(1, "text"), (2, "text"), (3, "turn_restarted")]
    assert enqueued == [(turn_id, 2)]
    [restart] = restarts
    assert (restart.turn_id, restart.attempt) == (turn_id, 2)
    assert restart.reason == ("shutdown" if won[0] else "worker_lost")
    turn = turn_row(scoped, turn_id)
    assert (turn.status, turn.attempt, turn.last_seq) == (TurnStatus.queued, 2, 3)
