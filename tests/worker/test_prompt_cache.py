"""Prompt caching through the real stack: the requests the model stand-in received share a
byte-identical prefix across the rounds of a turn and across turns, with breakpoints where
expected, and the stand-in's simulated cache reports the hits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.devtools.demo_model import DemoModelServer
from tests.support.client import WsClient, text_of
from tests.support.data import make_account, make_project
from tests.support.model_log import answered
from tests.support.processes import Stack, StackFactory, wait_for

EPH = {"type": "ephemeral"}
TOOL_TURN = 'What does it do? [[tool:Read {"file_path": "src/app.py"}]]'


def converse(api_ws_url: str, project: str) -> None:
    """A tool-use turn (two model rounds), then a second question in the same conversation."""
    acct = make_account()
    with WsClient(f"{api_ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        ws.start()
        assert ws.ask(TOOL_TURN)[-1]["type"] == "response_done"
        assert text_of(ws.ask("And the second question? [[text:5]]")).endswith("word5")


def unmarked(value: Any) -> Any:
    """`value` without its cache_control marks (they are not part of the cached prefix)."""
    if isinstance(value, dict):
        return {k: unmarked(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [unmarked(v) for v in value]
    return value


def dump(value: Any) -> str:
    return json.dumps(unmarked(value), ensure_ascii=False)


def breakpoints(body: dict[str, Any]) -> list[str]:
    where = [f"tools[{i}]" for i, t in enumerate(body["tools"]) if "cache_control" in t]
    where += [f"system[{i}]" for i, b in enumerate(body["system"]) if "cache_control" in b]
    for m, msg in enumerate(body["messages"]):
        where += [
            f"messages[{m}][{b}]"
            for b, block in enumerate(msg["content"])
            if "cache_control" in block
        ]
    return where


def test_prefix_is_byte_identical_across_rounds_and_turns(
    stack: Stack, project_dir: Path, model: DemoModelServer
) -> None:
    project = make_project(project_dir)
    converse(stack.api.ws_url, project)
    recorded = answered(model.url, project)
    assert len(recorded) == 3  # turn 1: the tool call and the answer; turn 2: the answer
    r1, r2, r3 = (r["body"] for r in recorded)
    n_tools = len(r1["tools"])

    # Breakpoints: the last tool, the system prompt, the last block of the last message.
    assert breakpoints(r1) == [f"tools[{n_tools - 1}]", "system[0]", "messages[0][0]"]
    assert breakpoints(r2) == [f"tools[{n_tools - 1}]", "system[0]", "messages[2][0]"]
    assert breakpoints(r3) == [f"tools[{n_tools - 1}]", "system[0]", "messages[2][0]"]
    assert r1["system"][0]["cache_control"] == EPH

    # Tools and system prompt: the same bytes in every request.
    assert dump(r1["tools"]) == dump(r2["tools"]) == dump(r3["tools"])
    assert dump(r1["system"]) == dump(r2["system"]) == dump(r3["system"])
    # The second round extends the first; the next turn renders the first question the same.
    assert dump(r2["messages"][:1]) == dump(r1["messages"])
    assert dump(r3["messages"][:1]) == dump(r1["messages"])
    assert [m["role"] for m in r3["messages"]] == ["user", "assistant", "user"]

    # The stand-in's cache saw it: the second round and the next turn read the prefix.
    u1, u2, u3 = (r["usage"] for r in recorded)
    first_total = sum(
        u1[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    # The first request may only find the tools cached (any project's turn writes them).
    tools_tokens = len(json.dumps(unmarked(r1["tools"]), separators=(",", ":"))) // 4
    assert u1["cache_read_input_tokens"] <= tools_tokens
    assert u1["cache_creation_input_tokens"] > 0
    assert u2["cache_read_input_tokens"] == first_total
    assert u3["cache_read_input_tokens"] == first_total
    # The second question costs a fraction of the first in uncached input tokens.
    assert u3["input_tokens"] + u3["cache_creation_input_tokens"] < first_total / 5


def test_the_worker_logs_cache_reads_and_writes_per_round(
    stack: Stack, project_dir: Path, model: DemoModelServer
) -> None:
    project = make_project(project_dir)
    converse(stack.api.ws_url, project)
    usage = [r["usage"] for r in answered(model.url, project)]

    def logged() -> bool:
        log = stack.worker.log()
        return all(
            f"cache read {u['cache_read_input_tokens']}, "
            f"cache write {u['cache_creation_input_tokens']}" in log
            for u in usage
        )

    wait_for(logged, 10, "the worker to log each round's cache usage")


def test_prompt_cache_off_sends_no_breakpoints(
    isolated: StackFactory, project_dir: Path, model: DemoModelServer
) -> None:
    stack = isolated.stack({"ASSISTANT_PROMPT_CACHE": "off"})
    project = make_project(project_dir)
    converse(stack.api.ws_url, project)
    recorded = answered(model.url, project)
    assert len(recorded) == 3
    for r in recorded:
        assert "cache_control" not in json.dumps(r["body"])
        assert r["usage"]["cache_read_input_tokens"] == 0
        assert isinstance(r["body"]["system"], str)
