"""Persistence on both databases: migrations, conversations and the turn state machine.

Each test runs twice: on a fresh SQLite file and on a fresh PostgreSQL database (skipped when no
server is reachable). The schema always comes from the Alembic migrations, never create_all, so
these tests also prove that the migrations build a working schema on both.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, create_engine, func, inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

import shared.db
from shared import auth, turn_state
from shared import conversations as convs
from shared.db import make_engine
from shared.errors import Conflict, NotFound
from shared.migrate import upgrade
from shared.models import Conversation, Message, MessageStatus, Turn, TurnStatus
from shared.protocol import GREETING

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
PG_ADMIN_URL = f"{PG_SERVER}/test"

T = TypeVar("T")


def _pg_engine() -> Iterator[Engine]:
    admin = create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        conn = admin.connect()
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc.orig}")
    name = f"assistant_test_{uuid.uuid4().hex[:16]}"
    conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine: Engine | None = None
    try:
        url = f"{PG_SERVER}/{name}"
        upgrade(url)
        engine = make_engine(url)
        yield engine
    finally:
        if engine is not None:
            engine.dispose()
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.close()
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    """A migrated, empty database of each kind."""
    if request.param == "postgresql":
        yield from _pg_engine()
        return
    url = f"sqlite:///{tmp_path / 'assistant.db'}"
    upgrade(url)
    eng = make_engine(url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def scoped(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Point shared.db.session_scope (used by turn_state) at this test's engine."""
    monkeypatch.setattr(shared.db, "get_engine", lambda: engine)
    return engine


@dataclass(frozen=True)
class Ids:
    user_id: int
    conversation_id: int


def _user(session: Session, name: str | None = None) -> int:
    user = auth.create_user(session, name or f"u{uuid.uuid4().hex[:8]}")
    assert user.id is not None
    return user.id


@pytest.fixture
def conv_ids(engine: Engine) -> Ids:
    """A user and their conversation (with the greeting) in project 'demo', committed."""
    with Session(engine) as s:
        uid = _user(s, "alice")
        conv = convs.create_conversation(s, "demo", uid)
        convs.add_greeting(s, conv)
        assert conv.id is not None
        ids = Ids(uid, conv.id)
        s.commit()
    return ids


def _conv(s: Session, ids: Ids) -> Conversation:
    return convs.get_conversation(s, ids.conversation_id, "demo", ids.user_id)


def _count(engine: Engine, model: type[Any], conversation_id: int) -> int:
    with Session(engine) as s:
        return int(
            s.exec(
                select(func.count()).select_from(model).where(
                    model.conversation_id == conversation_id
                )
            ).one()
        )


def _start(engine: Engine, ids: Ids, content: str = "hello", cmid: str | None = None) -> int:
    with Session(engine) as s:
        new = convs.start_turn(s, _conv(s, ids), content, cmid)
        assert new.created
        assert new.turn.id is not None
        turn_id = new.turn.id
        s.commit()
    return turn_id


def _turn(engine: Engine, turn_id: int) -> Turn:
    with Session(engine) as s:
        turn = s.get(Turn, turn_id)
        assert turn is not None
        return turn


def _message(engine: Engine, message_id: int) -> Message:
    with Session(engine) as s:
        msg = s.get(Message, message_id)
        assert msg is not None
        return msg


def _set_status(engine: Engine, turn_id: int, status: TurnStatus) -> None:
    with Session(engine) as s:
        turn = s.get(Turn, turn_id)
        assert turn is not None
        turn.status = status
        s.add(turn)
        s.commit()


def _claim_with_reply(engine: Engine, turn_id: int, attempt: int = 1) -> int:
    """What a worker does first: claim the attempt and (re)create the reply message."""
    with Session(engine) as s:
        assert turn_state.claim(s, turn_id, attempt, "w1@test")
        turn = s.get(Turn, turn_id)
        assert turn is not None
        reply = turn_state.reset_reply(s, turn)
        assert reply.id is not None
        reply_id = reply.id
        s.commit()
    return reply_id


def _race(n: int, fn: Callable[[], T]) -> list[T]:
    """Run `fn` in n threads released together; their results (exceptions re-raised)."""
    barrier = threading.Barrier(n)
    results: list[T] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            out = fn()
            with lock:
                results.append(out)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    if errors:
        raise errors[0]
    return results


# ---- migrations -----------------------------------------------------------------------------


def test_migrations_build_the_schema(engine: Engine) -> None:
    insp = inspect(engine)
    tables = set(insp.get_table_names())
    assert {"users", "api_tokens", "projects", "conversations", "messages", "turns"} <= tables
    assert "alembic_version" in tables
    indexes = {ix["name"]: ix for ix in insp.get_indexes("turns")}
    assert indexes["uq_turns_one_active_per_conversation"]["unique"]
    assert indexes["uq_turns_client_message_id"]["unique"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def test_upgrade_twice_is_a_no_op(engine: Engine, conv_ids: Ids) -> None:
    upgrade(engine.url.render_as_string(hide_password=False))
    assert _count(engine, Message, conv_ids.conversation_id) == 1


# ---- conversations --------------------------------------------------------------------------


def test_create_conversation_with_greeting(engine: Engine, conv_ids: Ids) -> None:
    with Session(engine) as s:
        conv = _conv(s, conv_ids)
        assert conv.title is None
        assert conv.project_name == "demo"
        msgs = convs.messages_of(s, conv_ids.conversation_id)
    assert [(m.role, m.content, m.status) for m in msgs] == [
        ("assistant", GREETING, MessageStatus.complete)
    ]
    assert msgs[0].turn_id is None


def test_start_turn_stores_user_message_queued_turn_and_title(
    engine: Engine, conv_ids: Ids
) -> None:
    content = "How does the\nparser handle nested brackets inside string literals, exactly?"
    with Session(engine) as s:
        conv = _conv(s, conv_ids)
        before = conv.updated_at
        new = convs.start_turn(s, conv, content, "c-1")
        s.commit()
        assert new.created
        turn_id = new.turn.id
    assert turn_id is not None
    turn = _turn(engine, turn_id)
    assert turn.status == TurnStatus.queued
    assert turn.attempt == 1
    assert turn.client_message_id == "c-1"
    assert turn.user_id == conv_ids.user_id
    user_msg = _message(engine, turn.user_message_id)
    assert (user_msg.role, user_msg.content) == ("user", content)
    assert user_msg.conversation_id == conv_ids.conversation_id
    with Session(engine) as s:
        conv = _conv(s, conv_ids)
        assert conv.title == content.replace("\n", " ")[:50]
        assert len(conv.title) == 50
        assert conv.updated_at >= before
        assert convs.active_turn(s, conv_ids.conversation_id) is not None


def test_title_is_set_by_the_first_message_only(engine: Engine, conv_ids: Ids) -> None:
    first = _start(engine, conv_ids, "first question")
    _set_status(engine, first, TurnStatus.complete)
    _start(engine, conv_ids, "second question")
    with Session(engine) as s:
        assert _conv(s, conv_ids).title == "first question"


def test_second_turn_while_one_is_active_conflicts_and_stores_nothing(
    engine: Engine, conv_ids: Ids
) -> None:
    _start(engine, conv_ids, "first")
    with Session(engine) as s:
        with pytest.raises(Conflict):
            convs.start_turn(s, _conv(s, conv_ids), "second")
        s.commit()  # whatever start_turn left in the session would be stored now
    assert _count(engine, Turn, conv_ids.conversation_id) == 1
    with Session(engine) as s:
        contents = [m.content for m in convs.messages_of(s, conv_ids.conversation_id)]
    assert contents == [GREETING, "first"]


def test_a_running_turn_also_blocks_a_new_one(engine: Engine, conv_ids: Ids) -> None:
    turn_id = _start(engine, conv_ids)
    _claim_with_reply(engine, turn_id)
    with Session(engine) as s, pytest.raises(Conflict):
        convs.start_turn(s, _conv(s, conv_ids), "again")


def test_a_finished_turn_does_not_block_the_next(engine: Engine, conv_ids: Ids) -> None:
    turn_id = _start(engine, conv_ids)
    _set_status(engine, turn_id, TurnStatus.complete)
    second = _start(engine, conv_ids, "next")
    assert second != turn_id
    assert _count(engine, Turn, conv_ids.conversation_id) == 2


def test_one_active_turn_is_enforced_by_the_database(engine: Engine, conv_ids: Ids) -> None:
    turn_id = _start(engine, conv_ids)
    first = _turn(engine, turn_id)
    # A finished turn may sit next to the active one: the unique index is partial.
    with Session(engine) as s:
        s.add(
            Turn(
                conversation_id=conv_ids.conversation_id, user_id=conv_ids.user_id,
                user_message_id=first.user_message_id, status=TurnStatus.complete,
            )
        )
        s.commit()
    for status in (TurnStatus.queued, TurnStatus.running):
        with Session(engine) as s:
            s.add(
                Turn(
                    conversation_id=conv_ids.conversation_id, user_id=conv_ids.user_id,
                    user_message_id=first.user_message_id, status=status,
                )
            )
            with pytest.raises(IntegrityError):
                s.commit()
    assert _count(engine, Turn, conv_ids.conversation_id) == 2


def test_start_turn_that_loses_the_race_to_the_index_is_a_conflict(
    engine: Engine, conv_ids: Ids, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another API process inserted the active turn after our check: Conflict, not a 500."""
    _start(engine, conv_ids, "first")
    monkeypatch.setattr(convs, "active_turn", lambda _s, _cid: None)
    with Session(engine) as s:
        with pytest.raises(Conflict):
            convs.start_turn(s, _conv(s, conv_ids), "racing")
        s.rollback()
    assert _count(engine, Turn, conv_ids.conversation_id) == 1
    assert _count(engine, Message, conv_ids.conversation_id) == 2  # greeting + "first"


def test_same_client_message_id_returns_the_existing_turn(engine: Engine, conv_ids: Ids) -> None:
    turn_id = _start(engine, conv_ids, "hello", cmid="client-42")
    for _ in range(2):
        with Session(engine) as s:
            again = convs.start_turn(s, _conv(s, conv_ids), "hello", "client-42")
            assert not again.created
            assert again.turn.id == turn_id
            s.commit()
    assert _count(engine, Turn, conv_ids.conversation_id) == 1
    assert _count(engine, Message, conv_ids.conversation_id) == 2
    # The id is scoped to the conversation: another conversation may use the same one.
    with Session(engine) as s:
        other = convs.create_conversation(s, "demo", conv_ids.user_id)
        new = convs.start_turn(s, other, "hello", "client-42")
        assert new.created
        assert new.turn.id != turn_id
        s.commit()


def test_racing_duplicates_of_one_client_message_id_run_one_turn(
    engine: Engine, conv_ids: Ids
) -> None:
    def send() -> tuple[int, bool]:
        with Session(engine) as s:
            new = convs.start_turn(s, _conv(s, conv_ids), "hello", "client-race")
            s.commit()
            assert new.turn.id is not None
            return new.turn.id, new.created

    results = _race(4, send)
    # Whoever lost the race gets the winner's turn, not a "still being generated" error.
    assert len({turn_id for turn_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert _count(engine, Turn, conv_ids.conversation_id) == 1
    assert _count(engine, Message, conv_ids.conversation_id) == 2


def test_list_conversations_counts_and_orders_by_update(engine: Engine) -> None:
    base = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    with Session(engine) as s:
        alice, bob = _user(s, "alice"), _user(s, "bob")
        ids = []
        for i, (hours, n_msgs) in enumerate([(1, 2), (3, 0), (2, 1)]):
            conv = convs.create_conversation(s, "demo", alice)
            convs.touch(conv, base + timedelta(hours=hours))
            for j in range(n_msgs):
                s.add(Message(conversation_id=conv.id or 0, role="user", content=f"{i}.{j}"))
            ids.append(conv.id)
        # Not listed: another user's, and alice's in another project.
        bobs = convs.create_conversation(s, "demo", bob)
        convs.touch(bobs, base + timedelta(hours=9))
        convs.create_conversation(s, "other", alice)
        s.commit()

    with Session(engine) as s:
        listed = convs.list_conversations(s, "demo", alice)
    assert [(c.conversation.id, c.message_count) for c in listed] == [
        (ids[1], 0), (ids[2], 1), (ids[0], 2),
    ]
    assert all(c.conversation.user_id == alice for c in listed)


def test_get_conversation_of_someone_else_is_not_found(engine: Engine, conv_ids: Ids) -> None:
    with Session(engine) as s:
        bob = _user(s, "bob")
        s.commit()
        assert _conv(s, conv_ids).id == conv_ids.conversation_id
        for cid, project, uid in [
            (conv_ids.conversation_id, "demo", bob),  # another user's
            (conv_ids.conversation_id, "other", conv_ids.user_id),  # another project
            (conv_ids.conversation_id + 1000, "demo", conv_ids.user_id),  # absent
            # Ids no database can hold: still "not found", not a driver error.
            (0, "demo", conv_ids.user_id),
            (-1, "demo", conv_ids.user_id),
            (2**63, "demo", conv_ids.user_id),
            (-(2**63) - 1, "demo", conv_ids.user_id),
            (10**30, "demo", conv_ids.user_id),
        ]:
            with pytest.raises(NotFound):
                convs.get_conversation(s, cid, project, uid)


def test_delete_conversation_removes_messages_and_turns(engine: Engine, conv_ids: Ids) -> None:
    turn_id = _start(engine, conv_ids)
    reply_id = _claim_with_reply(engine, turn_id)
    with Session(engine) as s:
        keep = convs.create_conversation(s, "demo", conv_ids.user_id)
        convs.add_greeting(s, keep)
        keep_id = keep.id
        s.commit()
    assert keep_id is not None
    assert _count(engine, Message, conv_ids.conversation_id) == 3

    with Session(engine) as s:
        convs.delete_conversation(s, _conv(s, conv_ids))
        s.commit()

    with Session(engine) as s:
        assert s.get(Conversation, conv_ids.conversation_id) is None
        assert s.get(Turn, turn_id) is None
        assert s.get(Message, reply_id) is None
    assert _count(engine, Message, conv_ids.conversation_id) == 0
    assert _count(engine, Turn, conv_ids.conversation_id) == 0
    assert _count(engine, Message, keep_id) == 1


# ---- turn state -----------------------------------------------------------------------------


def test_claim_only_once_per_attempt(scoped: Engine, conv_ids: Ids) -> None:
    turn_id = _start(scoped, conv_ids)
    with Session(scoped) as s:
        assert not turn_state.claim(s, turn_id, 2, "w1")  # not this attempt
        assert turn_state.claim(s, turn_id, 1, "w1")
        assert not turn_state.claim(s, turn_id, 1, "w2")  # a duplicate delivery
        s.commit()
    turn = _turn(scoped, turn_id)
    assert turn.status == TurnStatus.running
    assert turn.worker == "w1"
    assert turn.started_at is not None


def test_concurrent_claims_have_exactly_one_winner(scoped: Engine, conv_ids: Ids) -> None:
    turn_id = _start(scoped, conv_ids)

    def claim() -> bool:
        with Session(scoped) as s:
            won = turn_state.claim(s, turn_id, 1, threading.current_thread().name)
            s.commit()
            return won

    assert sorted(_race(6, claim)) == [False] * 5 + [True]
    assert _turn(scoped, turn_id).status == TurnStatus.running


def test_reset_reply_keeps_one_message_per_turn(scoped: Engine, conv_ids: Ids) -> None:
    turn_id = _start(scoped, conv_ids)
    reply_id = _claim_with_reply(scoped, turn_id)
    assert turn_state.save_progress(turn_id, 1, reply_id, "partial", [{"tool": "x"}], 2)
    with Session(scoped) as s:
        turn = s.get(Turn, turn_id)
        assert turn is not None
        again = turn_state.reset_reply(s, turn)
        s.commit()
        assert again.id == reply_id
    reply = _message(scoped, reply_id)
    assert (reply.content, reply.tool_calls, reply.status) == ("", [], MessageStatus.streaming)
    # The unique turn_id means a second reply row for the turn cannot exist.
    with Session(scoped) as s:
        s.add(Message(conversation_id=conv_ids.conversation_id, role="assistant", turn_id=turn_id))
        with pytest.raises(IntegrityError):
            s.commit()


def test_save_progress_only_for_the_running_attempt(scoped: Engine, conv_ids: Ids) -> None:
    turn_id = _start(scoped, conv_ids)
    with Session(scoped) as s:
        s.add(Message(conversation_id=conv_ids.conversation_id, role="assistant", turn_id=turn_id))
        s.commit()
    with Session(scoped) as s:
        reply = convs.assistant_reply(s, turn_id)
        assert reply is not None
        assert reply.id is not None
        reply_id = reply.id
    # Queued, not yet claimed: nobody owns it.
    assert not turn_state.save_progress(turn_id, 1, reply_id, "early", [], 1)
    with Session(scoped) as s:
        assert turn_state.claim(s, turn_id, 1, "w1")
        s.commit()

    calls = [{"tool": "read_file", "input": {"path": "README.md"}}]
    assert turn_state.save_progress(turn_id, 1, reply_id, "Hello wor", calls, 4)
    assert not turn_state.save_progress(turn_id, 2, reply_id, "stale", [], 9)
    reply = _message(scoped, reply_id)
    assert (reply.content, reply.tool_calls) == ("Hello wor", calls)
    assert _turn(scoped, turn_id).last_seq == 4


@pytest.mark.parametrize(
    ("status", "message_status"),
    [
        (TurnStatus.complete, MessageStatus.complete),
        (TurnStatus.cancelled, MessageStatus.cancelled),
        (TurnStatus.failed, MessageStatus.failed),
    ],
)
def test_finish_stores_the_reply_with_its_status(
    scoped: Engine, conv_ids: Ids, status: TurnStatus, message_status: MessageStatus
) -> None:
    turn_id = _start(scoped, conv_ids)
    reply_id = _claim_with_reply(scoped, turn_id)
    with Session(scoped) as s:
        before = _conv(s, conv_ids).updated_at
    error = "boom" if status == TurnStatus.failed else None
    calls = [{"tool": "list_files", "input": {}}]

    assert not turn_state.finish(turn_id, 2, reply_id, "stale", [], status, 5, error)
    assert turn_state.finish(turn_id, 1, reply_id, "The answer.", calls, status, 5, error)
    assert not turn_state.finish(turn_id, 1, reply_id, "again", [], TurnStatus.complete, 6)

    turn = _turn(scoped, turn_id)
    assert (turn.status, turn.last_seq, turn.error) == (status, 5, error)
    assert turn.finished_at is not None
    assert convs.is_finished(turn)
    reply = _message(scoped, reply_id)
    assert (reply.content, reply.tool_calls, reply.status) == ("The answer.", calls, message_status)
    with Session(scoped) as s:
        assert _conv(s, conv_ids).updated_at >= before
        assert convs.active_turn(s, conv_ids.conversation_id) is None


def test_finish_refuses_a_stale_attempt_after_recovery(scoped: Engine, conv_ids: Ids) -> None:
    turn_id = _start(scoped, conv_ids)
    reply_id = _claim_with_reply(scoped, turn_id)
    assert turn_state.recover_lost(turn_id, 1, 0, max_attempts=2) is not None
    # The old worker comes back: it no longer owns the turn.
    assert not turn_state.save_progress(turn_id, 1, reply_id, "zombie", [], 3)
    assert not turn_state.finish(turn_id, 1, reply_id, "zombie", [], TurnStatus.complete, 3)
    turn = _turn(scoped, turn_id)
    assert (turn.status, turn.attempt) == (TurnStatus.queued, 2)
    assert _message(scoped, reply_id).content != "zombie"


def test_recover_lost_requeues_then_fails_exactly_once(scoped: Engine, conv_ids: Ids) -> None:
    turn_id = _start(scoped, conv_ids)
    reply_id = _claim_with_reply(scoped, turn_id)
    assert turn_state.save_progress(turn_id, 1, reply_id, "half", [], 3)

    # Not lost yet while queued, and never for the wrong attempt.
    assert turn_state.recover_lost(turn_id, 2, 0, max_attempts=2) is None

    first = turn_state.recover_lost(turn_id, 1, 7, max_attempts=2)
    assert first == turn_state.Recovery(turn_id, rerun=True, attempt=2, seq=8)
    turn = _turn(scoped, turn_id)
    assert (turn.status, turn.attempt, turn.worker, turn.last_seq) == (
        TurnStatus.queued, 2, None, 8,
    )
    assert turn_state.recover_lost(turn_id, 1, 7, max_attempts=2) is None  # exactly once
    with Session(scoped) as s:
        assert not turn_state.claim(s, turn_id, 1, "old")  # the old attempt is stale

    assert _claim_with_reply(scoped, turn_id, attempt=2) == reply_id
    second = turn_state.recover_lost(turn_id, 2, 0, max_attempts=2)
    assert second == turn_state.Recovery(turn_id, rerun=False, attempt=2, seq=9)
    turn = _turn(scoped, turn_id)
    assert turn.status == TurnStatus.failed
    assert turn.error
    assert turn.finished_at is not None
    assert _message(scoped, reply_id).status == MessageStatus.failed
    assert turn_state.recover_lost(turn_id, 2, 0, max_attempts=2) is None
    with Session(scoped) as s:
        assert convs.active_turn(s, conv_ids.conversation_id) is None


def test_concurrent_recoveries_have_exactly_one_winner(scoped: Engine, conv_ids: Ids) -> None:
    turn_id = _start(scoped, conv_ids)
    _claim_with_reply(scoped, turn_id)
    results = _race(4, lambda: turn_state.recover_lost(turn_id, 1, 0, max_attempts=3))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert winners[0].attempt == 2
    assert _turn(scoped, turn_id).attempt == 2


def test_expire_queued(scoped: Engine, conv_ids: Ids) -> None:
    turn_id = _start(scoped, conv_ids)
    assert turn_state.expire_queued(turn_id, 2, 0) is None  # wrong attempt
    assert turn_state.expire_queued(turn_id, 1, 4) == 5
    turn = _turn(scoped, turn_id)
    assert (turn.status, turn.last_seq) == (TurnStatus.failed, 5)
    assert turn.error
    assert turn.finished_at is not None
    assert turn_state.expire_queued(turn_id, 1, 4) is None  # exactly once

    # A running turn is the heartbeat's business, not the queue timeout's.
    with Session(scoped) as s:
        assert convs.active_turn(s, conv_ids.conversation_id) is None
    running = _start(scoped, conv_ids, "next")
    _claim_with_reply(scoped, running)
    assert turn_state.expire_queued(running, 1, 0) is None
    assert _turn(scoped, running).status == TurnStatus.running


def test_unfinished_turns_lists_queued_and_running(scoped: Engine, conv_ids: Ids) -> None:
    queued = _start(scoped, conv_ids)
    with Session(scoped) as s:
        other = convs.create_conversation(s, "demo", conv_ids.user_id)
        other_ids = Ids(conv_ids.user_id, other.id or 0)
        s.commit()
    running = _start(scoped, other_ids)
    _claim_with_reply(scoped, running)
    refs = {r.id: r for r in turn_state.unfinished_turns()}
    assert {queued: "queued", running: "running"} == {i: r.status for i, r in refs.items()}
    assert not turn_state.older_than(refs[queued], 60)
    assert turn_state.older_than(refs[queued], -1)
    assert turn_state.finish(running, 1, None, "", [], TurnStatus.failed, 1, "x")
    assert [r.id for r in turn_state.unfinished_turns()] == [queued]


@pytest.mark.parametrize("how", ["fail_on_load", "cancel_queued", "expire_queued"])
def test_ending_a_turn_without_its_reply_id_ends_the_reply(
    scoped: Engine, conv_ids: Ids, how: str
) -> None:
    turn_id = _start(scoped, conv_ids)
    reply_id = _claim_with_reply(scoped, turn_id)
    if how == "fail_on_load":  # worker/turn.py run_turn: the project is gone after the claim
        assert turn_state.finish(turn_id, 1, None, "", [], TurnStatus.failed, 1, "gone")
        assert _message(scoped, reply_id).status == MessageStatus.failed
        return
    assert turn_state.save_progress(turn_id, 1, reply_id, "half an answer", [], 2)
    assert turn_state.recover_lost(turn_id, 1, 0, max_attempts=2) is not None
    if how == "cancel_queued":  # api/turns.py cancel_turn on a queued turn
        queued = (TurnStatus.queued,)
        assert turn_state.finish(turn_id, 2, None, "", [], TurnStatus.cancelled, 9, None, queued)
        expected = MessageStatus.cancelled
    else:  # the watchdog: no worker picked up the re-run in time
        assert turn_state.expire_queued(turn_id, 2, 0) is not None
        expected = MessageStatus.failed
    reply = _message(scoped, reply_id)
    assert reply.status == expected
    assert reply.content == "half an answer"  # what was said so far is kept


def test_cancelling_a_queued_turn_loses_to_a_worker_that_claimed_it(
    scoped: Engine, conv_ids: Ids
) -> None:
    turn_id = _start(scoped, conv_ids)
    _claim_with_reply(scoped, turn_id)
    # The API read "queued" a moment ago; the worker has claimed it since. The API's finish
    # (from queued only) must not end a running turn: it signals the worker instead.
    queued = (TurnStatus.queued,)
    assert not turn_state.finish(turn_id, 1, None, "", [], TurnStatus.cancelled, 1, None, queued)
    assert _turn(scoped, turn_id).status == TurnStatus.running


def test_timestamps_round_trip_as_aware_utc(engine: Engine, conv_ids: Ids) -> None:
    with Session(engine) as s:
        conv = _conv(s, conv_ids)
        assert conv.created_at.utcoffset() == timedelta(0)
        rows = s.exec(select(Message).order_by(col(Message.id))).all()
        assert all(m.created_at.utcoffset() == timedelta(0) for m in rows)
