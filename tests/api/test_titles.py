"""Titles written by the title model after a conversation's first reply, through the real stack.

These run their own API and worker with a title model (the shared test stack keeps the first
50 characters, ASSISTANT_TITLE_MODEL=off, which other tests check), on their own Redis and
database (`isolated`), so no other worker takes their turns. The worker logs what became of
each title; the tests wait on those lines, never on time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from shared.conversations import title_for
from shared.db import session_scope
from shared.devtools.demo_model import DemoModelServer
from shared.devtools.demo_model.titles import TITLE_MARK
from shared.models import Conversation, TitleSource
from tests.support.client import WsClient
from tests.support.data import make_account, make_project
from tests.support.processes import Proc, StackFactory, wait_for

TITLES_ON = {"ASSISTANT_TITLE_MODEL": "claude-haiku-4-5"}


def conversation(conv_id: int) -> Conversation:
    with session_scope() as s:
        conv = s.get(Conversation, conv_id)
        assert conv is not None
        return conv


def title_requests(model: DemoModelServer, question: str) -> list[dict[str, Any]]:
    recorded = httpx.get(f"{model.url}/_requests", timeout=10).json()
    return [
        r
        for r in recorded
        if str(r["body"].get("system", "")).startswith(TITLE_MARK)
        and f"<question>{question}</question>" in r["body"]["messages"][-1]["content"]
    ]


def logged(worker: Proc, turn_id: int, pattern: str) -> None:
    """Wait for the worker's line about this turn's title (`turn 12: ...`, not `turn 123`)."""
    line = re.compile(rf"turn {turn_id}: {pattern}")
    wait_for(lambda: line.search(worker.log()), 20, f"the worker to log '{pattern}'")


def test_the_title_model_titles_a_conversation_after_its_first_reply_only(
    isolated: StackFactory, project_dir: Path, model: DemoModelServer
) -> None:
    stack = isolated.stack(TITLES_ON)
    question = "Where is the entry point defined in this project? [[text:3]] [[title-stall:4]]"
    acct, project = make_account(), make_project(project_dir)
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        conv_id = ws.start()
        done = ws.ask(question)[-1]
        assert done["type"] == "response_done" and done["status"] == "complete"
        # The reply ended while the (slow) title model was still writing: off its path.
        assert conversation(conv_id).title_source == TitleSource.auto
        assert conversation(conv_id).title == title_for(question)
        logged(stack.worker, done["turn_id"], "title written by claude-haiku-4-5")
        titled = conversation(conv_id)
        assert titled.title == "Where is the entry point defined"
        assert titled.title_source == TitleSource.model
        (request,) = title_requests(model, question)
        assert request["body"]["model"] == "claude-haiku-4-5"
        assert "tools" not in request["body"]

        # A later reply does not title it again.
        assert ws.ask("And the tests? [[text:2]]")[-1]["type"] == "response_done"
    assert conversation(conv_id).title == "Where is the entry point defined"
    listing = httpx.get(
        f"{stack.api.base_url}/api/assistant/conversations/{project}", headers=acct.headers
    ).json()
    assert [c["title"] for c in listing] == ["Where is the entry point defined"]


def test_a_title_the_user_set_is_never_replaced(
    isolated: StackFactory, project_dir: Path, model: DemoModelServer
) -> None:
    stack = isolated.stack(TITLES_ON)
    acct, project = make_account(), make_project(project_dir)
    question = "Rename me while you answer [[text:30]] [[slow:20]]"
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        conv_id = ws.start()
        ws.send(type="message", content=question)
        ws.recv_until(lambda m: m["type"] == "text")
        # The user renames it while the first reply streams (what PATCH stores).
        with session_scope() as s:
            conv = s.get(Conversation, conv_id)
            assert conv is not None
            conv.title, conv.title_source = "My own title", TitleSource.user
            s.add(conv)
        done = ws.until_terminal()[-1]
    assert done["type"] == "response_done" and done["status"] == "complete"
    logged(stack.worker, done["turn_id"], r"no model title: its title is set \(user\)")
    conv = conversation(conv_id)
    assert (conv.title, conv.title_source) == ("My own title", TitleSource.user)
    assert title_requests(model, question) == []  # the title model was not even asked


def test_a_failing_title_request_keeps_the_first_50_characters(
    isolated: StackFactory, project_dir: Path, model: DemoModelServer
) -> None:
    stack = isolated.stack(TITLES_ON)
    question = "What does the main function return, and where is it? [[title-error]] [[text:4]]"
    acct, project = make_account(), make_project(project_dir)
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        conv_id = ws.start()
        done = ws.ask(question)[-1]
        assert done["type"] == "response_done" and done["status"] == "complete"
        logged(stack.worker, done["turn_id"], "title failed")
        conv = conversation(conv_id)
        assert conv.title == title_for(question) == question[:50] + "..."
        assert conv.title_source == TitleSource.auto
        assert title_requests(model, question)  # it was asked (and retried), and failed

        # Failing was only logged: the next reply comes as usual.
        again = ws.ask("Still there? [[text:2]]")[-1]
        assert again["type"] == "response_done" and again["status"] == "complete"
    assert conversation(conv_id).title == question[:50] + "..."
