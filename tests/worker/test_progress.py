"""The worker's progress writer: all running turns saved in one transaction per tick, and a
turn that another attempt owns now is told so (real database, both kinds)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy import Engine

from shared.group_commit import GroupCommit
from shared.turns import state
from shared.turns.state import ReplyText, TurnSuperseded
from tests.support.db import Ids, claim_with_reply, message_row, start, turn_row
from worker.progress import ProgressWriter


@dataclass(eq=False)
class FakeTurn:
    """A running turn as the writer sees it (worker.run.TurnRun implements the same)."""

    turn_id: int
    attempt: int
    reply_id: int
    superseded: asyncio.Future[None]
    text: str = ""
    seq: int = 0
    offered: int = field(default=0)

    def take_progress(self) -> tuple[ReplyText, int] | None:
        if not self.text:
            return None
        self.offered += 1
        text, self.text = self.text, ""
        return ReplyText(self.reply_id, text, []), self.seq

    def progress_not_saved(self) -> None:
        raise AssertionError("the database is up: every save must be stored")


def test_saves_every_turn_and_tells_the_superseded_one(scoped: Engine, conv_ids: Ids) -> None:
    ours = start(scoped, conv_ids)
    ours_reply = claim_with_reply(scoped, ours)
    # A second conversation's turn, re-queued by the watchdog under its first attempt.
    with_other = Ids(conv_ids.user_id, _other_conversation(scoped, conv_ids))
    theirs = start(scoped, with_other)
    theirs_reply = claim_with_reply(scoped, theirs)
    from sqlmodel import Session

    with Session(scoped) as s:
        assert state.requeue_lost(s, turn_id=theirs, attempt=1, after_seq=0) is not None
        s.commit()

    async def go() -> tuple[FakeTurn, FakeTurn]:
        loop = asyncio.get_running_loop()
        a = FakeTurn(ours, 1, ours_reply, loop.create_future(), "Hello wor", 3)
        b = FakeTurn(theirs, 1, theirs_reply, loop.create_future(), "zombie", 5)
        idle = FakeTurn(ours, 1, ours_reply, loop.create_future())  # nothing new to save
        db = GroupCommit("test-writer")
        writer = ProgressWriter(db)
        for turn in (a, b, idle):
            writer.track(turn)
        try:
            await writer.save_all()
        finally:
            db.close()
        return a, b

    a, b = asyncio.run(go())
    assert not a.superseded.done()
    assert isinstance(b.superseded.exception(), TurnSuperseded)
    assert message_row(scoped, ours_reply).content == "Hello wor"
    assert turn_row(scoped, ours).last_seq == 3
    assert message_row(scoped, theirs_reply).content != "zombie"


def _other_conversation(engine: Engine, ids: Ids) -> int:
    from sqlmodel import Session

    from shared import conversations as convs

    with Session(engine) as s:
        conv = convs.create_conversation(s, "demo", ids.user_id)
        s.commit()
        assert conv.id is not None
        return conv.id
