"""A project's extra tools through the real stack: autocoder's backlog, the web tools, and the
checked file references of a reply."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from shared import projects
from shared.backlog import READ_TOOLS, WRITE_TOOLS, WRITES_DISABLED
from shared.db import session_scope
from shared.devtools.demo_model import DemoModelServer
from tests.support.backlog import make_features_db, rows
from tests.support.client import WsClient, text_of
from tests.support.data import make_account, make_project
from tests.support.model_log import answered, system_text
from tests.support.processes import Stack
from tests.worker.test_faults import assert_clean_sequence, stored_turn

DARK_MODE = {
    "category": "UI",
    "name": "Dark mode",
    "description": "A dark theme that follows the system setting.",
    "steps": ["Add a theme switch", "Respect prefers-color-scheme"],
}


def chat(stack: Stack, project: str, question: str) -> list[dict[str, Any]]:
    acct = make_account()
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        ws.start()
        return assert_clean_sequence(ws.ask(question))


def set_options(project: str, **switches: bool) -> None:
    with session_scope() as session:
        projects.set_options(session, project, **switches)


def tool_names(body: dict[str, Any]) -> list[str]:
    return [t["name"] for t in body["tools"]]


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        block
        for msg in body["messages"]
        if isinstance(msg["content"], list)
        for block in msg["content"]
        if block.get("type") == "tool_result"
    ]


class TestBacklog:
    def test_what_next_is_answered_from_the_backlog(
        self, stack: Stack, project_dir: Path, model: DemoModelServer
    ) -> None:
        make_features_db(project_dir)
        project = make_project(project_dir)
        turn = chat(stack, project, "What should be built next? [[tool:feature_get_next]]")
        assert next(f for f in turn if f["type"] == "tool_call")["tool"] == "feature_get_next"
        first, second = (r["body"] for r in answered(model.url, project))
        assert tool_names(first)[-3:] == list(READ_TOOLS)  # no write tools without the switch
        assert "feature backlog" in system_text(first)
        assert "cannot change the backlog" in system_text(first)
        result = tool_results(second)[-1]
        assert not result.get("is_error")
        assert json.loads(result["content"])["name"] == "Settings page"
        _, replies = stored_turn(turn[0]["turn_id"])
        assert replies[0].tool_calls == [{"tool": "feature_get_next", "input": {}}]

    def test_adding_a_feature_is_refused_politely_without_the_switch(
        self, stack: Stack, project_dir: Path, model: DemoModelServer
    ) -> None:
        db = make_features_db(project_dir)
        before = rows(db)
        project = make_project(project_dir)
        ask = f"Add a feature for dark mode [[tool:feature_create {json.dumps(DARK_MODE)}]]"
        turn = chat(stack, project, ask)
        assert turn[-1]["type"] == "response_done"
        result = tool_results(answered(model.url, project)[-1]["body"])[-1]
        assert result["is_error"] is True and WRITES_DISABLED in result["content"]
        assert "backlog changes are not enabled" in text_of(turn)  # the stand-in quotes it
        assert rows(db) == before

    def test_adding_a_feature_works_where_an_admin_enabled_writes(
        self, stack: Stack, project_dir: Path, model: DemoModelServer
    ) -> None:
        db = make_features_db(project_dir)
        project = make_project(project_dir)
        set_options(project, backlog_writes=True)
        ask = f"Add a feature for dark mode [[tool:feature_create {json.dumps(DARK_MODE)}]]"
        turn = chat(stack, project, ask)
        assert turn[-1]["type"] == "response_done"
        body = answered(model.url, project)[0]["body"]
        assert tool_names(body)[-6:] == [*READ_TOOLS, *WRITE_TOOLS]
        assert "you may add features" in system_text(body)
        added = rows(db)[-1]
        assert (added["name"], added["priority"], added["passes"]) == ("Dark mode", 6, 0)
        assert json.loads(added["steps"]) == DARK_MODE["steps"]

    def test_no_backlog_no_backlog_tools(
        self, stack: Stack, project_dir: Path, model: DemoModelServer
    ) -> None:
        project = make_project(project_dir)
        set_options(project, backlog_writes=True)
        chat(stack, project, "[[text:2]]")
        body = answered(model.url, project)[-1]["body"]
        assert not [n for n in tool_names(body) if n.startswith("feature_")]
        assert "backlog" not in system_text(body)


class TestWebTools:
    def test_web_search_streams_as_a_tool_call_where_enabled(
        self, stack: Stack, project_dir: Path, model: DemoModelServer
    ) -> None:
        project = make_project(project_dir)
        set_options(project, web=True)
        turn = chat(stack, project, "How do other projects do it? [[web_search:fastapi sse]]")
        calls = [f for f in turn if f["type"] == "tool_call"]
        assert [(c["tool"], c["input"]) for c in calls] == [
            ("web_search", {"query": "fastapi sse"})
        ]
        assert 'Web search "fastapi sse": 2 results' in text_of(turn)
        body = answered(model.url, project)[-1]["body"]
        server = [t for t in body["tools"] if "type" in t]
        assert [(t["type"], t["name"]) for t in server] == [
            ("web_search_20250305", "web_search"),
            ("web_fetch_20250910", "web_fetch"),
        ]
        assert "web_search" in system_text(body)
        _, replies = stored_turn(turn[0]["turn_id"])
        assert replies[0].tool_calls == [{"tool": "web_search", "input": {"query": "fastapi sse"}}]

    def test_web_fetch_with_a_paused_turn(
        self, stack: Stack, project_dir: Path, model: DemoModelServer
    ) -> None:
        project = make_project(project_dir)
        set_options(project, web=True)
        url = "https://example.org/guide"
        turn = chat(stack, project, f"[[web_fetch:{url}]] [[stop:pause_turn]]")
        assert [(f["tool"], f["input"]) for f in turn if f["type"] == "tool_call"] == [
            ("web_fetch", {"url": url})
        ]
        assert turn[-1]["type"] == "response_done"
        first, resumed = (r["body"] for r in answered(model.url, project))
        # The paused content went back as it came, server tool call and result included.
        sent_back = resumed["messages"][-1]
        assert sent_back["role"] == "assistant"
        assert [b["type"] for b in sent_back["content"]] == [
            "text",
            "server_tool_use",
            "web_fetch_tool_result",
        ]
        assert sent_back["content"][1]["input"] == {"url": url}
        assert len(first["messages"]) == len(resumed["messages"]) - 1

    def test_no_web_tools_unless_enabled(
        self, stack: Stack, project_dir: Path, model: DemoModelServer
    ) -> None:
        project = make_project(project_dir)
        turn = chat(stack, project, "[[web_search:anything]]")
        assert [f for f in turn if f["type"] == "tool_call"] == []
        assert "(web_search is not available here)" in text_of(turn)
        body = answered(model.url, project)[-1]["body"]
        assert not [t for t in body["tools"] if "type" in t]
        assert "web_search" not in system_text(body)


def test_references_are_checked_and_returned(stack: Stack, project_dir: Path) -> None:
    project = make_project(project_dir)
    acct = make_account()
    said = (
        "The entry point is `src/app.py:1-2`, described in README.md:1; `src/app.py:3` and "
        "`gone.py:1` do not exist. Served at http://localhost:8000/src/app.py:1 since 12:30, "
        "version 1.2.3:4."
    )
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        conversation_id = ws.start()
        turn = assert_clean_sequence(ws.ask(f"[[say:{said}]]"))
    expected = [
        {"path": "src/app.py", "start": 1, "end": 2, "verified": True},
        {"path": "README.md", "start": 1, "end": 1, "verified": True},
        {"path": "src/app.py", "start": 3, "end": 3, "verified": False},
        {"path": "gone.py", "start": 1, "end": 1, "verified": False},
    ]
    assert text_of(turn) == said
    assert turn[-1]["references"] == expected
    _, replies = stored_turn(turn[0]["turn_id"])
    assert replies[0].references == expected
    detail = httpx.get(
        f"{stack.api.base_url}/api/assistant/conversations/{project}/{conversation_id}",
        headers=acct.headers,
        timeout=10,
    ).json()
    reply = detail["messages"][-1]
    assert (reply["references"], reply["stop_reason"]) == (expected, "end_turn")
    assert detail["messages"][-2]["references"] is None  # the question has none


def test_a_new_user_asks_the_offline_demo_about_the_backlog(
    stack: Stack, project_dir: Path
) -> None:
    """As tried by hand with `assistant dev` and no API key: no directives, plain questions."""
    db = make_features_db(project_dir)
    project = make_project(project_dir)
    nxt = chat(stack, project, "What should be built next?")
    assert [f["tool"] for f in nxt if f["type"] == "tool_call"] == ["feature_get_next"]
    assert "The next feature to build is **Settings page**" in text_of(nxt)

    refused = chat(stack, project, "Add a feature for dark mode")
    assert [f for f in refused if f["type"] == "tool_call"] == []
    assert "Backlog changes are not enabled for this project" in text_of(refused)
    assert f"assistant projects set {project} --backlog-writes on" in text_of(refused)
    assert len(rows(db)) == 5

    set_options(project, backlog_writes=True)
    added = chat(stack, project, "Add a feature for dark mode")
    assert [f["tool"] for f in added if f["type"] == "tool_call"] == ["feature_create"]
    assert "I added **Dark mode** to the backlog (id 6, priority 6)" in text_of(added)
    assert rows(db)[-1]["name"] == "Dark mode"
