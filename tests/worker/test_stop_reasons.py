"""Every stop reason through the real stack: what the client receives and what is stored.

WebSocket -> API -> Celery worker -> the real SDK -> the model stand-in, which ends its
responses with the stop reason a directive asks for (shared/devtools/demo_model/scenarios.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from shared.devtools.demo_model import DemoModelServer
from shared.devtools.demo_model.scenarios import split_text
from shared.models import StopReason
from shared.prompt import CONTINUE_PROMPT
from tests.support.autocoder import AutocoderClient
from tests.support.client import WsClient, text_of
from tests.support.data import make_account, make_project
from tests.support.model_log import answered, requests_for, texts
from tests.support.processes import Stack
from tests.worker.test_faults import assert_clean_sequence, stored_turn
from worker.errors import CONTEXT_TOO_LONG, REFUSED
from worker.rounds import LIMIT_NOTE
from worker.run import STOPPED_LOOKING


def words(n: int) -> str:
    return " ".join(f"word{i}" for i in range(1, n + 1))


class Chat:
    """One user's conversation about a fresh project."""

    def __init__(self, stack: Stack, project_dir: Path) -> None:
        self.stack = stack
        self.acct = make_account()
        self.project = make_project(project_dir)
        self.ws = WsClient(f"{stack.api.ws_url}/api/assistant/ws/{self.project}", self.acct.token)
        self.conversation_id = self.ws.start()

    def ask(self, content: str) -> list[dict[str, Any]]:
        return assert_clean_sequence(self.ws.ask(content))

    def detail(self) -> dict[str, Any]:
        url = (
            f"{self.stack.api.base_url}/api/assistant/conversations/"
            f"{self.project}/{self.conversation_id}"
        )
        response = httpx.get(url, headers=self.acct.headers, timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def close(self) -> None:
        self.ws.close()


def test_max_tokens_is_continued_into_one_whole_reply(
    stack: Stack, project_dir: Path, model: DemoModelServer
) -> None:
    chat = Chat(stack, project_dir)
    turn = chat.ask("[[text:9]] [[stop:max_tokens]]")
    chat.close()
    # One reply, continued seamlessly: no paragraph break, nothing repeated.
    assert text_of(turn) == words(9)
    _, replies = stored_turn(turn[0]["turn_id"])
    assert turn[-1] == {
        "type": "response_done",
        "status": "complete",
        "stop_reason": "end_turn",
        "references": [],
        "message_id": replies[0].id,
        "usage": turn[-1]["usage"],
        "turn_id": turn[0]["turn_id"],
        "seq": turn[-1]["seq"],
    }
    assert (replies[0].content, replies[0].stop_reason) == (words(9), StopReason.end_turn)
    first, second = (r["body"] for r in answered(model.url, chat.project))
    # The continuation: the cut-off text as the assistant's, then a user turn asking to go on
    # (never a trailing assistant "prefill", which newer models refuse).
    assert second["messages"][:-2] == [
        *first["messages"][:-1],
        {"role": "user", "content": [{"type": "text", "text": texts(first["messages"][-1])[0]}]},
    ]
    assert texts(second["messages"][-2]) == [split_text(words(9), 2)[0]]
    assert texts(second["messages"][-1]) == [CONTINUE_PROMPT]


def test_max_tokens_beyond_the_continuations_is_marked_truncated(
    stack: Stack, project_dir: Path, model: DemoModelServer
) -> None:
    chat = Chat(stack, project_dir)
    turn = chat.ask("[[text:9]] [[stop:max_tokens:2]]")
    cut = "".join(split_text(words(9), 3)[:2])
    assert text_of(turn) == cut
    assert turn[-1]["type"] == "response_done" and turn[-1]["status"] == "complete"
    assert turn[-1]["stop_reason"] == "max_tokens"
    stored, replies = stored_turn(turn[0]["turn_id"])
    assert stored.status == "complete"
    assert (replies[0].content, replies[0].status, replies[0].stop_reason) == (
        cut,
        "complete",
        "max_tokens",
    )
    assert chat.detail()["messages"][-1]["stop_reason"] == "max_tokens"
    # The next turn's history tells the model the reply was cut off.
    chat.ask("[[text:1]]")
    chat.close()
    history = answered(model.url, chat.project)[-1]["body"]["messages"]
    assert texts(history[-2]) == [cut + "\n\n[This reply was cut off at the length limit.]"]


def test_refusal_is_a_clear_error_and_not_stored_as_an_answer(
    stack: Stack, project_dir: Path, model: DemoModelServer
) -> None:
    chat = Chat(stack, project_dir)
    turn = chat.ask("[[text:8]] [[stop:refusal]]")
    assert turn[-1]["type"] == "error"
    assert (turn[-1]["content"], turn[-1]["stop_reason"]) == (REFUSED, "refusal")
    stored, replies = stored_turn(turn[0]["turn_id"])
    assert stored.status == "failed" and stored.error == REFUSED
    # The half answer that streamed is not kept: the notice is, marked refused.
    assert (replies[0].status, replies[0].content) == ("refused", REFUSED)
    assert "word1" not in replies[0].content
    assert chat.detail()["messages"][-1]["status"] == "refused"
    # The conversation goes on, and the model is told of the refusal, not the half answer.
    after = chat.ask("[[text:2]]")
    chat.close()
    assert text_of(after) == "word1 word2"
    last = answered(model.url, chat.project)[-1]["body"]["messages"]
    assert texts(last[-2]) == [REFUSED]


def test_pause_turn_sends_the_paused_content_back_until_done(
    stack: Stack, project_dir: Path, model: DemoModelServer
) -> None:
    chat = Chat(stack, project_dir)
    turn = chat.ask("[[stop:pause_turn:2]] [[text:3]]")
    chat.close()
    assert turn[-1]["type"] == "response_done" and turn[-1]["stop_reason"] == "end_turn"
    marks = ["Working on it (pause 1 of 2).", "Working on it (pause 2 of 2)."]
    assert text_of(turn) == "\n\n".join([*marks, words(3)])
    bodies = [r["body"] for r in answered(model.url, chat.project)]
    assert len(bodies) == 3
    # Each continuation ends with the assistant's paused content, as it came: one message.
    assert bodies[1]["messages"][-1]["role"] == "assistant"
    assert texts(bodies[1]["messages"][-1]) == marks[:1]
    assert texts(bodies[2]["messages"][-1]) == marks
    assert bodies[2]["messages"][:-1] == [
        *bodies[0]["messages"][:-1],
        {"role": "user", "content": bodies[2]["messages"][-2]["content"]},
    ]
    _, replies = stored_turn(turn[0]["turn_id"])
    assert replies[0].content == text_of(turn) and replies[0].status == "complete"


def test_context_window_exceeded_drops_the_history_and_goes_on(
    stack: Stack, project_dir: Path, model: DemoModelServer
) -> None:
    chat = Chat(stack, project_dir)
    chat.ask("A long first question " + "x" * 3000 + " [[text:3]]")
    turn = chat.ask("[[text:8]] [[stop:model_context_window_exceeded:2000]]")
    chat.close()
    assert text_of(turn) == words(8)
    assert turn[-1]["type"] == "response_done" and turn[-1]["status"] == "complete"
    first, retry = (r["body"]["messages"] for r in answered(model.url, chat.project)[-2:])
    assert len(first) == 3  # the history, then the question
    # The retry: only this turn's question, what was said, and the request to go on.
    assert texts(retry[0]) == texts(first[-1])
    assert [m["role"] for m in retry] == ["user", "assistant", "user"]
    assert texts(retry[-1]) == [CONTINUE_PROMPT]


def test_context_window_exceeded_again_is_a_clear_error(stack: Stack, project_dir: Path) -> None:
    chat = Chat(stack, project_dir)
    turn = chat.ask("[[text:4]] [[stop:model_context_window_exceeded]]")
    assert turn[-1] == {
        "type": "error",
        "content": CONTEXT_TOO_LONG,
        "turn_id": turn[0]["turn_id"],
        "seq": turn[-1]["seq"],
    }
    stored, replies = stored_turn(turn[0]["turn_id"])
    assert stored.status == "failed" and replies[0].status == "failed"
    assert replies[0].content == text_of(turn)
    # New work in the same conversation succeeds.
    assert text_of(chat.ask("[[text:2]]")) == "word1 word2"
    chat.close()


def test_a_prompt_refused_as_too_long_is_retried_without_the_history(
    stack: Stack, project_dir: Path, model: DemoModelServer
) -> None:
    chat = Chat(stack, project_dir)
    chat.ask("A long first question " + "x" * 3000 + " [[text:3]]")
    turn = chat.ask("[[context:2000]] [[text:4]]")
    assert text_of(turn) == words(4) and turn[-1]["type"] == "response_done"
    refused, retried = requests_for(model.url, chat.project)[-2:]
    assert "usage" not in refused and len(refused["body"]["messages"]) == 3
    assert [m["role"] for m in retried["body"]["messages"]] == ["user"]
    # Too long even alone: a clear error, not "the model service refused the request".
    again = chat.ask("[[context:10]] [[text:4]]")
    chat.close()
    assert again[-1]["type"] == "error" and again[-1]["content"] == CONTEXT_TOO_LONG


def test_the_tool_round_limit_ends_saying_it_stopped_looking(
    stack: Stack, project_dir: Path, model: DemoModelServer
) -> None:
    chat = Chat(stack, project_dir)
    limit = 12  # the default ASSISTANT_MAX_TOOL_ROUNDS
    turn = chat.ask(" ".join(['[[tool:Glob {"pattern": "*"}]]'] * (limit + 1)))
    chat.close()
    assert len([f for f in turn if f["type"] == "tool_call"]) == limit
    note = STOPPED_LOOKING.format(n=limit)
    assert text_of(turn).endswith(note)
    assert f"(No more tools: answering after {limit} of {limit + 1} calls.)" in text_of(turn)
    assert turn[-1]["type"] == "response_done" and turn[-1]["stop_reason"] == "max_tool_rounds"
    last = answered(model.url, chat.project)[-1]["body"]
    assert last["tool_choice"] == {"type": "none"}
    assert texts(last["messages"][-1]) == [LIMIT_NOTE]
    _, replies = stored_turn(turn[0]["turn_id"])
    assert replies[0].content.endswith(note) and replies[0].stop_reason == "max_tool_rounds"
    assert len(replies[0].tool_calls) == limit


def test_error_mid_stream_after_the_sdk_retried_publishes_text_once(
    stack: Stack, project_dir: Path, model: DemoModelServer
) -> None:
    chat = Chat(stack, project_dir)
    turn = chat.ask("[[error:529:1]] [[text:20]] [[error-midstream]]")
    # The SDK retried the 529 (two requests); the stream then failed after its first word.
    statuses = [("usage" in r) for r in requests_for(model.url, chat.project)]
    assert statuses == [False, True]
    assert [f["type"] for f in turn] == ["text", "error"]
    assert text_of(turn) == "word1"
    assert "overloaded" in turn[-1]["content"] and "middle of this reply" in turn[-1]["content"]
    _, replies = stored_turn(turn[0]["turn_id"])
    assert (replies[0].status, replies[0].content) == ("failed", "word1")
    assert text_of(chat.ask("[[text:2]]")) == "word1 word2"
    chat.close()


def test_autocoders_client_gets_through_every_ending(stack: Stack, project_dir: Path) -> None:
    """Its input stays disabled until `response_done` or `error`: each ending sends one."""
    project = make_project(project_dir)
    acct = make_account()
    with AutocoderClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as c:
        c.start()
        for ask, last in (
            ("[[text:9]] [[stop:max_tokens:3]]", "response_done"),
            ("[[text:4]] [[stop:refusal]]", "error"),
            ("[[stop:pause_turn]] [[text:2]]", "response_done"),
            ("[[text:4]] [[stop:model_context_window_exceeded]]", "error"),
            ("[[text:2]]", "response_done"),
        ):
            frames = c.send_message(ask)
            assert frames[-1]["type"] == last, (ask, frames)
