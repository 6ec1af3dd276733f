"""Branches through the real stack: edit a question, regenerate a reply, switch branches, and
what the model is sent (the stand-in's recorded requests), over the WebSocket and REST."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import text

import shared.db
from shared import auth, projects
from shared import conversations as convs
from shared.db import session_scope
from shared.devtools.demo_model import DemoModelServer
from shared.migrate import alembic_config, upgrade
from shared.models import Turn, User
from shared.protocol import greeting
from tests.support.client import TERMINAL, WsClient, text_of
from tests.support.data import Account, make_account, make_project
from tests.support.model_log import answered, texts
from tests.support.processes import Stack, StackFactory

CONVERSATIONS = "/api/assistant/conversations"
BEFORE_BRANCHES = "c4a7e1f09b2d"  # the revision before the message tree


@dataclass(frozen=True)
class Chat:
    """One user's conversation in a fresh project, over the shared stack."""

    stack: Stack
    acct: Account
    project: str
    model: DemoModelServer

    @property
    def ws_url(self) -> str:
        return f"{self.stack.api.ws_url}/api/assistant/ws/{self.project}"

    def ws(self) -> WsClient:
        return WsClient(self.ws_url, self.acct.token)

    def url(self, conv_id: int, tail: str = "") -> str:
        return f"{self.stack.api.base_url}{CONVERSATIONS}/{self.project}/{conv_id}{tail}"

    def detail(self, conv_id: int) -> dict[str, Any]:
        resp = httpx.get(self.url(conv_id), headers=self.acct.headers, timeout=10)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def switch(self, conv_id: int, message_id: Any) -> httpx.Response:
        return httpx.put(
            self.url(conv_id, "/active_leaf"),
            json={"message_id": message_id},
            headers=self.acct.headers,
            timeout=10,
        )

    def sent(self) -> list[tuple[str, str]]:
        """(role, text) of each message of the model's last answered request."""
        body = answered(self.model.url, self.project)[-1]["body"]
        return [(m["role"], "".join(texts(m))) for m in body["messages"]]


@pytest.fixture
def chat(stack: Stack, project_dir: Path, model: DemoModelServer) -> Chat:
    return Chat(stack, make_account(), make_project(project_dir), model)


def accepted_and_done(ws: WsClient, **msg: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Send a turn-starting message; its `message_accepted` and its frames to the end."""
    ws.send(**msg)
    frames = ws.until_terminal()
    (accepted,) = [f for f in frames if f["type"] == "message_accepted"]
    assert frames[-1]["type"] == "response_done", frames[-1]
    return accepted, frames


def roles_and_ids(detail: dict[str, Any]) -> list[tuple[str, int]]:
    return [(m["role"], m["id"]) for m in detail["messages"]]


def path_contents(detail: dict[str, Any]) -> list[str]:
    return [m["content"] for m in detail["messages"]]


# ---- edit ---------------------------------------------------------------------------------


def test_editing_a_question_answers_a_new_branch_with_only_its_path(chat: Chat) -> None:
    with chat.ws() as ws:
        conv_id = ws.start()
        ws.ask("First question [[say:alpha]]")
        ws.ask("Second question [[say:beta]]")
        g, q1, a1, q2, a2 = (m["id"] for m in chat.detail(conv_id)["messages"])

        # Edit the second question: a sibling of it, after the first answer.
        accepted, frames = accepted_and_done(
            ws, type="message", content="Second, edited [[say:gamma]]", parent_id=a1
        )
        assert accepted["parent_id"] == a1
        q2b = accepted["user_message_id"]
        assert text_of(frames) == "gamma"
        assert chat.sent() == [
            ("user", "First question [[say:alpha]]"),
            ("assistant", "alpha"),
            ("user", "Second, edited [[say:gamma]]"),
        ]

    detail = chat.detail(conv_id)
    assert detail["active_leaf_id"] == q2b
    messages = detail["messages"]
    assert [m["id"] for m in messages[:3]] == [g, q1, a1]
    assert path_contents(detail)[3:] == ["Second, edited [[say:gamma]]", "gamma"]
    edited, reply = messages[3], messages[4]
    assert edited["parent_id"] == a1 and reply["parent_id"] == q2b
    assert (edited["sibling_ids"], edited["sibling_index"]) == ([q2, q2b], 1)
    assert (reply["sibling_ids"], reply["sibling_index"]) == ([reply["id"]], 0)
    assert (messages[1]["sibling_ids"], messages[1]["sibling_index"]) == ([q1], 0)
    assert messages[0]["parent_id"] is None
    # The old branch is still stored, only not shown.
    assert a2 not in [m["id"] for m in messages]

    # Edit the first question: after the greeting; the model gets that question alone.
    with chat.ws() as ws:
        ws.start(conv_id)
        accepted, _ = accepted_and_done(
            ws, type="message", content="First, edited [[say:delta]]", parent_id=g
        )
    assert accepted["parent_id"] == g
    assert chat.sent() == [("user", "First, edited [[say:delta]]")]
    detail = chat.detail(conv_id)
    assert path_contents(detail) == [greeting(chat.project), "First, edited [[say:delta]]", "delta"]
    assert detail["messages"][1]["sibling_ids"] == [q1, accepted["user_message_id"]]


def test_a_question_may_only_follow_a_reply_of_this_conversation(chat: Chat) -> None:
    other = make_account()
    with WsClient(chat.ws_url, other.token) as theirs:
        their_conv = theirs.start()
        theirs.ask("Their question [[text:1]]")
    their_reply = httpx.get(chat.url(their_conv), headers=other.headers, timeout=10).json()[
        "messages"
    ][-1]["id"]
    with chat.ws() as ws:
        conv_id = ws.start()
        ws.ask("Mine [[text:1]]")
        question = chat.detail(conv_id)["messages"][1]["id"]
        for parent, error in [
            (their_reply, "Message not found"),
            (2**62, "Message not found"),
            (question, "parent_id must be an assistant message"),
        ]:
            ws.send(type="message", content="Misplaced [[text:1]]", parent_id=parent)
            got = ws.recv()
            assert got["type"] == "error" and error in got["content"], got
        # Nothing was stored; the connection still works.
        assert len(chat.detail(conv_id)["messages"]) == 3
        assert ws.ask("Still fine [[text:1]]")[-1]["type"] == "response_done"


# ---- switch -------------------------------------------------------------------------------


def test_switching_branches_back_and_forth_and_resuming_on_either(chat: Chat) -> None:
    with chat.ws() as ws:
        conv_id = ws.start()
        ws.ask("Original question [[say:one]]")
        g, q1, a1 = (m["id"] for m in chat.detail(conv_id)["messages"])
        accepted, _ = accepted_and_done(
            ws, type="message", content="Edited question [[say:two]]", parent_id=g
        )
    q1b = accepted["user_message_id"]
    a1b = chat.detail(conv_id)["messages"][-1]["id"]

    for leaf, shown in [(q1, [g, q1, a1]), (a1b, [g, q1b, a1b]), (a1, [g, q1, a1])]:
        resp = chat.switch(conv_id, leaf)
        assert resp.status_code == 200, resp.text
        assert [m["id"] for m in resp.json()["messages"]] == shown
        assert resp.json()["active_leaf_id"] == leaf
        assert [m["id"] for m in chat.detail(conv_id)["messages"]] == shown

    # Resumed on the original branch: the next question continues it, and only it is sent.
    with chat.ws() as ws:
        ws.start(conv_id)
        accepted, _ = accepted_and_done(ws, type="message", content="Go on [[say:three]]")
    assert accepted["parent_id"] == a1
    assert chat.sent() == [
        ("user", "Original question [[say:one]]"),
        ("assistant", "one"),
        ("user", "Go on [[say:three]]"),
    ]
    assert path_contents(chat.detail(conv_id))[1:] == [
        "Original question [[say:one]]",
        "one",
        "Go on [[say:three]]",
        "three",
    ]

    # Switched to the edited branch (at its question) and resumed there.
    assert chat.switch(conv_id, q1b).status_code == 200
    with chat.ws() as ws:
        ws.send(type="resume", conversation_id=conv_id)
        assert ws.recv() == {"type": "response_done", "status": "complete"}
        accepted, _ = accepted_and_done(ws, type="message", content="And here? [[say:four]]")
    assert accepted["parent_id"] == a1b
    assert chat.sent() == [
        ("user", "Edited question [[say:two]]"),
        ("assistant", "two"),
        ("user", "And here? [[say:four]]"),
    ]
    assert path_contents(chat.detail(conv_id))[1:] == [
        "Edited question [[say:two]]",
        "two",
        "And here? [[say:four]]",
        "four",
    ]


def test_switching_is_refused_while_a_reply_runs_and_for_others_messages(chat: Chat) -> None:
    with chat.ws() as ws:
        conv_id = ws.start()
        ws.ask("Short [[text:1]]")
        greeting_id = chat.detail(conv_id)["messages"][0]["id"]
        other_conv = ws.start()  # another conversation of the same user
        ws.send(type="message", content="Slow [[text:200]] [[slow:30]]")
        ws.recv_until(lambda m: m["type"] == "text")
        other_greeting = chat.detail(other_conv)["messages"][0]["id"]
        busy = chat.switch(other_conv, other_greeting)
        assert busy.status_code == 409 and "being generated" in busy.json()["detail"]
        ws.send(type="cancel")
        ws.until_terminal()
    assert chat.switch(other_conv, other_greeting).status_code == 200

    for message_id in (other_greeting, 2**62):
        resp = chat.switch(conv_id, message_id)
        assert resp.status_code == 404 and resp.json() == {"detail": "Message not found"}
    for bad in (0, -1, "x", 2**63, None):
        assert chat.switch(conv_id, bad).status_code == 422
    # Another user cannot switch (nor see) this conversation.
    stranger = make_account()
    resp = httpx.put(
        chat.url(conv_id, "/active_leaf"),
        json={"message_id": greeting_id},
        headers=stranger.headers,
        timeout=10,
    )
    assert resp.status_code == 404 and resp.json() == {"detail": "Conversation not found"}
    assert chat.detail(conv_id)["active_leaf_id"] != greeting_id


# ---- regenerate ---------------------------------------------------------------------------


def test_regenerating_twice_gives_three_sibling_replies(chat: Chat) -> None:
    with chat.ws() as ws:
        conv_id = ws.start()
        ws.ask("Earlier [[say:earlier]]")
        ws.ask("Answer me [[text:3]]")
        _, _, _, question, first = (m["id"] for m in chat.detail(conv_id)["messages"])
        replies = [first]
        for target in (first, first):  # regenerating from any sibling
            accepted, frames = accepted_and_done(ws, type="regenerate", message_id=target)
            assert accepted["user_message_id"] == question
            assert text_of(frames) == "word1 word2 word3"
            # The path to the question, never another answer to it.
            assert chat.sent() == [
                ("user", "Earlier [[say:earlier]]"),
                ("assistant", "earlier"),
                ("user", "Answer me [[text:3]]"),
            ]
            replies.append(chat.detail(conv_id)["messages"][-1]["id"])

    detail = chat.detail(conv_id)
    assert len(detail["messages"]) == 5  # the question was not repeated
    shown = detail["messages"][-1]
    assert shown["id"] == replies[-1] and shown["parent_id"] == question
    assert (shown["sibling_ids"], shown["sibling_index"]) == (replies, 2)
    assert detail["active_leaf_id"] == question
    # Each of the three can be shown.
    for i, reply in enumerate(replies):
        switched = chat.switch(conv_id, reply).json()["messages"][-1]
        assert (switched["id"], switched["sibling_index"]) == (reply, i)


def test_a_waiting_regenerate_shows_its_question_without_the_older_reply(chat: Chat) -> None:
    with chat.ws() as ws:
        conv_id = ws.start()
        ws.ask("Answer me [[text:2]]")
    g, question, reply = (m["id"] for m in chat.detail(conv_id)["messages"])
    with session_scope() as session:  # stored as the command stores it, never handed over
        conv = convs.get_conversation(session, conv_id, chat.project, chat.acct.user_id)
        turn_id = convs.start_regenerate(session, conv, reply).turn.id
    detail = chat.detail(conv_id)
    assert detail["active_turn_id"] == turn_id
    # Until its reply exists, the older answer is not shown as if it were the new one.
    assert [m["id"] for m in detail["messages"]] == [g, question]
    cancel = httpx.post(chat.url(conv_id, "/cancel"), headers=chat.acct.headers, timeout=10)
    assert cancel.status_code == 200, cancel.text
    assert [m["id"] for m in chat.detail(conv_id)["messages"]] == [g, question, reply]


def test_regenerate_is_refused_for_anything_but_a_reply_of_this_conversation(
    chat: Chat,
) -> None:
    other = make_account()
    with WsClient(chat.ws_url, other.token) as theirs:
        their_conv = theirs.start()
        theirs.ask("Their question [[text:1]]")
    their_reply = httpx.get(chat.url(their_conv), headers=other.headers, timeout=10).json()[
        "messages"
    ][-1]["id"]
    with chat.ws() as ws:
        conv_id = ws.start()
        ws.ask("Mine [[text:1]]")
        greeting_id, question, _ = (m["id"] for m in chat.detail(conv_id)["messages"])
        for target in (greeting_id, question, their_reply, 2**62):
            ws.send(type="regenerate", message_id=target)
            assert ws.recv() == {"type": "error", "content": "Message not found"}
        ws.send(type="regenerate", message_id="7")
        got = ws.recv()
        assert got["type"] == "error" and "message_id" in got["content"]
        assert len(chat.detail(conv_id)["messages"]) == 3


def test_cancel_and_resume_a_regenerated_reply(chat: Chat) -> None:
    question = "Long answer [[text:300]] [[slow:30]]"
    with chat.ws() as ws:
        conv_id = ws.start()
        ws.send(type="message", content=question)
        ws.recv_until(lambda m: m["type"] == "text")
        ws.send(type="cancel")
        assert ws.until_terminal()[-1]["status"] == "cancelled"
        first = chat.detail(conv_id)["messages"][-1]
        assert first["status"] == "cancelled"

        ws.send(type="regenerate", message_id=first["id"])
        before = ws.recv_until(lambda m: m["type"] == "text" and m["seq"] >= 2)
    accepted = before[0]
    assert accepted["type"] == "message_accepted"
    turn_id = accepted["turn_id"]
    seen = max(f["seq"] for f in before if "seq" in f)

    # Another connection (no `start`: the remembered conversation) resumes and stops it.
    with chat.ws() as ws:
        ws.send(type="resume", turn_id=turn_id, after_seq=seen)
        after = ws.recv_until(lambda m: m["type"] == "text")
        ws.send(type="cancel", turn_id=turn_id)
        after += ws.until_terminal()
        ws.send(type="ping")
        trailing = ws.recv_until(lambda m: m["type"] == "pong")
    assert not [f for f in trailing if f["type"] in TERMINAL], trailing
    seqs = [f["seq"] for f in after if "seq" in f]
    assert seqs == list(range(seen + 1, seen + 1 + len(seqs)))  # no gap, no repeat
    done = after[-1]
    assert done["type"] == "response_done" and done["status"] == "cancelled"
    assert [f for f in before + after if f["type"] in TERMINAL] == [done]
    streamed = text_of(before) + text_of(after)
    assert streamed.startswith("word1") and "word300" not in streamed

    detail = chat.detail(conv_id)
    reply = detail["messages"][-1]
    assert reply["turn_id"] == turn_id and reply["status"] == "cancelled"
    assert reply["content"] == streamed
    assert (reply["sibling_ids"], reply["sibling_index"]) == ([first["id"], reply["id"]], 1)
    assert detail["active_turn_id"] is None
    with session_scope() as session:
        turn = session.get(Turn, turn_id)
        assert turn is not None and turn.status == "cancelled" and turn.last_seq == done["seq"]


# ---- old conversations --------------------------------------------------------------------


OLD_ONE, OLD_TWO = "Old one [[say:again]]", "Old two [[say:twice]]"


@dataclass(frozen=True)
class Legacy:
    stack: Stack
    acct: Account
    project: str
    conv_id: int
    message_ids: list[int]


@pytest.fixture
def legacy(isolated: StackFactory, project_dir: Path) -> Legacy:
    """A conversation stored before the message tree (a straight line), then migrated, and the
    service started on that database."""
    url = str(shared.db.get_engine().url)
    command.downgrade(alembic_config(url), BEFORE_BRANCHES)
    name = "legacy"
    with shared.db.get_engine().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (name, is_admin, created_at) "
                "VALUES (:n, false, CURRENT_TIMESTAMP)"
            ),
            {"n": name},
        )
        uid = conn.execute(text("SELECT id FROM users WHERE name = :n"), {"n": name}).scalar_one()
        conn.execute(
            text(
                "INSERT INTO conversations (project_name, user_id, title, created_at, updated_at) "
                "VALUES ('old', :u, 'Old times', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"u": uid},
        )
        cid = conn.execute(text("SELECT max(id) FROM conversations")).scalar_one()

        def add(role: str, content: str, turn_id: int | None = None) -> int:
            conn.execute(
                text(
                    "INSERT INTO messages (conversation_id, role, content, tool_calls, status, "
                    "turn_id, created_at, updated_at) VALUES (:c, :r, :x, '[]', 'complete', "
                    ":t, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"c": cid, "r": role, "x": content, "t": turn_id},
            )
            return int(conn.execute(text("SELECT max(id) FROM messages")).scalar_one())

        ids = [add("assistant", greeting("old"))]
        for n, (q, a) in enumerate([(OLD_ONE, "Answer one"), (OLD_TWO, "Answer two")], 1):
            ids.append(add("user", q))
            conn.execute(
                text(
                    "INSERT INTO turns (id, conversation_id, user_id, user_message_id, status, "
                    "attempt, last_seq, created_at) VALUES (:id, :c, :u, :m, 'complete', 1, 2, "
                    "CURRENT_TIMESTAMP)"
                ),
                {"id": n, "c": cid, "u": uid, "m": ids[-1]},
            )
            ids.append(add("assistant", a, n))
    upgrade(url)
    with session_scope() as session:
        user = session.get(User, uid)
        assert user is not None
        _, token = auth.issue_token(session, user)
        projects.add_project(session, "old", str(project_dir))
    return Legacy(isolated.stack(), Account(name, token, uid), "old", int(cid), ids)


def test_an_old_straight_line_conversation_shows_and_branches(
    legacy: Legacy, model: DemoModelServer
) -> None:
    chat = Chat(legacy.stack, legacy.acct, legacy.project, model)
    detail = chat.detail(legacy.conv_id)
    ids = legacy.message_ids
    assert [m["id"] for m in detail["messages"]] == ids
    assert [m["parent_id"] for m in detail["messages"]] == [None, *ids[:-1]]
    assert all(m["sibling_ids"] == [m["id"]] for m in detail["messages"])
    assert detail["active_leaf_id"] == ids[-1]
    assert detail["title_source"] == "auto"
    assert detail["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": 0.0,
    }

    with chat.ws() as ws:
        ws.start(legacy.conv_id)
        accepted, _ = accepted_and_done(ws, type="message", content="Still there? [[say:yes]]")
        assert accepted["parent_id"] == ids[-1]
        assert chat.sent() == [
            ("user", OLD_ONE),
            ("assistant", "Answer one"),
            ("user", OLD_TWO),
            ("assistant", "Answer two"),
            ("user", "Still there? [[say:yes]]"),
        ]
        # A reply written before branches existed can be answered again.
        accepted, _ = accepted_and_done(ws, type="regenerate", message_id=ids[2])
        assert accepted["user_message_id"] == ids[1]
        assert chat.sent() == [("user", OLD_ONE)]
    detail = chat.detail(legacy.conv_id)
    assert [m["id"] for m in detail["messages"][:2]] == ids[:2]
    assert detail["messages"][2]["sibling_ids"] == [ids[2], detail["messages"][2]["id"]]
