"""Re-running a turn: running -> queued as its next attempt, announced, handed to the broker.

Two reasons: its worker vanished (the watchdog: `state.requeue_lost`), or its worker is
shutting down and gives it back (`state.hand_back`). Either way a conditional UPDATE picks one
winner; only the winner announces `turn_restarted` (at the seq that UPDATE took, after
everything the old attempt published), records the restart for `assistant status`, and
enqueues the next attempt, which no other delivery can claim before that UPDATE committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

from redis.asyncio import Redis

from shared.config import Settings
from shared.group_commit import DirectWrites, Writes
from shared.logs import turn_scope
from shared.metrics import turn_outcome
from shared.protocol import Chunk
from shared.redis_client import REDIS_ERRORS
from shared.turns import state
from shared.turns.stream import last_logged_seq, publish_at

log = logging.getLogger(__name__)

Reason = Literal["worker_lost", "shutdown"]
Enqueue = Callable[[int, int], None]  # (turn_id, attempt): hands the turn to the broker

_TRANSITIONS: dict[Reason, Callable[..., int | None]] = {
    "worker_lost": state.requeue_lost,
    "shutdown": state.hand_back,
}
_WHY = {
    "worker_lost": "its worker vanished",
    "shutdown": "its worker is shutting down and handed it back",
}
# The last restarts (a capped Redis stream, entry ids are times): what `assistant status` shows.
RESTARTS_KEY = "assistant:restarts"
RESTARTS_KEPT = 1000
_DIRECT = DirectWrites()


async def restart_turn(
    redis: Redis,
    settings: Settings,
    enqueue: Enqueue,
    *,
    turn_id: int,
    attempt: int,
    reason: Reason,
    after_seq: int = 0,
    worker: str | None = None,
    db: Writes = _DIRECT,
) -> bool:
    """Re-run (turn_id, attempt) as attempt + 1 if it still runs as that attempt; False when
    another actor moved it first (then nothing is published or enqueued). Redis errors while
    reading the replay log propagate, before anything changed. The UPDATE goes through `db`
    (the process's group commit, where it has one)."""
    with turn_scope(turn_id):
        # The announcement must follow everything the old attempt published: without the log
        # (Redis away) nothing is moved, and the caller tries again later.
        after_seq = max(after_seq, await last_logged_seq(redis, turn_id))
        transition = _TRANSITIONS[reason]
        seq = await db.write(
            partial(transition, turn_id=turn_id, attempt=attempt, after_seq=after_seq)
        )
        if seq is None:
            return False
        turn_outcome("restarted", reason)
        log.warning(
            "turn %s: %s (%s); re-running as attempt %s",
            turn_id,
            _WHY[reason],
            worker or "unknown worker",
            attempt + 1,
        )
        try:
            await publish_at(redis, settings, turn_id, seq, Chunk(type="turn_restarted"))
        except (state.TurnSuperseded, *REDIS_ERRORS):
            # The database says what happened; a follower reads it there and the re-run goes on.
            log.warning("turn %s: could not announce the restart", turn_id)
        with contextlib.suppress(*REDIS_ERRORS):
            await _record(redis, turn_id, attempt + 1, reason, worker)
        try:
            await asyncio.to_thread(enqueue, turn_id, attempt + 1)
        except Exception:
            # It stays queued; if no worker gets it in time it ends as expired_in_queue.
            log.exception("turn %s: could not enqueue attempt %s", turn_id, attempt + 1)
        return True


async def _record(
    redis: Redis, turn_id: int, new_attempt: int, reason: Reason, worker: str | None
) -> None:
    fields = {"turn_id": turn_id, "attempt": new_attempt, "reason": reason, "worker": worker or ""}
    await redis.xadd(
        RESTARTS_KEY, {"d": json.dumps(fields)}, maxlen=RESTARTS_KEPT, approximate=True
    )


@dataclass(frozen=True)
class Restart:
    at: float  # epoch seconds (Redis's clock)
    turn_id: int
    attempt: int  # the attempt it was restarted as
    reason: str
    worker: str


async def recent_restarts(redis: Redis, within_s: float) -> list[Restart]:
    """Restarts recorded in the last `within_s` seconds, newest first."""
    seconds, micros = await redis.time()
    since_ms = int((seconds + micros / 1e6 - within_s) * 1000)
    entries = await redis.xrevrange(RESTARTS_KEY, max="+", min=f"{since_ms}-0")
    found = []
    for entry_id, fields in entries or []:
        try:
            data = json.loads(str((fields or {})["d"]))
            found.append(
                Restart(
                    at=int(str(entry_id).split("-", 1)[0]) / 1000,
                    turn_id=int(data["turn_id"]),
                    attempt=int(data["attempt"]),
                    reason=str(data["reason"]),
                    worker=str(data.get("worker") or ""),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return found
