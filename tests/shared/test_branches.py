"""The message tree (shared.branches, shared.conversations) on both databases: where questions
and regenerated replies attach, the path shown, siblings, switching, validation, what the
worker sends the model, and old straight-line conversations after the migration."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlmodel import Session

from shared import branches, projects
from shared import conversations as convs
from shared.config import get_settings
from shared.errors import Conflict, InvalidInput, NotFound
from shared.migrate import alembic_config, upgrade
from shared.models import Conversation, Message, TurnStatus
from shared.turns import state
from shared.turns.state import ReplyText
from tests.support.db import Ids, claim_with_reply, conv_of, message_row, new_user, turn_row
from worker.job import load_turn

BEFORE_BRANCHES = "c4a7e1f09b2d"  # the revision before the message tree


def msg(mid: int, parent: int | None, role: str = "user") -> Message:
    return Message(id=mid, conversation_id=1, parent_id=parent, role=role, content=f"m{mid}")


def ids(messages: list[Message]) -> list[int | None]:
    return [m.id for m in messages]


# ---- the tree in memory -----------------------------------------------------------------------


class TestTree:
    # 1 greeting -> 2 question -> 3 reply -> 4 question -> 5 reply
    #                          \-> 7 reply (regenerated)
    #            -> 6 question (edit of 2) -> 8 reply
    TREE: ClassVar[list[Message]] = [
        msg(1, None, "assistant"),
        msg(2, 1),
        msg(3, 2, "assistant"),
        msg(4, 3),
        msg(5, 4, "assistant"),
        msg(6, 1),
        msg(7, 2, "assistant"),
        msg(8, 6, "assistant"),
    ]

    def tree(self) -> branches.Tree:
        return branches.Tree.of(reversed(self.TREE))  # order of loading does not matter

    def test_path_is_the_ancestors_then_the_newest_children(self) -> None:
        tree = self.tree()
        assert ids(tree.path(3)) == [1, 2, 3, 4, 5]
        assert ids(tree.path(5)) == [1, 2, 3, 4, 5]
        # At a question, the newest answer (the regenerated one) continues the path.
        assert ids(tree.path(2)) == [1, 2, 7]
        assert ids(tree.path(6)) == [1, 6, 8]
        # At the root: the newest child all the way down.
        assert ids(tree.path(1)) == [1, 6, 8]

    def test_siblings_are_ascending_with_their_position(self) -> None:
        tree = self.tree()
        by_id = tree.by_id
        assert tree.sibling_ids(by_id[2]) == [2, 6] == tree.sibling_ids(by_id[6])
        assert tree.sibling_ids(by_id[7]) == [3, 7]
        assert tree.sibling_ids(by_id[1]) == [1]
        assert tree.sibling_ids(by_id[8]) == [8]

    def test_unknown_or_missing_leaf_falls_back_to_the_newest_message(self) -> None:
        tree = self.tree()
        assert tree.leaf(None) is tree.by_id[8]
        assert tree.leaf(999) is tree.by_id[8]
        assert ids(tree.path(None)) == [1, 6, 8]
        assert branches.Tree.of([]).path(None) == []

    def test_a_parent_outside_the_conversation_makes_a_root(self) -> None:
        tree = branches.Tree.of([msg(10, 3), msg(11, 10, "assistant")])
        assert ids(tree.path(11)) == [10, 11]
        assert tree.parent_of(tree.by_id[10]) is None

    def test_a_cycle_does_not_loop(self) -> None:
        tree = branches.Tree.of([msg(1, 2), msg(2, 1, "assistant")])
        assert set(ids(tree.path(1))) == {1, 2}

    def test_pending_question_cuts_the_path(self) -> None:
        path = self.tree().path(2)
        assert ids(branches.cut_at_pending(path, 2)) == [1, 2]
        assert ids(branches.cut_at_pending(path, None)) == [1, 2, 7]
        assert ids(branches.cut_at_pending(path, 6)) == [1, 2, 7]  # not on this path


# ---- on the databases -------------------------------------------------------------------------


def ask(
    engine: Engine, ids_: Ids, content: str, parent_id: int | convs.AtEnd | None = convs.AT_END
) -> tuple[int, int]:
    """A stored question and its queued turn: (turn id, question id)."""
    with Session(engine) as s:
        new = convs.start_turn(s, conv_of(s, ids_), content, parent_id=parent_id)
        assert new.created and new.turn.id is not None
        s.commit()
        return new.turn.id, new.turn.user_message_id


def regenerate(engine: Engine, ids_: Ids, reply_id: int) -> int:
    with Session(engine) as s:
        new = convs.start_regenerate(s, conv_of(s, ids_), reply_id)
        assert new.created and new.turn.id is not None
        s.commit()
        return new.turn.id


def answer(engine: Engine, turn_id: int, content: str = "an answer") -> int:
    """What a worker does: claim, create the reply, complete it. The reply's id."""
    reply_id = claim_with_reply(engine, turn_id)
    with Session(engine) as s:
        assert state.finish_running(
            s,
            turn_id=turn_id,
            attempt=1,
            after_seq=0,
            status=TurnStatus.complete,
            reply=ReplyText(reply_id, content, []),
        )
        s.commit()
    return reply_id


def shown(engine: Engine, ids_: Ids) -> list[int | None]:
    with Session(engine) as s:
        conv = conv_of(s, ids_)
        return ids(branches.load_tree(s, ids_.conversation_id).path(conv.active_leaf_id))


def greeting_id(engine: Engine, ids_: Ids) -> int:
    with Session(engine) as s:
        first = convs.messages_of(s, ids_.conversation_id)[0]
        assert first.id is not None
        return first.id


class TestQuestions:
    def test_questions_and_replies_form_a_line_and_the_question_is_the_leaf(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        g = greeting_id(engine, conv_ids)
        t1, q1 = ask(engine, conv_ids, "first")
        assert message_row(engine, q1).parent_id == g
        with Session(engine) as s:
            assert conv_of(s, conv_ids).active_leaf_id == q1
        a1 = answer(engine, t1)
        assert message_row(engine, a1).parent_id == q1
        t2, q2 = ask(engine, conv_ids, "second")
        assert message_row(engine, q2).parent_id == a1  # after the end of the path shown
        a2 = answer(engine, t2)
        assert shown(engine, conv_ids) == [g, q1, a1, q2, a2]

    def test_editing_a_question_starts_a_branch_beside_it(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        g = greeting_id(engine, conv_ids)
        t1, q1 = ask(engine, conv_ids, "first")
        a1 = answer(engine, t1)
        t2, q2 = ask(engine, conv_ids, "second")
        a2 = answer(engine, t2)
        # Edit the first question: the new one follows the greeting, as q1 did.
        t3, q3 = ask(engine, conv_ids, "first, edited", parent_id=g)
        assert message_row(engine, q3).parent_id == g
        assert shown(engine, conv_ids) == [g, q3]
        a3 = answer(engine, t3)
        assert shown(engine, conv_ids) == [g, q3, a3]
        with Session(engine) as s:
            tree = branches.load_tree(s, conv_ids.conversation_id)
            assert tree.sibling_ids(tree.by_id[q3]) == [q1, q3]
        # Edit the second question: a sibling of q2, after a1; the next question continues it.
        t4, q4 = ask(engine, conv_ids, "second, edited", parent_id=a1)
        a4 = answer(engine, t4)
        assert shown(engine, conv_ids) == [g, q1, a1, q4, a4]
        t5, q5 = ask(engine, conv_ids, "third")
        assert message_row(engine, q5).parent_id == a4
        assert answer(engine, t5) and turn_row(engine, t5).status == TurnStatus.complete
        with Session(engine) as s:
            tree = branches.load_tree(s, conv_ids.conversation_id)
            assert tree.sibling_ids(tree.by_id[q4]) == [q2, q4]
            assert tree.sibling_ids(tree.by_id[a2]) == [a2]

    def test_explicit_null_parent_starts_after_the_greeting(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        """The greeting stays the root of every branch; a conversation without one (created
        over REST) starts at the root itself."""
        t1, _ = ask(engine, conv_ids, "first")
        answer(engine, t1)
        _, q = ask(engine, conv_ids, "from the top", parent_id=None)
        greeting = message_row(engine, q).parent_id
        assert greeting is not None
        assert message_row(engine, greeting).turn_id is None  # the greeting
        assert shown(engine, conv_ids) == [greeting, q]
        with Session(engine) as s:
            bare = convs.create_conversation(s, "demo", conv_ids.user_id)
            s.commit()
            bare_ids = Ids(conv_ids.user_id, bare.id or 0)
        _, first = ask(engine, bare_ids, "no greeting here", parent_id=None)
        assert message_row(engine, first).parent_id is None
        assert shown(engine, bare_ids) == [first]

    def test_parent_must_be_a_reply_of_this_conversation(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        t1, q1 = ask(engine, conv_ids, "first")
        answer(engine, t1)
        with Session(engine) as s:
            other = convs.create_conversation(s, "demo", conv_ids.user_id)
            other_greeting = convs.add_greeting(s, other).id
            s.commit()
        for parent, error in [
            (q1, InvalidInput),  # a question cannot follow a question
            (other_greeting, NotFound),  # another conversation's message
            (2**62, NotFound),  # no such message
        ]:
            with Session(engine) as s, pytest.raises(error):
                convs.start_turn(s, conv_of(s, conv_ids), "bad", parent_id=parent)
        with Session(engine) as s:
            assert len(convs.messages_of(s, conv_ids.conversation_id)) == 3

    def test_path_end_agrees_with_the_tree(self, engine: Engine, conv_ids: Ids) -> None:
        g = greeting_id(engine, conv_ids)
        t1, _ = ask(engine, conv_ids, "first")
        answer(engine, t1)
        t2, _ = ask(engine, conv_ids, "edited", parent_id=g)
        a2 = answer(engine, t2)
        with Session(engine) as s:
            conv = conv_of(s, conv_ids)
            for leaf in (g, None, 2**62, conv.active_leaf_id):
                tree = branches.load_tree(s, conv_ids.conversation_id)
                end = branches.path_end(s, conv_ids.conversation_id, leaf)
                assert end == tree.path(leaf)[-1].id
            assert branches.path_end(s, conv_ids.conversation_id, g) == a2


class TestRegenerate:
    def test_regenerating_twice_gives_three_sibling_replies(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        g = greeting_id(engine, conv_ids)
        t1, q = ask(engine, conv_ids, "question")
        a1 = answer(engine, t1, "one")
        t2 = regenerate(engine, conv_ids, a1)
        assert turn_row(engine, t2).user_message_id == q  # the same question, not a copy
        with Session(engine) as s:
            assert conv_of(s, conv_ids).active_leaf_id == q
        a2 = answer(engine, t2, "two")
        t3 = regenerate(engine, conv_ids, a1)  # from any of the siblings
        a3 = answer(engine, t3, "three")
        assert [message_row(engine, a).parent_id for a in (a1, a2, a3)] == [q, q, q]
        assert shown(engine, conv_ids) == [g, q, a3]
        with Session(engine) as s:
            tree = branches.load_tree(s, conv_ids.conversation_id)
            assert tree.sibling_ids(tree.by_id[a2]) == [a1, a2, a3]
            assert len(convs.messages_of(s, conv_ids.conversation_id)) == 5  # one question

    def test_only_a_reply_written_by_a_turn_of_this_conversation(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        g = greeting_id(engine, conv_ids)
        t1, q = ask(engine, conv_ids, "question")
        answer(engine, t1)
        with Session(engine) as s:
            uid = new_user(s)
            theirs = convs.create_conversation(s, "demo", uid)
            s.commit()
            their_ids = Ids(uid, theirs.id or 0)
        t_other, _ = ask(engine, their_ids, "theirs")
        their_reply = answer(engine, t_other)
        for target in (g, q, their_reply, 2**62):
            with Session(engine) as s, pytest.raises(NotFound, match="Message not found"):
                convs.start_regenerate(s, conv_of(s, conv_ids), target)

    def test_one_active_turn_still_holds(self, engine: Engine, conv_ids: Ids) -> None:
        t1, _ = ask(engine, conv_ids, "question")
        a1 = answer(engine, t1)
        regenerate(engine, conv_ids, a1)
        with Session(engine) as s, pytest.raises(Conflict):
            convs.start_regenerate(s, conv_of(s, conv_ids), a1)
        with Session(engine) as s, pytest.raises(Conflict):
            convs.start_turn(s, conv_of(s, conv_ids), "meanwhile")


class TestSwitch:
    def test_switching_shows_the_branch_and_asking_continues_it(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        g = greeting_id(engine, conv_ids)
        t1, q1 = ask(engine, conv_ids, "first")
        a1 = answer(engine, t1)
        t2, q2 = ask(engine, conv_ids, "edited", parent_id=g)
        a2 = answer(engine, t2)
        with Session(engine) as s:
            convs.switch_branch(s, conv_of(s, conv_ids), q1)
            s.commit()
        assert shown(engine, conv_ids) == [g, q1, a1]
        t3, q3 = ask(engine, conv_ids, "on the first branch")
        assert message_row(engine, q3).parent_id == a1
        answer(engine, t3)
        with Session(engine) as s:
            convs.switch_branch(s, conv_of(s, conv_ids), a2)
            s.commit()
        assert shown(engine, conv_ids) == [g, q2, a2]

    def test_refused_for_another_conversation_and_while_a_reply_runs(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        t1, q1 = ask(engine, conv_ids, "first")
        with Session(engine) as s, pytest.raises(Conflict):
            convs.switch_branch(s, conv_of(s, conv_ids), q1)
        answer(engine, t1)
        with Session(engine) as s:
            other = convs.create_conversation(s, "demo", conv_ids.user_id)
            foreign = convs.add_greeting(s, other).id
            s.commit()
        assert foreign is not None
        with Session(engine) as s, pytest.raises(NotFound):
            convs.switch_branch(s, conv_of(s, conv_ids), foreign)


class TestWorkerHistory:
    def test_the_model_gets_only_the_path_to_the_question(
        self, engine: Engine, conv_ids: Ids, tmp_path: Path
    ) -> None:
        with Session(engine) as s:
            projects.add_project(s, "demo", str(tmp_path))
            s.commit()
        g = greeting_id(engine, conv_ids)
        t1, _ = ask(engine, conv_ids, "old question")
        a1 = answer(engine, t1, "old answer")
        t2, _ = ask(engine, conv_ids, "next question")
        answer(engine, t2, "next answer")
        t3, _ = ask(engine, conv_ids, "edited question", parent_id=g)
        answer(engine, t3, "edited answer")
        t4, _ = ask(engine, conv_ids, "follow-up")
        with Session(engine) as s:
            job = load_turn(get_settings(), t4, 1, "w@test", s)
            s.commit()
        assert job.messages == [
            {"role": "user", "content": "edited question"},
            {"role": "assistant", "content": "edited answer"},
            {"role": "user", "content": "follow-up"},
        ]
        with Session(engine) as s:
            state.finish_running(
                s,
                turn_id=t4,
                attempt=1,
                after_seq=0,
                status=TurnStatus.complete,
                reply=ReplyText(job.reply_id, "done", []),
            )
            s.commit()
        # Regenerating the old answer: the old question alone, not its answers nor the rest.
        t5 = regenerate(engine, conv_ids, a1)
        with Session(engine) as s:
            job = load_turn(get_settings(), t5, 1, "w@test", s)
            s.commit()
        assert job.messages == [{"role": "user", "content": "old question"}]
        assert message_row(engine, job.reply_id).parent_id == message_row(engine, a1).parent_id


# ---- old conversations ------------------------------------------------------------------------


def test_straight_line_conversations_with_turns_are_migrated_into_a_tree(
    engine: Engine,
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    command.downgrade(alembic_config(url), BEFORE_BRANCHES)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (name, is_admin, created_at) VALUES ('old', false, "
                "CURRENT_TIMESTAMP)"
            )
        )
        uid = conn.execute(text("SELECT id FROM users WHERE name = 'old'")).scalar_one()
        cids = []
        for title in ("one", "two"):
            conn.execute(
                text(
                    "INSERT INTO conversations (project_name, user_id, title, created_at, "
                    "updated_at) VALUES ('demo', :u, :t, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"u": uid, "t": title},
            )
            cids.append(
                conn.execute(
                    text("SELECT id FROM conversations WHERE title = :t"), {"t": title}
                ).scalar_one()
            )
        # Interleaved, as two conversations written at once were.
        for i, (cid, role) in enumerate(
            [
                (cids[0], "assistant"),
                (cids[1], "user"),
                (cids[0], "user"),
                (cids[1], "assistant"),
                (cids[0], "assistant"),
            ]
        ):
            conn.execute(
                text(
                    "INSERT INTO messages (conversation_id, role, content, tool_calls, status, "
                    "created_at, updated_at) VALUES (:c, :r, :x, '[]', 'complete', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"c": cid, "r": role, "x": f"message {i}"},
            )
        # Turns reference the questions: SQLite's rebuild of `messages` must not trip on them.
        question = conn.execute(
            text("SELECT min(id) FROM messages WHERE role = 'user'")
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO turns (conversation_id, user_id, user_message_id, status, attempt, "
                "last_seq, created_at) VALUES (:c, :u, :m, 'complete', 1, 1, CURRENT_TIMESTAMP)"
            ),
            {"c": cids[1], "u": uid, "m": question},
        )
    upgrade(url)
    with Session(engine) as s:
        for cid, n in zip(cids, (3, 2), strict=True):
            conv = s.get(Conversation, cid)
            assert conv is not None
            stored = convs.messages_of(s, cid)
            assert len(stored) == n
            assert [m.parent_id for m in stored] == [None] + [m.id for m in stored[:-1]]
            assert conv.active_leaf_id == stored[-1].id
            assert branches.load_tree(s, cid).path(conv.active_leaf_id) == stored
