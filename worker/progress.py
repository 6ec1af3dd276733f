"""Progress saves for every turn of one worker process, in one write per tick.

A streaming reply is saved twice a second so a crash loses at most the last instant. Saving
each turn on its own would be one write transaction per turn per tick; on SQLite every one
of them queues for the single write lock. So the turns of a process are saved together: one
job per tick on the process's group commit, however many stream. A turn whose save finds it
owned by another attempt learns it through its `superseded` future.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from sqlmodel import Session

from shared.group_commit import Writes
from shared.turns import state
from shared.turns.state import ReplyText, TurnSuperseded

log = logging.getLogger(__name__)

INTERVAL_S = 0.5


class Saving(Protocol):
    """What a running turn offers the writer (worker.run.TurnRun)."""

    turn_id: int
    attempt: int
    superseded: asyncio.Future[None]  # set once, by the writer

    def take_progress(self) -> tuple[ReplyText, int] | None:
        """The reply so far and the last seq sent, if changed since the last take."""

    def progress_not_saved(self) -> None:
        """The last take was not stored: offer it again next tick."""


class ProgressWriter:
    def __init__(self, db: Writes, interval_s: float = INTERVAL_S) -> None:
        self.db = db
        self.interval_s = interval_s
        self._turns: set[Saving] = set()

    def track(self, turn: Saving) -> None:
        self._turns.add(turn)

    def untrack(self, turn: Saving) -> None:
        self._turns.discard(turn)

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.save_all()
            except Exception:
                log.exception("progress writer tick failed")

    async def save_all(self) -> None:
        batch = [(t, p) for t in list(self._turns) if (p := t.take_progress()) is not None]
        if not batch:
            return
        try:
            rows = [(t.turn_id, t.attempt, *p) for t, p in batch]
            lost = await self.db.write(lambda session: _save(session, rows))
        except Exception:
            # A passing database hiccup must not end healthy turns: try again next tick.
            log.warning("progress of %d turn(s) not saved", len(batch), exc_info=True)
            for turn, _ in batch:
                turn.progress_not_saved()
            return
        for turn, _ in batch:
            # Only a turn still running here is told (a finished one no longer listens).
            if (turn.turn_id, turn.attempt) in lost and turn in self._turns:
                turn.superseded.set_exception(
                    TurnSuperseded(f"turn {turn.turn_id} attempt {turn.attempt} no longer runs")
                )


def _save(session: Session, batch: list[tuple[int, int, ReplyText, int]]) -> set[tuple[int, int]]:
    """Save every turn's progress; the (turn, attempt)s no longer running."""
    return state.save_progress_many(session, [state.Progress(*row) for row in batch])
