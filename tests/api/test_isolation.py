"""Two users in one project: neither can see, change, stop or follow the other's chats.

Alice owns a conversation; Bob tries every door to it (REST, WebSocket, sessions). Another
user's conversation must look exactly like one that does not exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.client import WsClient, text_of
from tests.support.data import Account, make_account, make_project
from tests.support.processes import Stack

# ---- helpers --------------------------------------------------------------------------------

CONVERSATIONS = "/api/assistant/conversations"
SESSIONS = "/api/assistant/sessions"
NOT_FOUND = {"detail": "Conversation not found"}


def url(stack: Stack, project: str) -> str:
    return f"{stack.api.ws_url}/api/assistant/ws/{project}"


def get(stack: Stack, acct: Account, path: str) -> httpx.Response:
    return httpx.get(stack.api.base_url + path, headers=acct.headers, timeout=10)


def post(stack: Stack, acct: Account, path: str) -> httpx.Response:
    return httpx.post(stack.api.base_url + path, headers=acct.headers, timeout=10)


def delete(stack: Stack, acct: Account, path: str) -> httpx.Response:
    return httpx.delete(stack.api.base_url + path, headers=acct.headers, timeout=10)


def chat(stack: Stack, acct: Account, project: str, question: str) -> int:
    with WsClient(url(stack, project), acct.token) as ws:
        conv_id = ws.start()
        assert ws.ask(question)[-1]["type"] == "response_done"
    return conv_id


def sessions_of(stack: Stack, acct: Account) -> list[str]:
    resp = get(stack, acct, SESSIONS)
    assert resp.status_code == 200
    listing: list[str] = resp.json()
    return listing


def pong(ws: WsClient) -> list[dict[str, Any]]:
    """Ping; every frame up to and including the pong."""
    ws.send(type="ping")
    return ws.recv_until(lambda m: m["type"] == "pong", timeout=10)


@pytest.fixture
def alice() -> Account:
    return make_account()


@pytest.fixture
def bob() -> Account:
    return make_account()


@pytest.fixture
def project(project_dir: Path) -> str:
    return make_project(project_dir)


@pytest.fixture
def alices_conv(stack: Stack, alice: Account, project: str) -> int:
    return chat(stack, alice, project, "Alice's private question [[text:3]]")


# ---- REST -----------------------------------------------------------------------------------


class TestRest:
    def test_bob_gets_404_for_alices_conversation(
        self, stack: Stack, alice: Account, bob: Account, project: str, alices_conv: int
    ) -> None:
        path = f"{CONVERSATIONS}/{project}/{alices_conv}"
        before = get(stack, alice, path).json()
        # Exactly what a conversation that does not exist gets: nothing to tell them apart.
        unknown = get(stack, bob, f"{CONVERSATIONS}/{project}/{2**31 - 1}")
        for resp in (get(stack, bob, path), delete(stack, bob, path), unknown):
            assert resp.status_code == 404 and resp.json() == NOT_FOUND
        # Bob's delete changed nothing.
        assert get(stack, alice, path).json() == before

    def test_bob_cannot_cancel_alices_running_reply(
        self, stack: Stack, alice: Account, bob: Account, project: str
    ) -> None:
        with WsClient(url(stack, project), alice.token) as ws:
            conv_id = ws.start()
            ws.send(type="message", content="Alice asks [[text:20]] [[slow:30]]")
            ws.recv_until(lambda m: m["type"] == "text")
            resp = post(stack, bob, f"{CONVERSATIONS}/{project}/{conv_id}/cancel")
            assert resp.status_code == 404 and resp.json() == NOT_FOUND
            frames = ws.until_terminal()
        assert frames[-1]["type"] == "response_done" and frames[-1]["status"] == "complete"
        assert text_of(frames).endswith("word20")

    def test_lists_show_only_the_callers_conversations(
        self, stack: Stack, alice: Account, bob: Account, project: str, alices_conv: int
    ) -> None:
        bobs_conv = chat(stack, bob, project, "Bob's question [[text:1]]")
        bobs_post = post(stack, bob, f"{CONVERSATIONS}/{project}").json()["id"]
        alices_list = get(stack, alice, f"{CONVERSATIONS}/{project}").json()
        bobs_list = get(stack, bob, f"{CONVERSATIONS}/{project}").json()
        assert [c["id"] for c in alices_list] == [alices_conv]
        assert sorted(c["id"] for c in bobs_list) == sorted([bobs_conv, bobs_post])

    def test_a_deleted_conversation_leaks_nothing_to_the_next_user(
        self, stack: Stack, alice: Account, bob: Account, project: str, alices_conv: int
    ) -> None:
        # Were ids reused (SQLite without AUTOINCREMENT), Bob's first turn could get the id of
        # Alice's deleted one and be served her reply from the replay log.
        assert delete(stack, alice, f"{CONVERSATIONS}/{project}/{alices_conv}").status_code == 200
        with WsClient(url(stack, project), bob.token) as ws:
            ws.start()
            frames = ws.ask("Bob asks [[echo]]")
        reply = text_of(frames)
        assert reply.startswith("echo: ") and "word" not in reply
        assert frames[-1]["type"] == "response_done" and frames[-1]["status"] == "complete"
        seqs = [f["seq"] for f in frames if "seq" in f]
        assert seqs == list(range(1, len(seqs) + 1))


# ---- the WebSocket --------------------------------------------------------------------------


class TestWebSocket:
    @pytest.mark.parametrize("kind", ["start", "resume"])
    def test_bob_cannot_open_alices_conversation(
        self, stack: Stack, bob: Account, project: str, alices_conv: int, kind: str
    ) -> None:
        with WsClient(url(stack, project), bob.token) as ws:
            ws.send(type=kind, conversation_id=alices_conv)
            assert ws.recv() == {"type": "error", "content": "Conversation not found"}
            # Nothing was opened: a message has no session to go to.
            ws.send(type="message", content="sneaky [[text:1]]")
            error = ws.recv()
            assert error["type"] == "error" and "start" in error["content"]

    def test_bob_cannot_follow_or_cancel_alices_turn(
        self, stack: Stack, alice: Account, bob: Account, project: str
    ) -> None:
        with (
            WsClient(url(stack, project), alice.token) as a,
            WsClient(url(stack, project), bob.token) as b,
        ):
            a.start()
            b.start()
            a.send(type="message", content="Alice asks [[text:30]] [[slow:30]]")
            accepted = a.recv()
            turn_id = accepted["turn_id"]
            a.recv_until(lambda m: m["type"] == "text")

            b.send(type="resume", turn_id=turn_id, after_seq=0)
            assert b.recv() == {"type": "error", "content": "Turn not found"}
            b.send(type="cancel", turn_id=turn_id)
            refused = b.recv()
            assert refused["type"] == "error" and "cancel" in refused["content"]

            alices = a.until_terminal()
            bobs = pong(b)  # everything Bob received after Alice's reply was complete

        assert alices[-1]["status"] == "complete" and text_of(alices).endswith("word30")
        assert bobs == [{"type": "pong"}]
        assert all(f.get("turn_id") != turn_id for f in b.received)
        assert [f["type"] for f in b.received if f["type"] == "text"] == ["text"]  # greeting


# ---- live sessions --------------------------------------------------------------------------


class TestSessions:
    def test_bob_does_not_see_alices_sessions(
        self, stack: Stack, alice: Account, bob: Account, project: str
    ) -> None:
        with WsClient(url(stack, project), alice.token) as a:
            a.start()
            assert sessions_of(stack, alice) == [project]
            assert sessions_of(stack, bob) == []
            resp = get(stack, bob, f"{SESSIONS}/{project}")
            assert resp.status_code == 404

    def test_bob_closing_his_session_leaves_alices_open(
        self, stack: Stack, alice: Account, bob: Account, project: str
    ) -> None:
        with (
            WsClient(url(stack, project), alice.token) as a,
            WsClient(url(stack, project), bob.token) as b,
        ):
            alices_conv = a.start()
            b.start()
            assert delete(stack, bob, f"{SESSIONS}/{project}").status_code == 200
            assert b.until_closed()[1] == 1000
            # Bob's socket is closed, so the close request has been handled: Alice's is open.
            assert pong(a) == [{"type": "pong"}]
            assert sessions_of(stack, alice) == [project]
            info = get(stack, alice, f"{SESSIONS}/{project}").json()
            assert info["conversation_id"] == alices_conv
            assert text_of(a.ask("Still here? [[text:2]]")) == "word1 word2"

    def test_bob_without_a_session_cannot_close_alices(
        self, stack: Stack, alice: Account, bob: Account, project: str
    ) -> None:
        with WsClient(url(stack, project), alice.token) as a:
            a.start()
            resp = delete(stack, bob, f"{SESSIONS}/{project}")
            assert resp.status_code == 404
            assert pong(a) == [{"type": "pong"}]
            assert sessions_of(stack, alice) == [project]


def test_revoked_token_cannot_start_turns_on_an_already_open_socket(
    stack: Stack, project_dir: Path
) -> None:
    from shared import auth
    from shared.db import session_scope

    acct = make_account()
    project = make_project(project_dir)
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        ws.start()
        with session_scope() as session:
            for token in auth.list_tokens(session, auth.get_user(session, acct.name)):
                assert token.id is not None
                auth.revoke_token(session, token.id)
        ws.send(type="message", content="[[text:2]]")
        refused = ws.recv_until(lambda m: m["type"] == "error")[-1]
        assert "revoked" in refused["content"]
