"""Persistence on both databases: migrations, conversations, messages and turns.

Each test runs on a fresh SQLite file and on a fresh PostgreSQL database (see conftest.py).
The turn state machine has its own module, test_turn_state.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from shared import conversations as convs
from shared.errors import Conflict, NotFound
from shared.migrate import upgrade
from shared.models import Conversation, Message, MessageStatus, Turn, TurnStatus
from shared.protocol import greeting
from tests.support.db import (
    Ids,
    claim_with_reply,
    conv_of,
    count,
    message_row,
    new_user,
    race,
    set_status,
    start,
    turn_row,
)

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
    assert count(engine, Message, conv_ids.conversation_id) == 1


# ---- conversations --------------------------------------------------------------------------


def test_create_conversation_with_greeting(engine: Engine, conv_ids: Ids) -> None:
    with Session(engine) as s:
        conv = conv_of(s, conv_ids)
        assert conv.title is None
        assert conv.project_name == "demo"
        msgs = convs.messages_of(s, conv_ids.conversation_id)
    assert [(m.role, m.content, m.status) for m in msgs] == [
        ("assistant", greeting("demo"), MessageStatus.complete)
    ]
    assert msgs[0].turn_id is None
    assert convs.is_greeting(msgs[0])


def test_start_turn_stores_user_message_queued_turn_and_title(
    engine: Engine, conv_ids: Ids
) -> None:
    content = "How does the\nparser handle nested brackets inside string literals, exactly?"
    with Session(engine) as s:
        conv = conv_of(s, conv_ids)
        before = conv.updated_at
        new = convs.start_turn(s, conv, content, "c-1")
        s.commit()
        assert new.created
        turn_id = new.turn.id
    assert turn_id is not None
    turn = turn_row(engine, turn_id)
    assert turn.status == TurnStatus.queued
    assert turn.attempt == 1
    assert turn.client_message_id == "c-1"
    assert turn.user_id == conv_ids.user_id
    user_msg = message_row(engine, turn.user_message_id)
    assert (user_msg.role, user_msg.content) == ("user", content)
    assert user_msg.conversation_id == conv_ids.conversation_id
    with Session(engine) as s:
        conv = conv_of(s, conv_ids)
        # As the original: the first 50 characters, then "...".
        assert conv.title == content.replace("\n", " ")[:50] + "..."
        assert len(conv.title) == 53
        assert conv.updated_at >= before
        assert convs.active_turn(s, conv_ids.conversation_id) is not None


@pytest.mark.parametrize(
    ("first", "title"),
    [
        ("x" * 50, "x" * 50),
        ("y" * 51, "y" * 50 + "..."),
        ("  two\nlines  ", "two lines"),
    ],
)
def test_title_is_the_first_50_characters_then_an_ellipsis(first: str, title: str) -> None:
    assert convs.title_for(first) == title


def test_title_is_set_by_the_first_message_only(engine: Engine, conv_ids: Ids) -> None:
    first = start(engine, conv_ids, "first question")
    set_status(engine, first, TurnStatus.complete)
    start(engine, conv_ids, "second question")
    with Session(engine) as s:
        assert conv_of(s, conv_ids).title == "first question"


def test_second_turn_while_one_is_active_conflicts_and_stores_nothing(
    engine: Engine, conv_ids: Ids
) -> None:
    start(engine, conv_ids, "first")
    with Session(engine) as s:
        with pytest.raises(Conflict):
            convs.start_turn(s, conv_of(s, conv_ids), "second")
        s.commit()  # whatever start_turn left in the session would be stored now
    assert count(engine, Turn, conv_ids.conversation_id) == 1
    with Session(engine) as s:
        contents = [m.content for m in convs.messages_of(s, conv_ids.conversation_id)]
    assert contents == [greeting("demo"), "first"]


def test_a_running_turn_also_blocks_a_new_one(engine: Engine, conv_ids: Ids) -> None:
    turn_id = start(engine, conv_ids)
    claim_with_reply(engine, turn_id)
    with Session(engine) as s, pytest.raises(Conflict):
        convs.start_turn(s, conv_of(s, conv_ids), "again")


def test_a_finished_turn_does_not_block_the_next(engine: Engine, conv_ids: Ids) -> None:
    turn_id = start(engine, conv_ids)
    set_status(engine, turn_id, TurnStatus.complete)
    second = start(engine, conv_ids, "next")
    assert second != turn_id
    assert count(engine, Turn, conv_ids.conversation_id) == 2


def test_one_active_turn_is_enforced_by_the_database(engine: Engine, conv_ids: Ids) -> None:
    turn_id = start(engine, conv_ids)
    first = turn_row(engine, turn_id)
    # A finished turn may sit next to the active one: the unique index is partial.
    with Session(engine) as s:
        s.add(
            Turn(
                conversation_id=conv_ids.conversation_id,
                user_id=conv_ids.user_id,
                user_message_id=first.user_message_id,
                status=TurnStatus.complete,
            )
        )
        s.commit()
    for status in (TurnStatus.queued, TurnStatus.running):
        with Session(engine) as s:
            s.add(
                Turn(
                    conversation_id=conv_ids.conversation_id,
                    user_id=conv_ids.user_id,
                    user_message_id=first.user_message_id,
                    status=status,
                )
            )
            with pytest.raises(IntegrityError):
                s.commit()
    assert count(engine, Turn, conv_ids.conversation_id) == 2


def test_start_turn_that_loses_the_race_to_the_index_is_a_conflict(
    engine: Engine, conv_ids: Ids, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another API process inserted the active turn after our check: Conflict, not a 500."""
    start(engine, conv_ids, "first")
    monkeypatch.setattr(convs, "active_turn", lambda _s, _cid: None)
    with Session(engine) as s:
        with pytest.raises(Conflict):
            convs.start_turn(s, conv_of(s, conv_ids), "racing")
        s.rollback()
    assert count(engine, Turn, conv_ids.conversation_id) == 1
    assert count(engine, Message, conv_ids.conversation_id) == 2  # greeting + "first"


def test_same_client_message_id_returns_the_existing_turn(engine: Engine, conv_ids: Ids) -> None:
    turn_id = start(engine, conv_ids, "hello", cmid="client-42")
    for _ in range(2):
        with Session(engine) as s:
            again = convs.start_turn(s, conv_of(s, conv_ids), "hello", "client-42")
            assert not again.created
            assert again.turn.id == turn_id
            s.commit()
    assert count(engine, Turn, conv_ids.conversation_id) == 1
    assert count(engine, Message, conv_ids.conversation_id) == 2
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
            new = convs.start_turn(s, conv_of(s, conv_ids), "hello", "client-race")
            s.commit()
            assert new.turn.id is not None
            return new.turn.id, new.created

    results = race(4, send)
    # Whoever lost the race gets the winner's turn, not a "still being generated" error.
    assert len({turn_id for turn_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert count(engine, Turn, conv_ids.conversation_id) == 1
    assert count(engine, Message, conv_ids.conversation_id) == 2


def test_list_conversations_counts_and_orders_by_update(engine: Engine) -> None:
    base = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    with Session(engine) as s:
        alice, bob = new_user(s, "alice"), new_user(s, "bob")
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
        (ids[1], 0),
        (ids[2], 1),
        (ids[0], 2),
    ]
    assert all(c.conversation.user_id == alice for c in listed)


def test_get_conversation_of_someone_else_is_not_found(engine: Engine, conv_ids: Ids) -> None:
    with Session(engine) as s:
        bob = new_user(s, "bob")
        s.commit()
        assert conv_of(s, conv_ids).id == conv_ids.conversation_id
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
    turn_id = start(engine, conv_ids)
    reply_id = claim_with_reply(engine, turn_id)
    with Session(engine) as s:
        keep = convs.create_conversation(s, "demo", conv_ids.user_id)
        convs.add_greeting(s, keep)
        keep_id = keep.id
        s.commit()
    assert keep_id is not None
    assert count(engine, Message, conv_ids.conversation_id) == 3

    with Session(engine) as s:
        convs.delete_conversation(s, conv_of(s, conv_ids))
        s.commit()

    with Session(engine) as s:
        assert s.get(Conversation, conv_ids.conversation_id) is None
        assert s.get(Turn, turn_id) is None
        assert s.get(Message, reply_id) is None
    assert count(engine, Message, conv_ids.conversation_id) == 0
    assert count(engine, Turn, conv_ids.conversation_id) == 0
    assert count(engine, Message, keep_id) == 1


def test_timestamps_round_trip_as_aware_utc(engine: Engine, conv_ids: Ids) -> None:
    with Session(engine) as s:
        conv = conv_of(s, conv_ids)
        assert conv.created_at.utcoffset() == timedelta(0)
        rows = s.exec(select(Message).order_by(col(Message.id))).all()
        assert all(m.created_at.utcoffset() == timedelta(0) for m in rows)
