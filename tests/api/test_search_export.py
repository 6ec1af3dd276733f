"""Search, rename and export over the real API: words from answers found only by their owner,
a rename that stands and is found, exports that hold every message of every branch."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from api.search_schemas import SearchResult
from shared import conversations as convs
from shared.db import session_scope
from shared.models import Conversation, Message, Turn, TurnStatus
from tests.support.client import WsClient
from tests.support.data import Account, make_account, make_project
from tests.support.processes import Stack

CONVERSATIONS = "/api/assistant/conversations"
SEARCH = "/api/assistant/search"
NOT_FOUND = {"detail": "Conversation not found"}


def say(text: str) -> str:
    """A directive making the stand-in answer `text` without the words being in the question."""
    return f"[[say64:{base64.b64encode(text.encode()).decode()}]]"


def chat(stack: Stack, acct: Account, project: str, *questions: str) -> int:
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        conv_id = ws.start()
        for question in questions:
            assert ws.ask(question)[-1]["type"] == "response_done"
    return conv_id


def get(stack: Stack, acct: Account | None, path: str, **params: Any) -> httpx.Response:
    headers = acct.headers if acct else {}
    return httpx.get(stack.api.base_url + path, headers=headers, params=params, timeout=10)


def patch(stack: Stack, acct: Account, path: str, body: Any) -> httpx.Response:
    return httpx.patch(stack.api.base_url + path, headers=acct.headers, json=body, timeout=10)


def find(stack: Stack, acct: Account, q: str, **params: Any) -> list[dict[str, Any]]:
    resp = get(stack, acct, SEARCH, q=q, **params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["query"] == q
    results: list[dict[str, Any]] = body["results"]
    for result in results:
        assert set(result) == set(SearchResult.model_fields)
    return results


def stored(conv_id: int) -> list[Message]:
    with session_scope() as s:
        return convs.messages_of(s, conv_id)


def matched_words(result: dict[str, Any]) -> list[str]:
    return [seg["text"].lower() for seg in result["snippet"] if seg["match"]]


@pytest.fixture
def alice() -> Account:
    return make_account()


@pytest.fixture
def bob() -> Account:
    return make_account()


@pytest.fixture
def project(project_dir: Path) -> str:
    return make_project(project_dir)


class TestSearch:
    def test_a_word_from_an_answer_is_found_never_another_users(
        self, stack: Stack, alice: Account, bob: Account, project: str, tmp_path: Path
    ) -> None:
        question = "Where is it? " + say("The zanzibar gizmo is here.")
        conv = chat(stack, alice, project, question)
        bobs = chat(stack, bob, project, "And mine? " + say("Bob's zanzibar is elsewhere."))
        reply = stored(conv)[-1]
        assert reply.role == "assistant" and "zanzibar" in reply.content

        (hit,) = find(stack, alice, "Zanzibar")
        assert hit["message_id"] == reply.id
        assert hit["conversation_id"] == conv
        assert hit["project_name"] == project
        assert hit["conversation_title"] == convs.title_for(question)
        assert hit["role"] == "assistant"
        assert matched_words(hit) == ["zanzibar"]
        assert "gizmo" in "".join(seg["text"] for seg in hit["snippet"])
        assert isinstance(hit["rank"], float) and hit["rank"] > 0
        assert hit["created_at"].endswith("+00:00")

        (bob_hit,) = find(stack, bob, "zanzibar")
        assert bob_hit["conversation_id"] == bobs
        # Per project: this one has it, another one not.
        other = make_project(tmp_path)
        assert [h["message_id"] for h in find(stack, alice, "zanzibar", project=project)] == [
            reply.id
        ]
        assert find(stack, alice, "zanzibar", project=other) == []

    def test_nothing_searchable_is_no_results_and_bad_parameters_are_refused(
        self, stack: Stack, alice: Account, project: str
    ) -> None:
        chat(stack, alice, project, "hello " + say("the station is near"))
        for hostile in ['"', "*", "NEAR(", "-", "'", "\\", "(:*)", ""]:
            results = find(stack, alice, hostile)
            # Only NEAR is a word (and in the answer); the rest is nothing to search.
            assert len(results) == (1 if hostile == "NEAR(" else 0), hostile
        for params in ({"q": "x", "limit": 0}, {"q": "x", "limit": 51}, {"q": "x" * 501}, {}):
            assert get(stack, alice, SEARCH, **params).status_code == 422, params
        assert get(stack, alice, SEARCH, q="x", project="../etc").status_code == 400
        assert get(stack, None, SEARCH, q="x").status_code == 401

    def test_limit_keeps_the_best(self, stack: Stack, alice: Account, project: str) -> None:
        chat(
            stack,
            alice,
            project,
            "one " + say("quokka"),
            "two " + say("quokka quokka quokka"),
            "three " + say("quokka quokka"),
        )
        replies = [m for m in stored_of(alice) if m.role == "assistant" and m.turn_id]
        best, second = replies[1], replies[2]
        assert [h["message_id"] for h in find(stack, alice, "quokka", limit=2)] == [
            best.id,
            second.id,
        ]


def stored_of(acct: Account) -> list[Message]:
    with session_scope() as s:
        return list(
            s.exec(
                select(Message)
                .join(Conversation, Conversation.id == Message.conversation_id)  # type: ignore[arg-type]
                .where(Conversation.user_id == acct.user_id)
                .order_by(Message.id)  # type: ignore[arg-type]
            ).all()
        )


class TestRename:
    def test_a_rename_stands_and_is_found(
        self, stack: Stack, alice: Account, bob: Account, project: str
    ) -> None:
        conv = chat(stack, alice, project, "first question [[text:2]]")
        path = f"{CONVERSATIONS}/{project}/{conv}"
        resp = patch(stack, alice, path, {"title": "  Budget review\nfor Q3  "})
        assert resp.status_code == 200, resp.text
        summary = resp.json()
        assert summary["id"] == conv and summary["title"] == "Budget review for Q3"
        assert summary["message_count"] == 3
        with session_scope() as s:
            row = s.get(Conversation, conv)
            assert row is not None and row.title_source == "user"

        # Another turn does not retitle it; the listing and the detail show it.
        with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", alice.token) as ws:
            ws.start(conv)
            assert ws.ask("second question [[text:2]]")[-1]["type"] == "response_done"
        assert get(stack, alice, path).json()["title"] == "Budget review for Q3"
        listing = get(stack, alice, f"{CONVERSATIONS}/{project}").json()
        assert [c["title"] for c in listing] == ["Budget review for Q3"]

        (hit,) = find(stack, alice, "budget")
        assert hit["message_id"] is None and hit["role"] is None
        assert hit["conversation_id"] == conv
        assert hit["snippet"][0] == {"text": "Budget", "match": True}
        assert find(stack, bob, "budget") == []

    def test_invalid_titles_and_other_peoples_conversations_are_refused(
        self, stack: Stack, alice: Account, bob: Account, project: str
    ) -> None:
        conv = chat(stack, alice, project, "original title [[text:2]]")
        path = f"{CONVERSATIONS}/{project}/{conv}"
        for body in ({"title": ""}, {"title": "   \n "}, {"title": "x" * 101}, {}, {"title": 5}):
            assert patch(stack, alice, path, body).status_code == 422, body
        assert patch(stack, alice, path, {"title": "y" * 100}).status_code == 200
        resp = patch(stack, bob, path, {"title": "mine now"})
        assert (resp.status_code, resp.json()) == (404, NOT_FOUND)
        missing = f"{CONVERSATIONS}/{project}/{conv + 10**6}"
        assert patch(stack, alice, missing, {"title": "t"}).status_code == 404
        assert get(stack, alice, path).json()["title"] == "y" * 100


# ---- export ------------------------------------------------------------------------------------


def add_turn(conv_id: int, parent_id: int | None, question: str, answer: str) -> tuple[int, int]:
    """A finished exchange written straight to the database, at a chosen point of the tree
    (what editing a question or regenerating a reply leaves behind)."""
    with session_scope() as s:
        conv = s.get(Conversation, conv_id)
        assert conv is not None
        turn = convs.start_turn(s, conv, question).turn
        q = s.get(Message, turn.user_message_id)
        assert q is not None and q.id is not None
        q.parent_id = parent_id
        turn.status = TurnStatus.complete
        a = Message(
            conversation_id=conv_id,
            parent_id=q.id,
            role="assistant",
            content=answer,
            turn_id=turn.id,
            model="claude-test",
            input_tokens=7,
            output_tokens=11,
            cost_usd=0.25,
        )
        s.add_all([q, turn, a])
        s.flush()
        assert a.id is not None
        return q.id, a.id


def regenerate(conv_id: int, question_id: int, answer: str) -> int:
    """Another reply to the same question: a sibling of its first reply."""
    with session_scope() as s:
        q = s.get(Message, question_id)
        assert q is not None
        turn = Turn(conversation_id=conv_id, user_id=_owner(s, conv_id), user_message_id=q.id or 0)
        turn.status = TurnStatus.complete
        s.add(turn)
        s.flush()
        a = Message(
            conversation_id=conv_id,
            parent_id=question_id,
            role="assistant",
            content=answer,
            turn_id=turn.id,
            input_tokens=3,
            output_tokens=5,
            cache_read_tokens=2,
            cache_write_tokens=1,
            cost_usd=0.5,
        )
        s.add(a)
        s.flush()
        assert a.id is not None
        return a.id


def _owner(s: Any, conv_id: int) -> int:
    conv = s.get(Conversation, conv_id)
    assert conv is not None
    return int(conv.user_id)


def set_leaf(conv_id: int, message_id: int) -> None:
    with session_scope() as s:
        conv = s.get(Conversation, conv_id)
        assert conv is not None
        conv.active_leaf_id = message_id
        s.add(conv)


@pytest.fixture
def branched(stack: Stack, alice: Account, project: str) -> dict[str, int]:
    """greeting -> q1 (a tool call) -> a1 -> q2 -> a2 | a2b (regenerated);
    greeting -> q1b (q1 edited) -> a1b. The ids by name, and the conversation's."""
    conv = chat(stack, alice, project, '[[tool:Read {"file_path": "README.md"}]]')
    greeting, q1, a1 = stored(conv)
    assert a1.tool_calls and a1.id is not None and q1.id is not None
    # The chat's messages as a straight line (as the chat stores them; kept explicit here).
    with session_scope() as s:
        for msg, parent in ((q1, greeting.id), (a1, q1.id)):
            row = s.get(Message, msg.id)
            assert row is not None
            row.parent_id = parent
            s.add(row)
    q2, a2 = add_turn(conv, a1.id, "What does main return?", "It returns 42 (src/app.py:2).")
    a2b = regenerate(conv, q2, "main() gives back the number 42.")
    q1b, a1b = add_turn(conv, greeting.id, "Edited: list the files", "README.md and src/app.py.")
    assert greeting.id is not None
    return {
        "conv": conv,
        "greeting": greeting.id,
        "q1": q1.id,
        "a1": a1.id,
        "q2": q2,
        "a2": a2,
        "a2b": a2b,
        "q1b": q1b,
        "a1b": a1b,
    }


class TestExport:
    def test_json_round_trips_every_message_and_branch(
        self, stack: Stack, alice: Account, project: str, branched: dict[str, int]
    ) -> None:
        conv = branched["conv"]
        set_leaf(conv, branched["q2"])
        resp = get(stack, alice, f"{CONVERSATIONS}/{project}/{conv}/export", format="json")
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/json"
        disposition = resp.headers["content-disposition"]
        assert disposition.startswith("attachment; filename=") and disposition.endswith('.json"')
        doc = resp.json()
        assert doc["format_version"] == 1 and doc["exported_at"].endswith("+00:00")

        rows = stored(conv)
        with session_scope() as s:
            conv_row = s.get(Conversation, conv)
            assert conv_row is not None
        assert doc["conversation"] == {
            "id": conv,
            "project_name": project,
            "title": conv_row.title,
            "title_source": "auto",
            "created_at": conv_row.created_at.replace(tzinfo=None).isoformat() + "+00:00",
            "updated_at": conv_row.updated_at.replace(tzinfo=None).isoformat() + "+00:00",
            "active_leaf_id": branched["q2"],
        }
        # Every stored message, every field, as stored.
        assert [m["id"] for m in doc["messages"]] == [r.id for r in rows]
        for got, row in zip(doc["messages"], rows, strict=True):
            expected = {
                name: getattr(row, name)
                for name in (
                    "id",
                    "parent_id",
                    "role",
                    "content",
                    "status",
                    "tool_calls",
                    "references",
                    "stop_reason",
                    "turn_id",
                    "model",
                    "input_tokens",
                    "output_tokens",
                    "cache_read_tokens",
                    "cache_write_tokens",
                    "cost_usd",
                )
            }
            expected["created_at"] = row.created_at.replace(tzinfo=None).isoformat() + "+00:00"
            assert got == expected
        # The tree rebuilt from the JSON alone: both branches are there.
        children: dict[int | None, list[int]] = {}
        for m in doc["messages"]:
            children.setdefault(m["parent_id"], []).append(m["id"])
        assert children[None] == [branched["greeting"]]
        assert children[branched["greeting"]] == [branched["q1"], branched["q1b"]]
        assert children[branched["q2"]] == [branched["a2"], branched["a2b"]]
        assert any(c["tool"] == "Read" for c in doc["messages"][2]["tool_calls"])
        # The path shown: the leaf's ancestors, then its newest reply.
        assert doc["active_path"] == [branched[k] for k in ("greeting", "q1", "a1", "q2", "a2b")]
        assert doc["usage"] == {
            "input_tokens": sum(r.input_tokens for r in rows),
            "output_tokens": sum(r.output_tokens for r in rows),
            "cache_read_tokens": sum(r.cache_read_tokens for r in rows),
            "cache_write_tokens": sum(r.cache_write_tokens for r in rows),
            "cost_usd": pytest.approx(sum(r.cost_usd for r in rows)),
        }
        assert doc["usage"]["input_tokens"] >= 7 + 3 + 7  # a2, a2b, a1b at least

    def test_markdown_has_the_active_path_with_tools_and_usage(
        self, stack: Stack, alice: Account, project: str, branched: dict[str, int]
    ) -> None:
        conv = branched["conv"]
        url = f"{CONVERSATIONS}/{project}/{conv}/export"
        set_leaf(conv, branched["q2"])
        resp = get(stack, alice, url)  # Markdown is the default
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/markdown; charset=utf-8"
        disposition = resp.headers["content-disposition"]
        assert disposition.startswith(f'attachment; filename="conversation-{conv}')
        assert disposition.endswith('.md"')
        md = resp.text
        assert md.startswith("# ")
        order = [
            md.index("## Assistant"),  # the greeting
            md.index("Tools used:"),
            md.index('- `Read` `{"file_path": "README.md"}`'),
            md.index("What does main return?"),
            md.index("main() gives back the number 42."),
        ]
        assert order == sorted(order), md
        assert "README.md" in md
        # Only the path: not the other reply to q2, not the edited branch.
        assert "It returns 42" not in md and "Edited: list the files" not in md
        assert "*Usage: 3 input, 5 output, 2 cache read, 1 cache write tokens; $0.5000.*" in md
        assert "Conversation total (every branch)" in md

        # Switched to the edited branch, the export follows.
        set_leaf(conv, branched["a1b"])
        md = get(stack, alice, url, format="markdown").text
        assert "Edited: list the files" in md and "README.md and src/app.py." in md
        assert "What does main return?" not in md and "Tools used:" not in md

    def test_others_and_bad_formats_are_refused(
        self, stack: Stack, alice: Account, bob: Account, project: str
    ) -> None:
        conv = chat(stack, alice, project, "mine [[text:2]]")
        url = f"{CONVERSATIONS}/{project}/{conv}/export"
        for fmt in ("markdown", "json"):
            resp = get(stack, bob, url, format=fmt)
            assert (resp.status_code, resp.json()) == (404, NOT_FOUND)
        assert get(stack, alice, url, format="pdf").status_code == 422
        assert get(stack, None, url).status_code == 401
        # A conversation straight from the chat exports too, whatever parents it stored.
        doc = json.loads(get(stack, alice, url, format="json").text)
        assert len(doc["messages"]) == 3 and doc["active_path"]
