"""autocoder's own web client against the real stack: the flows its code depends on.

Its client disables the input from `start` until a `response_done` (or `error`) arrives, and
after a dropped connection it reconnects without sending `start` again: its next `message` is
expected to continue the same conversation (see design.md, "The original's client").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from api.chat.last_conversation import REMEMBER_S, last_conversation_key
from shared.devtools.redis_server import RedisServer
from tests.support.autocoder import AutocoderClient
from tests.support.client import WsClient, text_of
from tests.support.data import Account, make_account, make_project
from tests.support.processes import Api, Stack, StackFactory, wait_for

NO_SESSION = "No active session. Send 'start' first."
CONVERSATIONS = "/api/assistant/conversations"


def ws_url(api: Api, project: str) -> str:
    return f"{api.ws_url}/api/assistant/ws/{project}"


def conversations(api: Api, acct: Account, project: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{api.base_url}{CONVERSATIONS}/{project}", headers=acct.headers)
    resp.raise_for_status()
    return list(resp.json())


def messages(api: Api, acct: Account, project: str, conv_id: int) -> list[dict[str, Any]]:
    resp = httpx.get(f"{api.base_url}{CONVERSATIONS}/{project}/{conv_id}", headers=acct.headers)
    resp.raise_for_status()
    return list(resp.json()["messages"])


def echo_roles(frames: list[dict[str, Any]]) -> list[str]:
    """The roles of the request the model stand-in received, from its `[[echo]]` reply."""
    summary = json.loads(text_of(frames).split("echo: ", 1)[1].split("\n")[0])
    return list(summary["roles"])


def assert_quiet(ws: WsClient) -> None:
    """Nothing else was sent: the next frame is the answer to a ping."""
    ws.send(type="ping")
    assert ws.recv() == {"type": "pong"}


@pytest.fixture
def acct() -> Account:
    return make_account()


@pytest.fixture
def project(project_dir: Path) -> str:
    return make_project(project_dir)


@pytest.fixture
def client(stack: Stack, acct: Account, project: str) -> Iterator[AutocoderClient]:
    with AutocoderClient(ws_url(stack.api, project), acct.token) as c:
        yield c


def started_chat(client: AutocoderClient, question: str = "First question [[text:2]]") -> int:
    """A new conversation with one answered question; the connection is still open."""
    greeted = client.start()
    assert greeted[0]["type"] == "conversation_created"
    assert greeted[-1]["type"] == "response_done"
    assert client.send_message(question)[-1]["type"] == "response_done"
    assert isinstance(client.conversation_id, int)
    return client.conversation_id


# ---- item 1: a resuming `start` ends the client's loading state ------------------------------


class TestResumingStart:
    def test_start_with_a_stored_conversation_answers_a_single_response_done(
        self, stack: Stack, acct: Account, project: str, client: AutocoderClient
    ) -> None:
        conv_id = started_chat(client)
        client.drop()
        client.connect()
        assert client.start(conv_id) == [{"type": "response_done", "status": "complete"}]
        assert client.ws is not None
        assert_quiet(client.ws)
        # History goes to the model with the next message, as the original did.
        second = client.send_message("Second question [[echo]]")
        assert second[-1]["type"] == "response_done"
        assert echo_roles(second) == ["user", "assistant", "user"]
        assert len(messages(stack.api, acct, project, conv_id)) == 5

    def test_resume_by_conversation_id_answers_the_same(self, client: AutocoderClient) -> None:
        conv_id = started_chat(client)
        client.connect()
        assert client.ws is not None
        client.ws.send(type="resume", conversation_id=conv_id)
        assert client.ws.recv() == {"type": "response_done", "status": "complete"}
        assert_quiet(client.ws)

    def test_a_numeric_string_conversation_id_is_accepted(
        self, stack: Stack, acct: Account, project: str, client: AutocoderClient
    ) -> None:
        conv_id = started_chat(client)
        client.connect()
        assert client.start(str(conv_id)) == [{"type": "response_done", "status": "complete"}]
        frames = client.send_message("Again [[text:1]]")
        assert frames[0]["conversation_id"] == conv_id
        assert len(messages(stack.api, acct, project, conv_id)) == 5

    @pytest.mark.parametrize("bad", ["abc", "7a", "-3", "1.0", " 7", "", "9" * 40])
    def test_other_strings_are_refused_with_a_clear_error(
        self, client: AutocoderClient, bad: str
    ) -> None:
        client.connect()
        assert client.ws is not None
        client.ws.send(type="start", conversation_id=bad)
        error = client.ws.recv()
        assert error["type"] == "error"
        assert "conversation_id" in error["content"]
        assert "Traceback" not in error["content"]
        assert_quiet(client.ws)

    def test_a_reply_still_running_is_replayed_and_ends_with_its_own_terminal_chunk(
        self, client: AutocoderClient
    ) -> None:
        conv_id = started_chat(client)
        assert client.ws is not None
        client.ws.send(type="message", content="Long one [[text:30]] [[slow:40]]")
        client.ws.recv_until(lambda m: m["type"] == "text")
        client.connect()
        frames = client.start(conv_id)
        # The loading state ends with the turn's own terminal chunk, after the whole reply.
        assert frames[-1]["type"] == "response_done" and "turn_id" in frames[-1]
        assert text_of(frames) == " ".join(f"word{i}" for i in range(1, 31))


# ---- item 2: a reconnect without `start` continues the conversation -------------------------


class TestReconnectWithoutStart:
    def test_message_after_a_reconnect_to_another_api_process_continues_the_conversation(
        self,
        stack: Stack,
        stack_factory: StackFactory,
        acct: Account,
        project: str,
        client: AutocoderClient,
    ) -> None:
        other_api = stack_factory.api()
        try:
            conv_id = started_chat(client)
            client.drop()
            client.connect(ws_url(other_api, project))  # a new WebSocket, no `start`
            frames = client.send_message("And then? [[echo]]")
        finally:
            client.drop()
            other_api.stop()
        assert frames[0]["type"] == "message_accepted"
        assert frames[0]["conversation_id"] == conv_id
        assert frames[-1]["type"] == "response_done"
        assert echo_roles(frames) == ["user", "assistant", "user"]
        # The turn landed in the same conversation, and no other was opened.
        assert [c["id"] for c in conversations(stack.api, acct, project)] == [conv_id]
        stored = messages(stack.api, acct, project, conv_id)
        roles = [m["role"] for m in stored]
        assert roles == ["assistant", "user", "assistant", "user", "assistant"]
        assert stored[3]["content"] == "And then? [[echo]]"

    def test_it_continues_the_conversation_of_the_last_start(
        self, stack: Stack, acct: Account, project: str, client: AutocoderClient
    ) -> None:
        first = started_chat(client)
        with AutocoderClient(ws_url(stack.api, project), acct.token) as other_tab:
            other_tab.start()
            second = other_tab.conversation_id
        assert second is not None and second != first
        client.connect()
        frames = client.send_message("Which one? [[text:1]]")
        assert frames[0]["conversation_id"] == second
        # Resuming the first one by `start` makes it the remembered one again.
        client.connect()
        assert client.start(first)[-1] == {"type": "response_done", "status": "complete"}
        client.connect()
        assert client.send_message("This one [[text:1]]")[0]["conversation_id"] == first

    def test_without_any_start_a_message_is_refused(self, client: AutocoderClient) -> None:
        client.connect()
        assert client.send_message("Hello [[text:1]]") == [{"type": "error", "content": NO_SESSION}]

    def test_another_users_reconnect_does_not_continue_it(
        self, stack: Stack, acct: Account, project: str, client: AutocoderClient
    ) -> None:
        conv_id = started_chat(client)
        bob = make_account()
        with AutocoderClient(ws_url(stack.api, project), bob.token) as bobs:
            bobs.connect()
            assert bobs.send_message("Let me in [[text:1]]") == [
                {"type": "error", "content": NO_SESSION}
            ]
        assert conversations(stack.api, bob, project) == []
        assert len(messages(stack.api, acct, project, conv_id)) == 3

    def test_each_project_remembers_its_own_conversation(
        self, stack: Stack, acct: Account, client: AutocoderClient, tmp_path: Path
    ) -> None:
        started_chat(client)
        (tmp_path / "other").mkdir()
        other_project = make_project(tmp_path / "other")
        with AutocoderClient(ws_url(stack.api, other_project), acct.token) as elsewhere:
            elsewhere.connect()
            assert elsewhere.send_message("Here? [[text:1]]") == [
                {"type": "error", "content": NO_SESSION}
            ]
        assert conversations(stack.api, acct, other_project) == []

    def test_a_deleted_conversation_is_not_continued(
        self, stack: Stack, acct: Account, project: str, client: AutocoderClient
    ) -> None:
        conv_id = started_chat(client)
        client.drop()
        resp = httpx.delete(
            f"{stack.api.base_url}{CONVERSATIONS}/{project}/{conv_id}", headers=acct.headers
        )
        assert resp.status_code == 200
        client.connect()
        assert client.send_message("Still there? [[text:1]]") == [
            {"type": "error", "content": NO_SESSION}
        ]

    def test_closing_the_session_over_rest_forgets_it(
        self, stack: Stack, acct: Account, project: str, client: AutocoderClient
    ) -> None:
        # As in the original, DELETE /sessions/{project} ends the session that outlives a
        # disconnect: the next message without `start` has none.
        started_chat(client)
        client.drop()
        resp = httpx.delete(
            f"{stack.api.base_url}/api/assistant/sessions/{project}", headers=acct.headers
        )
        assert resp.status_code == 200
        client.connect()
        assert client.send_message("Gone? [[text:1]]") == [{"type": "error", "content": NO_SESSION}]

    def test_cancel_after_a_reconnect_stops_the_running_reply(
        self, stack: Stack, acct: Account, project: str, client: AutocoderClient
    ) -> None:
        conv_id = started_chat(client)
        assert client.ws is not None
        client.ws.send(type="message", content="Long [[text:2000]] [[slow:20]]")
        client.ws.recv_until(lambda m: m["type"] == "text")
        client.connect()
        assert client.ws is not None
        client.ws.send(type="cancel")

        def last_status() -> str:
            return str(messages(stack.api, acct, project, conv_id)[-1]["status"])

        wait_for(lambda: last_status() == "cancelled", 10, "the reply to be cancelled")
        assert_quiet(client.ws)

    def test_resume_of_a_turn_after_a_reconnect_gets_the_rest(
        self, client: AutocoderClient
    ) -> None:
        started_chat(client)
        assert client.ws is not None
        client.ws.send(type="message", content="Long [[text:30]] [[slow:40]]")
        seen = client.ws.recv_until(lambda m: m["type"] == "text" and m["seq"] >= 2)
        turn_id, last = seen[-1]["turn_id"], seen[-1]["seq"]
        client.connect()
        assert client.ws is not None
        client.ws.send(type="resume", turn_id=turn_id, after_seq=last)
        rest = client.ws.until_terminal()
        assert [f["seq"] for f in rest] == list(range(last + 1, last + 1 + len(rest)))
        assert rest[-1]["type"] == "response_done"
        whole = [f for f in seen if "seq" in f] + rest
        assert text_of(whole) == " ".join(f"word{i}" for i in range(1, 31))

    def test_the_conversation_is_remembered_for_a_day(
        self, redis_server: RedisServer, acct: Account, project: str, client: AutocoderClient
    ) -> None:
        conv_id = started_chat(client)
        redis = Redis.from_url(redis_server.url)
        try:
            key = last_conversation_key(acct.user_id, project)
            assert int(redis.get(key) or 0) == conv_id
            assert REMEMBER_S == 24 * 3600
            assert REMEMBER_S - 60 < redis.ttl(key) <= REMEMBER_S
            # Each use keeps it another day.
            redis.expire(key, 100)
            assert client.send_message("Still here [[text:1]]")[-1]["type"] == "response_done"
            assert REMEMBER_S - 60 < redis.ttl(key) <= REMEMBER_S
        finally:
            redis.close()
