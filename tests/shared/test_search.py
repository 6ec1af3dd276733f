"""Full-text search (shared.search) on both databases: through the migration's FTS5 tables and
GIN indexes, ranked, with snippet segments, and only ever the caller's finished messages."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, insert, text
from sqlmodel import Session

from shared import conversations as convs
from shared.models import Conversation, Message, MessageStatus, TitleSource, TurnStatus
from shared.search import (
    ELLIPSIS,
    SearchHit,
    Segment,
    fts5_query,
    search,
    segments,
    sql_for,
    terms_of,
)
from tests.support.db import Ids, new_user


def exchange(
    engine: Engine,
    conversation_id: int,
    question: str,
    answer: str,
    *,
    status: MessageStatus = MessageStatus.complete,
) -> tuple[int, int]:
    """A question and its reply stored as a turn leaves them; (question id, reply id)."""
    with Session(engine) as s:
        conv = s.get(Conversation, conversation_id)
        assert conv is not None
        turn = convs.start_turn(s, conv, question).turn
        streaming = status == MessageStatus.streaming
        turn.status = TurnStatus.running if streaming else TurnStatus.complete
        reply = Message(
            conversation_id=conversation_id,
            parent_id=turn.user_message_id,
            role="assistant",
            content=answer,
            status=status,
            turn_id=turn.id,
        )
        s.add_all([turn, reply])
        s.commit()
        assert reply.id is not None
        return turn.user_message_id, reply.id


def new_conversation(engine: Engine, user_id: int, project: str = "demo") -> int:
    with Session(engine) as s:
        conv = convs.create_conversation(s, project, user_id)
        convs.add_greeting(s, conv)
        s.commit()
        assert conv.id is not None
        return conv.id


def find(engine: Engine, user_id: int, query: str, **kw: Any) -> list[SearchHit]:
    with Session(engine) as s:
        return search(s, user_id=user_id, query=query, **kw)


def joined(hit: SearchHit) -> str:
    return "".join(seg.text for seg in hit.snippet)


class TestQueryText:
    def test_words_are_letters_and_digits_lowercased_once_each(self) -> None:
        assert terms_of('Find "kumquat*" NEAR(tree, 3) -x_y kumquat') == [
            "find",
            "kumquat",
            "near",
            "tree",
            "3",
            "x",
            "y",
        ]
        assert terms_of("\" * ( - ( ) : ^ \x00 \\ '") == []

    def test_every_fts5_term_is_a_quoted_string(self) -> None:
        assert fts5_query(["near", "kumquat"]) == '"near" "kumquat"'
        assert fts5_query(['a"b']) == '"a""b"'

    def test_marked_text_splits_into_segments(self) -> None:
        assert segments("a \x02kumquat\x03 grows \x02here\x03") == [
            Segment("a ", False),
            Segment("kumquat", True),
            Segment(" grows ", False),
            Segment("here", True),
        ]
        # Stray or doubled markers never leak into the text.
        assert segments("\x03x\x02\x02y") == [Segment("x", False), Segment("y", True)]
        assert segments("") == []


class TestSearch:
    def test_answer_words_are_found_ranked_with_snippets(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        cid = conv_ids.conversation_id
        _, weak = exchange(
            engine,
            cid,
            "What grows in the courtyard?",
            "Mostly grass and herbs, some roses along the wall, and one kumquat "
            "near the gate, which was planted by the previous owners many years ago.",
        )
        _, strong = exchange(engine, cid, "Which fruit?", "Kumquat. A kumquat tree: kumquat fruit.")
        exchange(engine, cid, "Anything else?", "Nothing relevant here.")

        hits = find(engine, conv_ids.user_id, "KUMQUAT")
        assert [h.message_id for h in hits] == [strong, weak]
        assert hits[0].rank > hits[1].rank > 0
        assert {h.role for h in hits} == {"assistant"}
        assert {h.conversation_id for h in hits} == {cid}
        assert {h.project_name for h in hits} == {"demo"}
        assert hits[0].conversation_title == "What grows in the courtyard?"
        # The weak hit's snippet is a window around the word, the word marked.
        marked = [s.text for s in hits[1].snippet if s.match]
        assert [m.lower() for m in marked] == ["kumquat"]
        assert "one" in joined(hits[1]) and "gate" in joined(hits[1])
        assert not any("\x02" in s.text or "\x03" in s.text for h in hits for s in h.snippet)

    def test_every_word_must_match(self, engine: Engine, conv_ids: Ids) -> None:
        cid = conv_ids.conversation_id
        _, both = exchange(engine, cid, "q1", "the red kumquat")
        exchange(engine, cid, "q2", "the green kumquat")
        hits = find(engine, conv_ids.user_id, "kumquat red")
        assert [h.message_id for h in hits] == [both]
        assert sorted(s.text.lower() for s in hits[0].snippet if s.match) == ["kumquat", "red"]

    def test_file_names_and_their_parts_are_found_alike_on_both_databases(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        """PostgreSQL's parser keeps `src/app.py` as one token; searching `app`, `app.py` or
        `foo_bar` must find it as on SQLite, and the snippet shows the text as written."""
        cid = conv_ids.conversation_id
        written = "See src/app.py:12-30 and foo_bar.txt, then config.yaml."
        _, reply = exchange(engine, cid, "Where?", written)
        for query in ("app", "app.py", "src/app.py", "foo_bar", "bar", "config.yaml", "yaml"):
            hits = find(engine, conv_ids.user_id, query)
            assert [h.message_id for h in hits] == [reply], query
            # The snippet is the text as written (a window of it), nothing inserted.
            for part in joined(hits[0]).split(ELLIPSIS):
                assert part.strip() in written, (query, part)

    def test_questions_are_found_too(self, engine: Engine, conv_ids: Ids) -> None:
        question, _ = exchange(
            engine, conv_ids.conversation_id, "Explain the zeppelin module", "Sure."
        )
        hits = [h for h in find(engine, conv_ids.user_id, "zeppelin") if h.message_id]
        assert [(h.message_id, h.role) for h in hits] == [(question, "user")]

    @pytest.mark.parametrize(
        "query",
        [
            '"',
            "*",
            "-",
            "(",
            ")",
            ":",
            "^",
            "+",
            "'",
            "\\",
            "\x00",
            '"""',
            "content:",
            "a:*",
            "!!&|",
            "   ",
            "",
        ],
    )
    def test_hostile_queries_are_only_text(self, engine: Engine, conv_ids: Ids, query: str) -> None:
        exchange(engine, conv_ids.conversation_id, "q", "the station is near the kumquat tree")
        # Nothing to search: no results, and no error from either engine's query parser.
        assert find(engine, conv_ids.user_id, query) == []

    @pytest.mark.parametrize(
        "query",
        [
            '"kumquat',
            "kumquat*",
            "-kumquat",
            "kumquat:*",
            "(kumquat)",
            "^kumquat",
            "{kumquat}",
            'kumquat"',
            "'kumquat' & !",
        ],
    )
    def test_a_word_wrapped_in_operators_is_still_found(
        self, engine: Engine, conv_ids: Ids, query: str
    ) -> None:
        _, reply = exchange(engine, conv_ids.conversation_id, "q", "a kumquat tree")
        assert [h.message_id for h in find(engine, conv_ids.user_id, query)] == [reply]

    def test_an_operator_word_is_matched_as_a_word(self, engine: Engine, conv_ids: Ids) -> None:
        _, near = exchange(engine, conv_ids.conversation_id, "q1", "the station is near")
        _, both = exchange(engine, conv_ids.conversation_id, "q2", "bread and butter")
        assert [h.message_id for h in find(engine, conv_ids.user_id, "NEAR(")] == [near]
        assert [h.message_id for h in find(engine, conv_ids.user_id, "AND")] == [both]
        assert find(engine, conv_ids.user_id, "OR NOT") == []

    def test_streaming_replies_are_never_results_until_finished(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        _, reply = exchange(
            engine,
            conv_ids.conversation_id,
            "q",
            "a partial kumquat",
            status=MessageStatus.streaming,
        )
        assert find(engine, conv_ids.user_id, "kumquat") == []
        with Session(engine) as s:
            msg = s.get(Message, reply)
            assert msg is not None
            msg.content += " and its orchard"
            msg.status = MessageStatus.complete
            s.add(msg)
            s.commit()
        hits = find(engine, conv_ids.user_id, "kumquat orchard")
        assert [h.message_id for h in hits] == [reply]
        # Rewritten as streaming again (a restarted turn): out of the results once more.
        with Session(engine) as s:
            msg = s.get(Message, reply)
            assert msg is not None
            msg.content, msg.status = "", MessageStatus.streaming
            s.add(msg)
            s.commit()
        assert find(engine, conv_ids.user_id, "kumquat") == []

    def test_a_finished_message_written_again_stays_found_once(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        """The ending rewrites a finished reply's status and text (references, stop reason);
        on SQLite the index must drop the old entry before adding the new one."""
        _, reply = exchange(engine, conv_ids.conversation_id, "q", "alpha kumquat")
        for content in ("alpha kumquat", "beta kumquat", "beta kumquat"):
            with Session(engine) as s:
                msg = s.get(Message, reply)
                assert msg is not None
                msg.content, msg.status = content, MessageStatus.complete
                s.add(msg)
                s.flush()
                # Both columns in the UPDATE even when unchanged, as the turn's ending writes.
                s.connection().execute(
                    text("UPDATE messages SET content = content, status = status WHERE id = :id"),
                    {"id": reply},
                )
                s.commit()
            assert [h.message_id for h in find(engine, conv_ids.user_id, "kumquat")] == [reply]
        assert find(engine, conv_ids.user_id, "alpha") == []
        assert [h.message_id for h in find(engine, conv_ids.user_id, "beta")] == [reply]

    def test_the_greeting_is_never_a_result(self, engine: Engine, conv_ids: Ids) -> None:
        with Session(engine) as s:
            greeting = s.connection().execute(text("SELECT content FROM messages")).scalar_one()
        assert "assistant" in greeting
        assert find(engine, conv_ids.user_id, "assistant") == []
        exchange(engine, conv_ids.conversation_id, "q", "Your assistant here.")
        assert [h.role for h in find(engine, conv_ids.user_id, "assistant")] == ["assistant"]

    def test_only_the_callers_conversations_and_the_asked_project(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        with Session(engine) as s:
            bob = new_user(s, "bob")
            s.commit()
        bobs = new_conversation(engine, bob)
        exchange(engine, bobs, "bob asks", "bob's kumquat")
        _, mine = exchange(engine, conv_ids.conversation_id, "q", "alice's kumquat")
        elsewhere = new_conversation(engine, conv_ids.user_id, project="other")
        _, other = exchange(engine, elsewhere, "q", "another kumquat")

        assert {h.message_id for h in find(engine, conv_ids.user_id, "kumquat")} == {mine, other}
        in_demo = find(engine, conv_ids.user_id, "kumquat", project_name="demo")
        assert [h.message_id for h in in_demo] == [mine]
        assert find(engine, conv_ids.user_id, "kumquat", project_name="nowhere") == []
        # Bob finds his own reply only, never Alice's.
        assert {h.conversation_id for h in find(engine, bob, "kumquat")} == {bobs}

    def test_a_renamed_title_is_found(self, engine: Engine, conv_ids: Ids) -> None:
        exchange(engine, conv_ids.conversation_id, "first question", "an answer")
        assert find(engine, conv_ids.user_id, "Quarterly") == []
        with Session(engine) as s:
            conv = s.get(Conversation, conv_ids.conversation_id)
            assert conv is not None
            conv.title, conv.title_source = "Quarterly planning notes", TitleSource.user
            s.add(conv)
            s.commit()
        (hit,) = find(engine, conv_ids.user_id, "quarterly")
        assert hit.message_id is None and hit.role is None
        assert hit.conversation_id == conv_ids.conversation_id
        assert hit.conversation_title == "Quarterly planning notes"
        assert hit.snippet == [Segment("Quarterly", True), Segment(" planning notes", False)]
        assert hit.rank > 0
        # The old title is gone from the index (the question itself still matches).
        assert all(h.message_id is not None for h in find(engine, conv_ids.user_id, "first"))

    def test_limit_keeps_the_best(self, engine: Engine, conv_ids: Ids) -> None:
        ids = [
            exchange(engine, conv_ids.conversation_id, f"q{i}", "kumquat " * (i + 1) + "x " * 9)[1]
            for i in range(4)
        ]
        hits = find(engine, conv_ids.user_id, "kumquat", limit=2)
        assert [h.message_id for h in hits] == [ids[3], ids[2]]


class TestIndexesAreUsed:
    @pytest.mark.parametrize("titles", [False, True], ids=["messages", "titles"])
    def test_a_rare_word_is_looked_up_in_the_full_text_index(
        self, engine: Engine, conv_ids: Ids, titles: bool
    ) -> None:
        """A user with many conversations and messages: the planner goes through the GIN
        index (PostgreSQL) or the FTS5 table (SQLite), not through the user's rows."""
        with Session(engine) as s:
            s.connection().execute(
                insert(Conversation),
                [
                    {"project_name": "demo", "user_id": conv_ids.user_id, "title": f"talk {i}"}
                    for i in range(300)
                ],
            )
            s.connection().execute(
                insert(Message),
                [
                    {
                        "conversation_id": conv_ids.conversation_id,
                        "role": "user",
                        "content": f"filler message number {i} about nothing much",
                    }
                    for i in range(3000)
                ],
            )
            s.commit()
        sqlite = engine.dialect.name == "sqlite"
        sql = sql_for(sqlite=sqlite, titles=titles, one_project=True)
        params = {"uid": conv_ids.user_id, "project": "demo", "limit": 20}
        with engine.connect() as conn:
            if sqlite:
                rows = conn.execute(text("EXPLAIN QUERY PLAN " + sql), {**params, "q": '"x"'})
                plan = " | ".join(str(r[-1]) for r in rows)
                table = "conversations_fts" if titles else "messages_fts"
                assert f"SCAN {table} VIRTUAL TABLE" in plan, plan
            else:
                conn.exec_driver_sql("ANALYZE")
                rows = conn.execute(text("EXPLAIN " + sql), {**params, "q": "kumquat"})
                plan = " | ".join(str(r[0]) for r in rows)
                index = "ix_conversations_title_tsv" if titles else "ix_messages_content_tsv"
                assert f"Bitmap Index Scan on {index}" in plan, plan
