"""The spine, end to end: WebSocket -> API -> Celery worker -> model stand-in -> Redis -> client."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from shared.conversations import messages_of
from shared.db import session_scope
from shared.devtools.demo_model import DemoModelServer
from shared.models import Turn
from shared.protocol import greeting
from tests.support.client import WsClient, text_of, turn_frames
from tests.support.data import make_account, make_project
from tests.support.processes import Stack


def test_new_conversation_gets_greeting_and_answer_with_tool_call(
    stack: Stack, project_dir: Path, model: DemoModelServer
) -> None:
    acct = make_account()
    project = make_project(project_dir)
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        ws.send(type="start", conversation_id=None)
        created = ws.recv()
        assert created["type"] == "conversation_created"
        greeted = ws.recv_until(lambda m: m["type"] == "response_done")
        assert text_of(greeted) == greeting(project)

        frames = ws.ask('Show me [[tool:Read {"file_path": "src/app.py"}]] please')

    turn = turn_frames(frames)
    assert [f["seq"] for f in turn] == list(range(1, len(turn) + 1))
    assert len({f["turn_id"] for f in turn}) == 1
    calls = [f for f in turn if f["type"] == "tool_call"]
    assert calls == [
        {
            "type": "tool_call",
            "tool": "Read",
            "input": {"file_path": "src/app.py"},
            "turn_id": turn[0]["turn_id"],
            "seq": calls[0]["seq"],
        }
    ]
    assert turn[-1]["type"] == "response_done" and turn[-1]["status"] == "complete"
    answer = text_of(turn)
    assert "src/app.py (lines 1-2 of 2)" in answer  # the stand-in quotes the tool result
    # What the worker sent back to the model is the real file, with line numbers.
    results = [
        block
        for req in httpx.get(f"{model.url}/_requests").json()
        for msg in req["body"]["messages"]
        if isinstance(msg["content"], list)
        for block in msg["content"]
        if block.get("type") == "tool_result" and "src/app.py" in str(block["content"])
    ]
    assert results and "2|     return 42" in str(results[-1]["content"])

    with session_scope() as session:
        stored = session.get(Turn, turn[0]["turn_id"])
        assert stored is not None and stored.status == "complete"
        msgs = messages_of(session, created["conversation_id"])
        assert [m.role for m in msgs] == ["assistant", "user", "assistant"]
        assert msgs[0].content == greeting(project)
        assert msgs[2].content == answer
        assert msgs[2].tool_calls == [{"tool": "Read", "input": {"file_path": "src/app.py"}}]


def test_conversation_lists_and_resumes_with_history(stack: Stack, project_dir: Path) -> None:
    acct = make_account()
    project = make_project(project_dir)
    url = f"{stack.api.ws_url}/api/assistant/ws/{project}"
    with WsClient(url, acct.token) as ws:
        conv_id = ws.start()
        first = ws.ask("What is this project about? [[text:5]]")
        assert text_of(first) == "word1 word2 word3 word4 word5"

    listing = httpx.get(
        f"{stack.api.base_url}/api/assistant/conversations/{project}", headers=acct.headers
    ).json()
    assert [c["id"] for c in listing] == [conv_id]
    assert listing[0]["title"] == "What is this project about? [[text:5]]"[:50]
    assert listing[0]["message_count"] == 3

    with WsClient(url, acct.token) as ws:
        ws.send(type="start", conversation_id=conv_id)
        # No greeting on resume: `response_done` alone, as the original answered.
        assert ws.recv() == {"type": "response_done", "status": "complete"}
        echoed = ws.ask("And the second question? [[echo]]")
    summary = json.loads(text_of(echoed).split("echo: ", 1)[1].split("\n")[0])
    # Real alternating history: first question, its answer, then the new question.
    assert summary["roles"] == ["user", "assistant", "user"]
    assert summary["messages"] == 3
    assert "Demo project" in summary["system"] or project in summary["system"]
