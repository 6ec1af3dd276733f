"""The turn state machine (shared.turns.state) on both databases: who may move a turn, once.

Every transition is a conditional UPDATE on (id, attempt, allowed states); these tests pin down
the allowed starting states of each and that racing actors have exactly one winner.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from shared import conversations as convs
from shared.models import Message, MessageStatus, Turn, TurnStatus
from shared.turns import state
from shared.turns.state import ReplyText, TurnSuperseded
from tests.support.db import (
    Ids,
    claim_with_reply,
    message_row,
    race,
    start,
    turn_row,
)


def _tx(engine: Engine, fn: Any, **kw: Any) -> Any:
    """Run one transition in its own committed transaction, as the callers do."""
    with Session(engine) as s:
        result = fn(s, **kw)
        s.commit()
        return result


def _save(engine: Engine, turn_id: int, attempt: int, reply_id: int, text: str, seq: int) -> None:
    reply = ReplyText(reply_id, text, [{"tool": "Read", "input": {"file_path": "a"}}])
    _tx(engine, state.save_progress, turn_id=turn_id, attempt=attempt, reply=reply, last_seq=seq)


def _finish(engine: Engine, turn_id: int, attempt: int, status: TurnStatus, **kw: Any) -> Any:
    reply = kw.pop("reply", ReplyText(0, "", []))
    return _tx(
        engine,
        state.finish_running,
        turn_id=turn_id,
        attempt=attempt,
        after_seq=kw.pop("after_seq", 0),
        status=status,
        reply=reply,
        **kw,
    )


class TestClaim:
    def test_only_once_per_attempt(self, scoped: Engine, conv_ids: Ids) -> None:
        turn_id = start(scoped, conv_ids)
        with Session(scoped) as s:
            with pytest.raises(TurnSuperseded):
                state.claim(s, turn_id=turn_id, attempt=2, worker="w1")  # not this attempt
            state.claim(s, turn_id=turn_id, attempt=1, worker="w1")
            with pytest.raises(TurnSuperseded):
                state.claim(s, turn_id=turn_id, attempt=1, worker="w2")  # a duplicate delivery
            s.commit()
        turn = turn_row(scoped, turn_id)
        assert (turn.status, turn.worker) == (TurnStatus.running, "w1")
        assert turn.started_at is not None

    def test_concurrent_claims_have_exactly_one_winner(self, scoped: Engine, conv_ids: Ids) -> None:
        turn_id = start(scoped, conv_ids)

        def claim() -> bool:
            with Session(scoped) as s:
                try:
                    state.claim(
                        s, turn_id=turn_id, attempt=1, worker=threading.current_thread().name
                    )
                except TurnSuperseded:
                    return False
                s.commit()
                return True

        assert sorted(race(6, claim)) == [False] * 5 + [True]
        assert turn_row(scoped, turn_id).status == TurnStatus.running


class TestProgress:
    def test_reset_reply_keeps_one_message_per_turn(self, scoped: Engine, conv_ids: Ids) -> None:
        turn_id = start(scoped, conv_ids)
        reply_id = claim_with_reply(scoped, turn_id)
        _save(scoped, turn_id, 1, reply_id, "partial", 2)
        with Session(scoped) as s:
            turn = s.get(Turn, turn_id)
            assert turn is not None
            again = state.reset_reply(s, turn)
            s.commit()
            assert again.id == reply_id
        reply = message_row(scoped, reply_id)
        assert (reply.content, reply.tool_calls, reply.status) == ("", [], MessageStatus.streaming)
        # The unique turn_id means a second reply row for the turn cannot exist.
        with Session(scoped) as s:
            s.add(
                Message(conversation_id=conv_ids.conversation_id, role="assistant", turn_id=turn_id)
            )
            with pytest.raises(IntegrityError):
                s.commit()

    def test_only_the_running_attempt_saves(self, scoped: Engine, conv_ids: Ids) -> None:
        turn_id = start(scoped, conv_ids)
        with Session(scoped) as s:
            s.add(
                Message(conversation_id=conv_ids.conversation_id, role="assistant", turn_id=turn_id)
            )
            s.commit()
        with Session(scoped) as s:
            reply = convs.assistant_reply(s, turn_id)
            assert reply is not None and reply.id is not None
            reply_id = reply.id
        with pytest.raises(TurnSuperseded):  # queued, not yet claimed: nobody owns it
            _save(scoped, turn_id, 1, reply_id, "early", 1)
        with Session(scoped) as s:
            state.claim(s, turn_id=turn_id, attempt=1, worker="w1")
            s.commit()
        _save(scoped, turn_id, 1, reply_id, "Hello wor", 4)
        with pytest.raises(TurnSuperseded):
            _save(scoped, turn_id, 2, reply_id, "stale", 9)
        reply = message_row(scoped, reply_id)
        assert reply.content == "Hello wor"
        assert reply.tool_calls == [{"tool": "Read", "input": {"file_path": "a"}}]
        assert turn_row(scoped, turn_id).last_seq == 4


class TestFinishRunning:
    @pytest.mark.parametrize(
        ("status", "message_status"),
        [
            (TurnStatus.complete, MessageStatus.complete),
            (TurnStatus.cancelled, MessageStatus.cancelled),
            (TurnStatus.failed, MessageStatus.failed),
        ],
    )
    def test_stores_the_reply_with_its_status(
        self, scoped: Engine, conv_ids: Ids, status: TurnStatus, message_status: MessageStatus
    ) -> None:
        turn_id = start(scoped, conv_ids)
        reply_id = claim_with_reply(scoped, turn_id)
        _save(scoped, turn_id, 1, reply_id, "The ans", 3)
        with Session(scoped) as s:
            before = convs.get_conversation(
                s, conv_ids.conversation_id, "demo", conv_ids.user_id
            ).updated_at
        error = "boom" if status == TurnStatus.failed else None
        calls = [{"tool": "Glob", "input": {"pattern": "*"}}]
        reply = ReplyText(reply_id, "The answer.", calls)

        assert _finish(scoped, turn_id, 2, status, reply=reply, error=error) is None  # stale
        # The terminal chunk goes one past both the stored last_seq and what the caller knows.
        assert _finish(scoped, turn_id, 1, status, reply=reply, error=error, after_seq=4) == 5
        assert _finish(scoped, turn_id, 1, TurnStatus.complete, reply=reply) is None  # once

        turn = turn_row(scoped, turn_id)
        assert (turn.status, turn.last_seq, turn.error) == (status, 5, error)
        assert turn.finished_at is not None
        assert convs.is_finished(turn)
        stored = message_row(scoped, reply_id)
        assert (stored.content, stored.tool_calls, stored.status) == (
            "The answer.",
            calls,
            message_status,
        )
        with Session(scoped) as s:
            assert convs.get_conversation(
                s, conv_ids.conversation_id, "demo", conv_ids.user_id
            ).updated_at >= (before)
            assert convs.active_turn(s, conv_ids.conversation_id) is None

    def test_seq_continues_after_the_stored_last_seq(self, scoped: Engine, conv_ids: Ids) -> None:
        turn_id = start(scoped, conv_ids)
        reply_id = claim_with_reply(scoped, turn_id)
        _save(scoped, turn_id, 1, reply_id, "x", 7)
        reply = ReplyText(reply_id, "x", [])
        assert _finish(scoped, turn_id, 1, TurnStatus.complete, reply=reply, after_seq=2) == 8

    def test_a_stale_attempt_after_a_requeue_can_do_nothing(
        self, scoped: Engine, conv_ids: Ids
    ) -> None:
        turn_id = start(scoped, conv_ids)
        reply_id = claim_with_reply(scoped, turn_id)
        assert _tx(scoped, state.requeue_lost, turn_id=turn_id, attempt=1, after_seq=0) == 1
        # The old worker comes back: it no longer owns the turn.
        with pytest.raises(TurnSuperseded):
            _save(scoped, turn_id, 1, reply_id, "zombie", 3)
        zombie = ReplyText(reply_id, "zombie", [])
        assert _finish(scoped, turn_id, 1, TurnStatus.complete, reply=zombie) is None
        turn = turn_row(scoped, turn_id)
        assert (turn.status, turn.attempt) == (TurnStatus.queued, 2)
        assert message_row(scoped, reply_id).content != "zombie"


class TestLostWorker:
    def test_requeue_then_fail_exactly_once(self, scoped: Engine, conv_ids: Ids) -> None:
        turn_id = start(scoped, conv_ids)
        reply_id = claim_with_reply(scoped, turn_id)
        _save(scoped, turn_id, 1, reply_id, "half", 3)

        # Not lost while queued, and never for the wrong attempt.
        assert _tx(scoped, state.requeue_lost, turn_id=turn_id, attempt=2, after_seq=0) is None
        assert _tx(scoped, state.requeue_lost, turn_id=turn_id, attempt=1, after_seq=7) == 8
        turn = turn_row(scoped, turn_id)
        assert (turn.status, turn.attempt, turn.worker, turn.last_seq) == (
            TurnStatus.queued,
            2,
            None,
            8,
        )
        assert _tx(scoped, state.requeue_lost, turn_id=turn_id, attempt=1, after_seq=7) is None
        with Session(scoped) as s, pytest.raises(TurnSuperseded):
            state.claim(s, turn_id=turn_id, attempt=1, worker="old")  # the old attempt is stale

        assert claim_with_reply(scoped, turn_id, attempt=2) == reply_id
        lost = {"turn_id": turn_id, "attempt": 2, "after_seq": 0, "error": "gone"}
        assert _tx(scoped, state.fail_lost, **lost) == 9
        turn = turn_row(scoped, turn_id)
        assert (turn.status, turn.error) == (TurnStatus.failed, "gone")
        assert turn.finished_at is not None
        assert message_row(scoped, reply_id).status == MessageStatus.failed
        assert _tx(scoped, state.fail_lost, **lost) is None
        with Session(scoped) as s:
            assert convs.active_turn(s, conv_ids.conversation_id) is None

    def test_concurrent_requeues_have_exactly_one_winner(
        self, scoped: Engine, conv_ids: Ids
    ) -> None:
        turn_id = start(scoped, conv_ids)
        claim_with_reply(scoped, turn_id)
        results = race(
            4, lambda: _tx(scoped, state.requeue_lost, turn_id=turn_id, attempt=1, after_seq=0)
        )
        assert len([r for r in results if r is not None]) == 1
        assert turn_row(scoped, turn_id).attempt == 2


class TestQueuedEndings:
    def test_fail_queued_only_from_queued(self, scoped: Engine, conv_ids: Ids) -> None:
        turn_id = start(scoped, conv_ids)
        kw = {"turn_id": turn_id, "after_seq": 4, "error": "nobody came"}
        assert _tx(scoped, state.fail_queued, attempt=2, **kw) is None  # wrong attempt
        assert _tx(scoped, state.fail_queued, attempt=1, **kw) == 5
        turn = turn_row(scoped, turn_id)
        assert (turn.status, turn.last_seq, turn.error) == (TurnStatus.failed, 5, "nobody came")
        assert turn.finished_at is not None
        assert _tx(scoped, state.fail_queued, attempt=1, **kw) is None  # exactly once

        # A running turn is the heartbeat's business, not the queue's.
        running = start(scoped, conv_ids, "next")
        claim_with_reply(scoped, running)
        kw["turn_id"] = running
        assert _tx(scoped, state.fail_queued, attempt=1, **kw) is None
        assert turn_row(scoped, running).status == TurnStatus.running

    def test_cancel_queued_loses_to_a_worker_that_claimed_it(
        self, scoped: Engine, conv_ids: Ids
    ) -> None:
        turn_id = start(scoped, conv_ids)
        claim_with_reply(scoped, turn_id)
        # The API read "queued" a moment ago; the worker has claimed it since. Cancelling from
        # queued must not end a running turn: the API signals the worker instead.
        assert _tx(scoped, state.cancel_queued, turn_id=turn_id, attempt=1, after_seq=0) is None
        assert turn_row(scoped, turn_id).status == TurnStatus.running

    def test_fail_unstarted_from_queued_or_just_claimed(
        self, scoped: Engine, conv_ids: Ids
    ) -> None:
        queued = start(scoped, conv_ids)
        kw = {"attempt": 1, "after_seq": 0, "error": "project gone"}
        assert _tx(scoped, state.fail_unstarted, turn_id=queued, **kw) == 1
        running = start(scoped, conv_ids, "next")
        claim_with_reply(scoped, running)
        assert _tx(scoped, state.fail_unstarted, turn_id=running, **kw) == 1
        assert turn_row(scoped, running).status == TurnStatus.failed


@pytest.mark.parametrize("how", ["fail_unstarted", "cancel_queued", "fail_queued"])
def test_ending_without_the_reply_keeps_its_text_and_ends_it(
    scoped: Engine, conv_ids: Ids, how: str
) -> None:
    turn_id = start(scoped, conv_ids)
    reply_id = claim_with_reply(scoped, turn_id)
    _save(scoped, turn_id, 1, reply_id, "half an answer", 2)
    assert _tx(scoped, state.requeue_lost, turn_id=turn_id, attempt=1, after_seq=0) is not None
    kw: dict[str, Any] = {"turn_id": turn_id, "attempt": 2, "after_seq": 0}
    if how == "cancel_queued":  # the API cancels the re-queued turn
        expected = MessageStatus.cancelled
    else:  # not enqueued, could not start, or no worker picked it up in time
        kw["error"] = "x"
        expected = MessageStatus.failed
    assert _tx(scoped, getattr(state, how), **kw) is not None
    reply = message_row(scoped, reply_id)
    assert reply.status == expected
    assert reply.content == "half an answer"  # what was said so far is kept


def test_unfinished_turns_lists_queued_and_running(scoped: Engine, conv_ids: Ids) -> None:
    queued = start(scoped, conv_ids)
    with Session(scoped) as s:
        other = convs.create_conversation(s, "demo", conv_ids.user_id)
        other_ids = Ids(conv_ids.user_id, other.id or 0)
        s.commit()
    running = start(scoped, other_ids)
    claim_with_reply(scoped, running)
    with Session(scoped) as s:
        refs = {r.id: r for r in state.unfinished_turns(s)}
    assert {i: r.status for i, r in refs.items()} == {queued: "queued", running: "running"}
    assert not refs[queued].older_than(60)
    assert refs[queued].older_than(-1)
    kw = {"attempt": 1, "after_seq": 0, "error": "x"}
    assert _tx(scoped, state.fail_unstarted, turn_id=running, **kw) is not None
    with Session(scoped) as s:
        assert [r.id for r in state.unfinished_turns(s)] == [queued]
