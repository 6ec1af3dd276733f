"""Usage, cost and budgets through the real stack: the tokens the model stand-in reported, summed
over a tool-use turn, on the stored reply, in `response_done` and in `GET /api/usage`; a user
at their monthly budget refused before anything is stored, one under it not."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select

from shared.db import session_scope
from shared.models import Message, Turn
from shared.usage import current_month, renews_on
from tests.support.client import WsClient, turn_frames
from tests.support.data import Account, make_account, make_project
from tests.support.model_log import answered
from tests.support.processes import REPO, Api, Stack, StackFactory

TOOL_TURN = 'Look [[tool:Read {"file_path": "src/app.py"}]] [[text:6]]'
# claude-sonnet-4-5 (the stack's model) in ASSISTANT_MODEL_PRICES: USD per million tokens.
SONNET = {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75}
BUDGET = 1  # ASSISTANT_USER_MONTHLY_TOKENS of the budget API: the first reply spends it


def reported(requests: list[dict[str, Any]]) -> dict[str, int]:
    """What the stand-in told the worker, summed over the requests it answered."""
    return {
        "input_tokens": sum(r["usage"]["input_tokens"] for r in requests),
        "output_tokens": sum(r["usage"]["output_tokens"] for r in requests),
        "cache_read_tokens": sum(r["usage"]["cache_read_input_tokens"] for r in requests),
        "cache_write_tokens": sum(r["usage"]["cache_creation_input_tokens"] for r in requests),
    }


def cost(tokens: dict[str, int]) -> float:
    return (
        tokens["input_tokens"] * SONNET["input"]
        + tokens["output_tokens"] * SONNET["output"]
        + tokens["cache_read_tokens"] * SONNET["cache_read"]
        + tokens["cache_write_tokens"] * SONNET["cache_write"]
    ) / 1_000_000


def stored(conversation_id: int) -> tuple[int, int]:
    """How many messages and turns the conversation holds."""
    with session_scope() as s:
        messages = s.exec(
            select(func.count(Message.id)).where(Message.conversation_id == conversation_id)  # type: ignore[arg-type]
        ).one()
        turns = s.exec(
            select(func.count(Turn.id)).where(Turn.conversation_id == conversation_id)  # type: ignore[arg-type]
        ).one()
    return int(messages), int(turns)


def usage_of(api: Api, acct: Account) -> dict[str, Any]:
    resp = httpx.get(f"{api.base_url}/api/usage", headers=acct.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def set_budget(name: str, tokens: str) -> str:
    """`assistant users set-budget NAME TOKENS`, the administrator's command, run for real."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "users", "set-budget", name, tokens],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def budget_api(stack_factory: StackFactory, stack: Stack) -> Iterator[Api]:
    """An API process with a monthly budget, beside the session stack (whose worker runs the
    turns): the budget is checked where a message arrives."""
    assert stack.worker.alive()
    api = stack_factory.api({"ASSISTANT_USER_MONTHLY_TOKENS": str(BUDGET)})
    try:
        yield api
    finally:
        api.stop()


def test_usage_sums_what_the_model_reported_over_a_tool_use_turn(
    stack: Stack, project_dir: Path, model: Any
) -> None:
    acct, project = make_account(), make_project(project_dir)
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        conv_id = ws.start()
        turn = turn_frames(ws.ask(TOOL_TURN))
    done = turn[-1]
    assert done["type"] == "response_done" and done["status"] == "complete"
    requests = answered(model.url, project)
    assert len(requests) == 2  # the tool call, then the answer
    tokens = reported(requests)
    assert tokens["output_tokens"] > 0
    # The stand-in caches the prompt prefix: the second round reads what the first wrote.
    assert tokens["cache_write_tokens"] > 0 and tokens["cache_read_tokens"] > 0

    # response_done: the reply's id and the turn's usage, priced from the table.
    assert {k: done["usage"][k] for k in tokens} == tokens
    assert done["usage"]["cost_usd"] == pytest.approx(cost(tokens))
    assert set(done["usage"]) == {*tokens, "cost_usd"}
    with session_scope() as s:
        reply = s.get(Message, done["message_id"])
        assert reply is not None and reply.turn_id == done["turn_id"]
        assert reply.role == "assistant" and reply.status == "complete"
        assert reply.model == "claude-sonnet-4-5"
        assert {k: getattr(reply, k) for k in tokens} == tokens
        assert reply.cost_usd == pytest.approx(cost(tokens))

    # REST: on the reply, and as the conversation's total (its only reply here).
    detail = httpx.get(
        f"{stack.api.base_url}/api/assistant/conversations/{project}/{conv_id}",
        headers=acct.headers,
        timeout=10,
    ).json()
    (shown,) = [m for m in detail["messages"] if m["id"] == done["message_id"]]
    assert {k: shown[k] for k in tokens} == tokens and shown["model"] == "claude-sonnet-4-5"
    assert shown["cost_usd"] == pytest.approx(cost(tokens))
    assert {k: detail["usage"][k] for k in tokens} == tokens
    assert detail["usage"]["cost_usd"] == pytest.approx(cost(tokens))

    # The month so far, for this user only (nobody else's turns count).
    month = usage_of(stack.api, acct)
    assert month == {
        "month": current_month(),
        "tokens": sum(tokens.values()),
        "budget": None,
        "cost_usd": pytest.approx(cost(tokens)),
        "renews_on": renews_on(current_month()).isoformat(),
    }
    assert usage_of(stack.api, make_account())["tokens"] == 0


def test_a_stopped_reply_keeps_the_usage_reported_so_far(
    stack: Stack, project_dir: Path, model: Any
) -> None:
    acct, project = make_account(), make_project(project_dir)
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        ws.start()
        ws.send(type="message", content="Long one [[text:200]] [[slow:30]]")
        ws.recv_until(lambda m: m["type"] == "text")
        ws.send(type="cancel")
        done = ws.until_terminal()[-1]
    assert done["type"] == "response_done" and done["status"] == "cancelled"
    (request,) = answered(model.url, project)
    # Cut off before message_delta: message_start's counts (its output so far is 1 token).
    assert done["usage"]["input_tokens"] == request["usage"]["input_tokens"]
    with session_scope() as s:
        reply = s.get(Message, done["message_id"])
        assert reply is not None and reply.status == "cancelled"
        assert reply.input_tokens == request["usage"]["input_tokens"]


def test_a_user_at_their_budget_is_refused_before_anything_is_stored(
    budget_api: Api, project_dir: Path, model: Any
) -> None:
    acct, project = make_account(), make_project(project_dir)
    with WsClient(f"{budget_api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        conv_id = ws.start()
        # Under the budget (nothing spent yet): answered.
        first = ws.ask("First [[text:3]]")[-1]
        assert first["type"] == "response_done" and first["status"] == "complete"
        spent = sum(v for k, v in first["usage"].items() if k != "cost_usd")
        before, asked = stored(conv_id), len(answered(model.url, project))

        ws.send(type="message", content="Second [[text:3]]", client_message_id="c2")
        refusal = ws.recv()
        month = current_month()
        assert refusal == {
            "type": "error",
            "content": f"You have used your monthly token budget ({spent} of {BUDGET} tokens); "
            f"it renews on {renews_on(month).isoformat()}.",
        }
        # Nothing stored, nothing sent to the model, and the connection stays usable.
        assert stored(conv_id) == before
        assert len(answered(model.url, project)) == asked
        ws.send(type="ping")
        assert ws.recv() == {"type": "pong"}
    report = usage_of(budget_api, acct)
    assert (report["tokens"], report["budget"]) == (spent, BUDGET)


def test_an_administrators_budget_overrides_the_setting_both_ways(
    budget_api: Api, project_dir: Path
) -> None:
    acct, project = make_account(), make_project(project_dir)
    assert "100000000 tokens a month" in set_budget(acct.name, "100000000")
    url = f"{budget_api.ws_url}/api/assistant/ws/{project}"
    with WsClient(url, acct.token) as ws:
        ws.start()
        for n in range(2):  # well under their own budget: answered every time
            done = ws.ask(f"Question {n} [[text:2]]")[-1]
            assert done["type"] == "response_done", done
        assert usage_of(budget_api, acct)["budget"] == 100000000

        set_budget(acct.name, "default")  # back to ASSISTANT_USER_MONTHLY_TOKENS
        ws.send(type="message", content="Once more [[text:2]]")
        refused = ws.recv()  # refused before a turn exists: no turn_id
        assert refused["type"] == "error" and "turn_id" not in refused
        assert refused["content"].startswith("You have used your monthly token budget (")
        assert usage_of(budget_api, acct)["budget"] == BUDGET

        set_budget(acct.name, "0")  # 0: unlimited for this user
        assert ws.ask("And now? [[text:2]]")[-1]["type"] == "response_done"
        assert usage_of(budget_api, acct)["budget"] is None


def test_usage_needs_a_token(stack: Stack) -> None:
    resp = httpx.get(f"{stack.api.base_url}/api/usage", timeout=10)
    assert resp.status_code == 401
    bad = httpx.get(
        f"{stack.api.base_url}/api/usage", headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert bad.status_code == 401
