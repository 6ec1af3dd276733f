"""The REST API: conversations, live sessions, projects, health; shapes as in api/schemas.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.schemas import (
    ConversationDetail,
    ConversationMessage,
    ConversationSummary,
    ProjectPublic,
    SessionInfo,
    Success,
    TurnPublic,
)
from shared import conversations as convs
from shared.db import session_scope
from shared.models import Message, Turn
from shared.protocol import greeting
from tests.support.client import WsClient, text_of
from tests.support.data import Account, make_account, make_project
from tests.support.processes import Stack

# ---- helpers --------------------------------------------------------------------------------

CONVERSATIONS = "/api/assistant/conversations"
SESSIONS = "/api/assistant/sessions"


def fields(model: type[Any]) -> set[str]:
    return set(model.model_fields)


def assert_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


class Rest:
    """httpx against the shared API, as one account (or anonymously)."""

    def __init__(self, stack: Stack, acct: Account | None) -> None:
        self.base = stack.api.base_url
        self.headers = acct.headers if acct else {}

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, headers=self.headers, timeout=10)

    def post(self, path: str, json: Any = None) -> httpx.Response:
        return httpx.post(self.base + path, headers=self.headers, json=json, timeout=10)

    def delete(self, path: str) -> httpx.Response:
        return httpx.delete(self.base + path, headers=self.headers, timeout=10)


def ws_url(stack: Stack, project: str) -> str:
    return f"{stack.api.ws_url}/api/assistant/ws/{project}"


def chat(stack: Stack, acct: Account, project: str, *questions: str) -> int:
    """A new conversation with these questions answered; its id."""
    with WsClient(ws_url(stack, project), acct.token) as ws:
        conv_id = ws.start()
        for question in questions:
            assert ws.ask(question)[-1]["type"] == "response_done"
    return conv_id


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def acct() -> Account:
    return make_account()


@pytest.fixture
def rest(stack: Stack, acct: Account) -> Rest:
    return Rest(stack, acct)


@pytest.fixture
def project(project_dir: Path) -> str:
    return make_project(project_dir)


@pytest.fixture
def other_project(tmp_path: Path) -> str:
    root = tmp_path / "other"
    root.mkdir()
    return make_project(root)


# ---- conversations --------------------------------------------------------------------------


class TestConversationList:
    def test_summary_shape_title_and_message_count(
        self, stack: Stack, acct: Account, rest: Rest, project: str
    ) -> None:
        first = "Where is\nthe entry point of this project, and what does it return? [[text:3]]"
        conv_id = chat(stack, acct, project, first, "And the tests? [[text:2]]")
        resp = rest.get(f"{CONVERSATIONS}/{project}")
        assert resp.status_code == 200
        (conv,) = resp.json()
        assert set(conv) == fields(ConversationSummary)
        assert conv["id"] == conv_id
        assert conv["project_name"] == project
        # The first user message, newlines flattened, cut at 50 characters then "...".
        assert conv["title"] == first.replace("\n", " ")[:50] + "..."
        assert conv["message_count"] == 5  # greeting + two questions + two answers
        assert assert_iso(conv["updated_at"]) >= assert_iso(conv["created_at"])

    def test_most_recently_active_first_and_only_this_project(
        self, stack: Stack, acct: Account, rest: Rest, project: str, other_project: str
    ) -> None:
        older = chat(stack, acct, project, "older [[text:1]]")
        newer = chat(stack, acct, project, "newer [[text:1]]")
        chat(stack, acct, other_project, "elsewhere [[text:1]]")
        assert [c["id"] for c in rest.get(f"{CONVERSATIONS}/{project}").json()] == [newer, older]
        # Activity in the older one moves it to the top.
        with WsClient(ws_url(stack, project), acct.token) as ws:
            ws.start(older)
            ws.ask("again [[text:1]]")
        listing = rest.get(f"{CONVERSATIONS}/{project}").json()
        assert [c["id"] for c in listing] == [older, newer]
        assert [c["message_count"] for c in listing] == [5, 3]

    def test_empty_list_for_a_project_without_conversations(self, rest: Rest, project: str) -> None:
        resp = rest.get(f"{CONVERSATIONS}/{project}")
        assert resp.status_code == 200 and resp.json() == []

    def test_post_creates_an_empty_conversation(self, rest: Rest, project: str) -> None:
        resp = rest.post(f"{CONVERSATIONS}/{project}")
        assert resp.status_code == 200
        created = resp.json()
        assert set(created) == fields(ConversationSummary)
        assert created["project_name"] == project
        assert created["title"] is None and created["message_count"] == 0
        assert_iso(created["created_at"])
        assert rest.get(f"{CONVERSATIONS}/{project}").json() == [created]
        detail = rest.get(f"{CONVERSATIONS}/{project}/{created['id']}").json()
        assert detail["messages"] == [] and detail["title"] is None

    def test_posted_conversation_can_be_opened_over_the_websocket(
        self, stack: Stack, acct: Account, rest: Rest, project: str
    ) -> None:
        conv_id = rest.post(f"{CONVERSATIONS}/{project}").json()["id"]
        with WsClient(ws_url(stack, project), acct.token) as ws:
            assert ws.start(conv_id) == conv_id
            ws.ask("First words here [[text:2]]")
        (conv,) = rest.get(f"{CONVERSATIONS}/{project}").json()
        assert conv["title"] == "First words here [[text:2]]"
        assert conv["message_count"] == 2  # no greeting: it was not started as new


class TestConversationDetail:
    def test_detail_shape_and_messages(
        self, stack: Stack, acct: Account, rest: Rest, project: str
    ) -> None:
        with WsClient(ws_url(stack, project), acct.token) as ws:
            conv_id = ws.start()
            frames = ws.ask('Read it [[tool:Read {"file_path": "README.md"}]]')
        resp = rest.get(f"{CONVERSATIONS}/{project}/{conv_id}")
        assert resp.status_code == 200
        detail = resp.json()
        assert set(detail) == fields(ConversationDetail)
        assert detail["id"] == conv_id and detail["project_name"] == project
        assert detail["title"] == 'Read it [[tool:Read {"file_path": "README.md"}]]'
        assert detail["active_turn_id"] is None
        messages = detail["messages"]
        for m in messages:
            assert set(m) == fields(ConversationMessage)
            assert_iso(m["timestamp"])
        assert [m["role"] for m in messages] == ["assistant", "user", "assistant"]
        ids = [m["id"] for m in messages]
        assert ids == sorted(ids) and len(set(ids)) == 3
        greeted, question, answer = messages
        assert greeted["content"] == greeting(project)
        assert question["content"] == 'Read it [[tool:Read {"file_path": "README.md"}]]'
        assert answer["content"] == text_of(frames)
        assert answer["status"] == "complete"
        assert answer["turn_id"] == frames[-1]["turn_id"]
        assert answer["tool_calls"] == [{"tool": "Read", "input": {"file_path": "README.md"}}]

    def test_tool_calls_stored_under_the_old_names_are_returned_as_stored(
        self, acct: Account, rest: Rest, project: str
    ) -> None:
        legacy = [
            {"tool": "read_file", "input": {"path": "README.md", "start_line": 2}},
            {"tool": "list_files", "input": {"pattern": "*"}},
            {"tool": "search_files", "input": {"pattern": "TODO", "case_sensitive": False}},
        ]
        with session_scope() as session:
            conv = convs.create_conversation(session, project, acct.user_id)
            assert conv.id is not None
            session.add(Message(conversation_id=conv.id, role="assistant", tool_calls=legacy))
            conv_id = conv.id
        (answer,) = rest.get(f"{CONVERSATIONS}/{project}/{conv_id}").json()["messages"]
        assert answer["tool_calls"] == legacy

    def test_unknown_id_is_404(self, rest: Rest, project: str) -> None:
        resp = rest.get(f"{CONVERSATIONS}/{project}/{2**31 - 1}")
        assert resp.status_code == 404
        assert resp.json() == {"detail": "Conversation not found"}

    def test_non_numeric_id_is_422(self, rest: Rest, project: str) -> None:
        assert rest.get(f"{CONVERSATIONS}/{project}/abc").status_code == 422

    @pytest.mark.parametrize("conv_id", [0, -1, 2**63, 10**30, -(2**63) - 1])
    def test_out_of_range_id_is_422_not_a_server_error(
        self, rest: Rest, project: str, conv_id: int
    ) -> None:
        for resp in (
            rest.get(f"{CONVERSATIONS}/{project}/{conv_id}"),
            rest.delete(f"{CONVERSATIONS}/{project}/{conv_id}"),
            rest.post(f"{CONVERSATIONS}/{project}/{conv_id}/cancel"),
        ):
            assert resp.status_code == 422, resp.text
            assert resp.json()["detail"][0]["loc"] == ["path", "conversation_id"]

    def test_id_of_another_project_of_the_same_user_is_404(
        self, stack: Stack, acct: Account, rest: Rest, project: str, other_project: str
    ) -> None:
        conv_id = chat(stack, acct, other_project, "elsewhere [[text:1]]")
        assert rest.get(f"{CONVERSATIONS}/{project}/{conv_id}").status_code == 404
        assert rest.delete(f"{CONVERSATIONS}/{project}/{conv_id}").status_code == 404
        # Still there, under its own project.
        assert rest.get(f"{CONVERSATIONS}/{other_project}/{conv_id}").status_code == 200

    def test_delete_removes_the_conversation(
        self, stack: Stack, acct: Account, rest: Rest, project: str
    ) -> None:
        keep = chat(stack, acct, project, "keep [[text:1]]")
        doomed = chat(stack, acct, project, "doomed [[text:1]]")
        resp = rest.delete(f"{CONVERSATIONS}/{project}/{doomed}")
        assert resp.status_code == 200
        body = resp.json()
        assert set(body) == fields(Success) and body["success"] is True
        assert rest.get(f"{CONVERSATIONS}/{project}/{doomed}").status_code == 404
        assert rest.delete(f"{CONVERSATIONS}/{project}/{doomed}").status_code == 404
        assert [c["id"] for c in rest.get(f"{CONVERSATIONS}/{project}").json()] == [keep]
        # Nor can it be reopened over the WebSocket.
        with WsClient(ws_url(stack, project), acct.token) as ws:
            ws.send(type="start", conversation_id=doomed)
            assert ws.recv() == {"type": "error", "content": "Conversation not found"}


class TestCancel:
    def test_cancel_stops_a_running_reply_and_keeps_the_partial_text(
        self, stack: Stack, acct: Account, rest: Rest, project: str
    ) -> None:
        with WsClient(ws_url(stack, project), acct.token) as ws:
            conv_id = ws.start()
            ws.send(type="message", content="Long answer [[text:400]] [[slow:50]]")
            accepted = ws.recv()
            assert accepted["type"] == "message_accepted"
            turn_id = accepted["turn_id"]
            streamed = ws.recv_until(lambda m: m["type"] == "text")
            detail = rest.get(f"{CONVERSATIONS}/{project}/{conv_id}").json()
            assert detail["active_turn_id"] == turn_id

            resp = rest.post(f"{CONVERSATIONS}/{project}/{conv_id}/cancel")
            assert resp.status_code == 200
            turn = resp.json()
            assert set(turn) == fields(TurnPublic)
            assert turn["id"] == turn_id and turn["conversation_id"] == conv_id
            streamed += ws.until_terminal(timeout=15)

        done = streamed[-1]
        assert done["type"] == "response_done" and done["status"] == "cancelled"
        assert done["turn_id"] == turn_id
        partial = text_of(streamed)
        assert partial.startswith("word1") and "word400" not in partial

        detail = rest.get(f"{CONVERSATIONS}/{project}/{conv_id}").json()
        assert detail["active_turn_id"] is None
        reply = detail["messages"][-1]
        assert reply["role"] == "assistant" and reply["turn_id"] == turn_id
        assert reply["status"] == "cancelled"
        assert reply["content"] == partial
        # Nothing is left to cancel.
        assert rest.post(f"{CONVERSATIONS}/{project}/{conv_id}/cancel").status_code == 404

    def test_cancel_of_a_queued_reply_finishes_it_at_once(
        self, stack: Stack, acct: Account, rest: Rest, project: str
    ) -> None:
        # A turn stored but never handed to a worker stays queued.
        with session_scope() as session:
            conv = convs.create_conversation(session, project, acct.user_id)
            turn = convs.start_turn(session, conv, "Never picked up").turn
            conv_id, turn_id = conv.id, turn.id
        with WsClient(ws_url(stack, project), acct.token) as ws:
            assert ws.start(conv_id) == conv_id
            resp = rest.post(f"{CONVERSATIONS}/{project}/{conv_id}/cancel")
            assert resp.status_code == 200, resp.text
            assert resp.json()["id"] == turn_id
            done = ws.until_terminal(timeout=10)[-1]
        assert done == {
            "type": "response_done",
            "status": "cancelled",
            "turn_id": turn_id,
            "seq": 1,
        }
        detail = rest.get(f"{CONVERSATIONS}/{project}/{conv_id}").json()
        assert detail["active_turn_id"] is None
        with session_scope() as session:
            stored = session.get(Turn, turn_id)
            assert stored is not None and stored.status == "cancelled"

    def test_cancel_without_a_running_reply_is_404(
        self, stack: Stack, acct: Account, rest: Rest, project: str
    ) -> None:
        conv_id = chat(stack, acct, project, "done already [[text:1]]")
        resp = rest.post(f"{CONVERSATIONS}/{project}/{conv_id}/cancel")
        assert resp.status_code == 404 and "cancel" in resp.json()["detail"]

    def test_delete_is_refused_while_a_reply_is_generated(
        self, stack: Stack, acct: Account, rest: Rest, project: str
    ) -> None:
        with WsClient(ws_url(stack, project), acct.token) as ws:
            conv_id = ws.start()
            ws.send(type="message", content="Take your time [[text:20]] [[slow:30]]")
            ws.recv_until(lambda m: m["type"] == "text")
            resp = rest.delete(f"{CONVERSATIONS}/{project}/{conv_id}")
            assert resp.status_code == 409
            assert "cancel" in resp.json()["detail"]
            frames = ws.until_terminal()
        # The reply was not disturbed, and once it is done the conversation can go.
        assert frames[-1]["status"] == "complete" and text_of(frames).endswith("word20")
        assert rest.get(f"{CONVERSATIONS}/{project}/{conv_id}").status_code == 200
        assert rest.delete(f"{CONVERSATIONS}/{project}/{conv_id}").status_code == 200

    def test_next_turn_after_deleting_a_cancelled_reply_runs_normally(
        self, stack: Stack, acct: Account, rest: Rest, project: str
    ) -> None:
        # SQLite reuses the ids of deleted rows: the next turn may get the deleted turn's id,
        # and must not inherit its replay log or its cancel flag.
        with WsClient(ws_url(stack, project), acct.token) as ws:
            conv_id = ws.start()
            ws.send(type="message", content="Long answer [[text:400]] [[slow:50]]")
            ws.recv_until(lambda m: m["type"] == "text")
            assert rest.post(f"{CONVERSATIONS}/{project}/{conv_id}/cancel").status_code == 200
            assert ws.until_terminal()[-1]["status"] == "cancelled"
        assert rest.delete(f"{CONVERSATIONS}/{project}/{conv_id}").status_code == 200
        with WsClient(ws_url(stack, project), acct.token) as ws:
            ws.start()
            frames = ws.ask("Fresh question [[text:30]] [[slow:10]]")
        assert frames[-1]["type"] == "response_done" and frames[-1]["status"] == "complete"
        assert text_of(frames) == " ".join(f"word{i}" for i in range(1, 31))
        seqs = [f["seq"] for f in frames if "seq" in f]
        assert seqs == list(range(1, len(seqs) + 1))


# ---- project names and credentials on every route -------------------------------------------

PROJECT_ROUTES = [
    ("GET", CONVERSATIONS + "/{p}"),
    ("POST", CONVERSATIONS + "/{p}"),
    ("GET", CONVERSATIONS + "/{p}/1"),
    ("DELETE", CONVERSATIONS + "/{p}/1"),
    ("POST", CONVERSATIONS + "/{p}/1/cancel"),
    ("GET", SESSIONS + "/{p}"),
    ("DELETE", SESSIONS + "/{p}"),
]
ALL_ROUTES = [*PROJECT_ROUTES, ("GET", SESSIONS), ("GET", "/api/projects")]


def call(rest: Rest, method: str, path: str) -> httpx.Response:
    return {"GET": rest.get, "POST": rest.post, "DELETE": rest.delete}[method](path)


class TestNamesAndCredentials:
    @pytest.mark.parametrize(("method", "route"), PROJECT_ROUTES)
    @pytest.mark.parametrize("name", ["bad.name%21", "a" * 51])
    def test_invalid_project_name_is_400(
        self, rest: Rest, method: str, route: str, name: str
    ) -> None:
        resp = call(rest, method, route.format(p=name))
        assert resp.status_code == 400
        assert resp.json() == {"detail": "Invalid project name"}

    @pytest.mark.parametrize(("method", "route"), PROJECT_ROUTES[:5])
    def test_unknown_project_is_404(self, rest: Rest, method: str, route: str) -> None:
        resp = call(rest, method, route.format(p="no-such-project-xyz"))
        assert resp.status_code == 404
        assert resp.json() == {"detail": "Project not found"}

    @pytest.mark.parametrize(("method", "route"), ALL_ROUTES)
    def test_missing_token_is_401(
        self, stack: Stack, project: str, method: str, route: str
    ) -> None:
        resp = call(Rest(stack, None), method, route.format(p=project))
        assert resp.status_code == 401
        assert resp.json() == {"detail": "Missing credentials"}
        assert resp.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize(("method", "route"), ALL_ROUTES)
    def test_bad_token_is_401(self, stack: Stack, project: str, method: str, route: str) -> None:
        bogus = Account("nobody", "pa_not-a-real-token", 0)
        resp = call(Rest(stack, bogus), method, route.format(p=project))
        assert resp.status_code == 401
        assert resp.json() == {"detail": "Invalid or revoked token"}

    def test_revoked_token_is_401(self, stack: Stack, project: str) -> None:
        from shared import auth
        from shared.db import session_scope

        acct = make_account()
        assert Rest(stack, acct).get(f"{CONVERSATIONS}/{project}").status_code == 200
        with session_scope() as session:
            for token in auth.list_tokens(session, auth.get_user(session, acct.name)):
                assert token.id is not None
                auth.revoke_token(session, token.id)
        assert Rest(stack, acct).get(f"{CONVERSATIONS}/{project}").status_code == 401

    def test_non_bearer_scheme_is_401(self, stack: Stack, acct: Account, project: str) -> None:
        resp = httpx.get(
            f"{stack.api.base_url}{CONVERSATIONS}/{project}",
            headers={"Authorization": f"Basic {acct.token}"},
        )
        assert resp.status_code == 401


# ---- live sessions --------------------------------------------------------------------------


def sessions_of(rest: Rest) -> list[str]:
    resp = rest.get(SESSIONS)
    assert resp.status_code == 200
    listing: list[str] = resp.json()
    return listing


class TestSessions:
    def test_session_listed_while_open_and_gone_after_close(
        self, stack: Stack, acct: Account, rest: Rest, project: str, other_project: str
    ) -> None:
        assert sessions_of(rest) == []
        with (
            WsClient(ws_url(stack, project), acct.token) as ws,
            WsClient(ws_url(stack, other_project), acct.token) as ws2,
        ):
            conv_id = ws.start()
            ws2.start()
            assert sessions_of(rest) == sorted([project, other_project])
            resp = rest.get(f"{SESSIONS}/{project}")
            assert resp.status_code == 200
            info = resp.json()
            assert set(info) == fields(SessionInfo)
            assert info == {"project_name": project, "conversation_id": conv_id, "is_active": True}
        wait_until(lambda: sessions_of(rest) == [], "the closed sessions to be unlisted")
        assert rest.get(f"{SESSIONS}/{project}").status_code == 404

    def test_connection_without_start_is_not_a_session(
        self, stack: Stack, acct: Account, rest: Rest, project: str
    ) -> None:
        with WsClient(ws_url(stack, project), acct.token) as ws:
            ws.send(type="ping")
            assert ws.recv() == {"type": "pong"}
            assert sessions_of(rest) == []
            assert rest.get(f"{SESSIONS}/{project}").status_code == 404

    def test_session_follows_the_conversation_it_switched_to(
        self, stack: Stack, acct: Account, rest: Rest, project: str
    ) -> None:
        earlier = chat(stack, acct, project)
        with WsClient(ws_url(stack, project), acct.token) as ws:
            ws.start()
            assert ws.start(earlier) == earlier
            assert rest.get(f"{SESSIONS}/{project}").json()["conversation_id"] == earlier

    def test_delete_closes_the_open_websocket(
        self, stack: Stack, acct: Account, rest: Rest, project: str
    ) -> None:
        with WsClient(ws_url(stack, project), acct.token) as ws:
            ws.start()
            resp = rest.delete(f"{SESSIONS}/{project}")
            assert resp.status_code == 200
            assert set(resp.json()) == fields(Success) and resp.json()["success"] is True
            assert ws.until_closed()[1] == 1000
        wait_until(lambda: sessions_of(rest) == [], "the closed session to be unlisted")
        assert rest.delete(f"{SESSIONS}/{project}").status_code == 404

    def test_delete_closes_only_that_projects_sessions(
        self, stack: Stack, acct: Account, rest: Rest, project: str, other_project: str
    ) -> None:
        with (
            WsClient(ws_url(stack, project), acct.token) as doomed,
            WsClient(ws_url(stack, other_project), acct.token) as kept,
        ):
            doomed.start()
            kept.start()
            assert rest.delete(f"{SESSIONS}/{project}").status_code == 200
            assert doomed.until_closed()[1] == 1000
            kept.send(type="ping")
            assert kept.recv() == {"type": "pong"}
            assert sessions_of(rest) == [other_project]

    def test_delete_without_a_session_is_404(self, rest: Rest, project: str) -> None:
        resp = rest.delete(f"{SESSIONS}/{project}")
        assert resp.status_code == 404
        assert resp.json() == {"detail": "No active session for this project"}

    def test_a_reply_goes_on_after_its_session_is_closed(
        self, stack: Stack, acct: Account, rest: Rest, project: str
    ) -> None:
        with WsClient(ws_url(stack, project), acct.token) as ws:
            conv_id = ws.start()
            ws.send(type="message", content="Keep going [[text:20]] [[slow:30]]")
            ws.recv_until(lambda m: m["type"] == "text")
            assert rest.delete(f"{SESSIONS}/{project}").status_code == 200
            assert ws.until_closed()[1] == 1000

        def finished() -> bool:
            reply = rest.get(f"{CONVERSATIONS}/{project}/{conv_id}").json()["messages"][-1]
            return bool(reply["role"] == "assistant" and reply["status"] == "complete")

        wait_until(finished, "the reply to be completed and saved", timeout=20)
        reply = rest.get(f"{CONVERSATIONS}/{project}/{conv_id}").json()["messages"][-1]
        assert reply["content"].endswith("word20")


# ---- projects -------------------------------------------------------------------------------


@pytest.fixture
def admin() -> Account:
    return make_account(admin=True)


@pytest.fixture
def admin_rest(stack: Stack, admin: Account) -> Rest:
    return Rest(stack, admin)


def new_name() -> str:
    return f"rest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def registered(admin_rest: Rest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A project registered over REST; unregistered afterwards if still there."""
    root = tmp_path / "registered"
    root.mkdir()
    (root / "notes.txt").write_text("hello\n")
    name = new_name()
    resp = admin_rest.post("/api/projects", json={"name": name, "path": str(root)})
    assert resp.status_code == 201, resp.text
    yield name, root
    admin_rest.delete(f"/api/projects/{name}")


class TestProjects:
    def test_list_shows_registered_projects(
        self, rest: Rest, admin_rest: Rest, project: str, project_dir: Path
    ) -> None:
        resp = rest.get("/api/projects")
        assert resp.status_code == 200
        listing = resp.json()
        for p in listing:
            assert set(p) == fields(ProjectPublic)
        (mine,) = [p for p in listing if p["name"] == project]
        assert mine["path"] is None  # server paths: administrators only
        (as_admin,) = [p for p in admin_rest.get("/api/projects").json() if p["name"] == project]
        assert as_admin["path"] == str(project_dir.resolve())
        assert_iso(mine["created_at"])
        names = [p["name"] for p in listing]
        assert names == sorted(names)

    def test_admin_registers_a_directory(
        self, admin_rest: Rest, registered: tuple[str, Path]
    ) -> None:
        name, root = registered
        (listed,) = [p for p in admin_rest.get("/api/projects").json() if p["name"] == name]
        assert listed["path"] == str(root.resolve())

    def test_created_response_shape(self, admin_rest: Rest, tmp_path: Path) -> None:
        name = new_name()
        resp = admin_rest.post("/api/projects", json={"name": name, "path": str(tmp_path)})
        assert resp.status_code == 201
        body = resp.json()
        assert set(body) == fields(ProjectPublic)
        assert body["name"] == name and body["path"] == str(tmp_path.resolve())
        assert_iso(body["created_at"])
        admin_rest.delete(f"/api/projects/{name}")

    def test_registered_project_is_usable_then_gone_after_delete(
        self, stack: Stack, admin: Account, admin_rest: Rest, registered: tuple[str, Path]
    ) -> None:
        name, _ = registered
        with WsClient(ws_url(stack, name), admin.token) as ws:
            ws.start()
            frames = ws.ask('[[tool:Read {"file_path": "notes.txt"}]]')
        assert "notes.txt" in text_of(frames)

        resp = admin_rest.delete(f"/api/projects/{name}")
        assert resp.status_code == 200 and resp.json()["success"] is True
        assert name not in [p["name"] for p in admin_rest.get("/api/projects").json()]
        assert admin_rest.delete(f"/api/projects/{name}").status_code == 404
        with WsClient(ws_url(stack, name), admin.token) as ws:
            frame = ws.recv()
            assert frame == {"type": "error", "content": "Project not found"}

    def test_duplicate_name_is_409(
        self, admin_rest: Rest, registered: tuple[str, Path], tmp_path: Path
    ) -> None:
        name, _ = registered
        resp = admin_rest.post("/api/projects", json={"name": name, "path": str(tmp_path)})
        assert resp.status_code == 409

    @pytest.mark.parametrize(
        "path",
        ["/etc", "/etc/ssl", "/usr/lib", "/", "/definitely/not/here", "", "relative/missing"],
    )
    def test_unsafe_or_missing_path_is_400(self, admin_rest: Rest, path: str) -> None:
        name = new_name()
        resp = admin_rest.post("/api/projects", json={"name": name, "path": path})
        assert resp.status_code == 400, resp.text
        assert name not in [p["name"] for p in admin_rest.get("/api/projects").json()]

    def test_file_instead_of_directory_is_400(self, admin_rest: Rest, tmp_path: Path) -> None:
        file = tmp_path / "file.txt"
        file.write_text("x")
        resp = admin_rest.post("/api/projects", json={"name": new_name(), "path": str(file)})
        assert resp.status_code == 400

    def test_invalid_name_is_400(self, admin_rest: Rest, tmp_path: Path) -> None:
        resp = admin_rest.post("/api/projects", json={"name": "bad.name!", "path": str(tmp_path)})
        assert resp.status_code == 400

    def test_missing_fields_are_422(self, admin_rest: Rest) -> None:
        assert admin_rest.post("/api/projects", json={"name": new_name()}).status_code == 422

    def test_normal_user_cannot_register_or_remove(
        self, rest: Rest, registered: tuple[str, Path], tmp_path: Path
    ) -> None:
        name, _ = registered
        added = new_name()
        resp = rest.post("/api/projects", json={"name": added, "path": str(tmp_path)})
        assert resp.status_code == 403
        assert rest.delete(f"/api/projects/{name}").status_code == 403
        names = [p["name"] for p in rest.get("/api/projects").json()]
        assert name in names and added not in names


# ---- health ---------------------------------------------------------------------------------


def test_healthz_is_liveness_and_readyz_checks_the_dependencies(stack: Stack) -> None:
    resp = httpx.get(f"{stack.api.base_url}/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}
    ready = httpx.get(f"{stack.api.base_url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {**ready.json(), "database": "ok", "redis": "ok", "missing": []}
