"""The demo model's stop reasons, server tools and prompt cache, driven by the real SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from shared.devtools.demo_model import DemoModelServer, PromptCache
from shared.devtools.demo_model.scenarios import PREFILL_REFUSED, split_text
from shared.prompt import CONTINUE_PROMPT

MODEL = "claude-demo"
EPH = {"type": "ephemeral"}
WEB_TOOLS: list[Any] = [
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
    {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 5},
]
READ_TOOL: list[Any] = [
    {"name": "Read", "description": "read", "input_schema": {"type": "object", "properties": {}}}
]


@pytest.fixture(scope="module")
def server() -> Iterator[DemoModelServer]:
    with DemoModelServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: DemoModelServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="test", base_url=server.url, max_retries=0) as c:
        yield c


def words(n: int) -> str:
    return " ".join(f"word{i}" for i in range(1, n + 1))


def ask(client: anthropic.Anthropic, messages: list[Any], **kw: Any) -> Any:
    """A streamed request, as the worker makes them; the final message."""
    with client.messages.stream(model=MODEL, max_tokens=100, messages=messages, **kw) as s:
        return s.get_final_message()


def text(message: Any) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def continued(messages: list[Any], reply: Any) -> list[Any]:
    """What the worker sends after a cut-off reply: it, then the request to continue."""
    said = [{"type": "text", "text": text(reply)}]
    return [*messages, {"role": "assistant", "content": said}, user(CONTINUE_PROMPT)]


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def test_split_text_joins_back_exactly() -> None:
    for n in (1, 2, 3, 7):
        for parts in (2, 3, 5):
            pieces = split_text(words(n) + " ", parts)
            assert len(pieces) == parts and "".join(pieces) == words(n) + " "


class TestMaxTokens:
    def test_cut_off_then_continued_to_the_full_text(self, client: anthropic.Anthropic) -> None:
        messages = [user("[[text:9]] [[stop:max_tokens]]")]
        first = ask(client, messages)
        assert first.stop_reason == "max_tokens"
        assert words(9).startswith(text(first)) and text(first) != words(9)
        second = ask(client, continued(messages, first))
        assert second.stop_reason == "end_turn"
        # The continuation starts exactly where the cut was: together, the whole text.
        assert text(first) + text(second) == words(9)

    def test_k_cuts_in_a_row(self, client: anthropic.Anthropic) -> None:
        messages = [user("[[text:9]] [[stop:max_tokens:2]]")]
        got, reasons = "", []
        for _ in range(3):
            reply = ask(client, messages)
            got += text(reply)
            reasons.append(reply.stop_reason)
            messages = continued(messages, reply)
        assert reasons == ["max_tokens", "max_tokens", "end_turn"]
        assert got == words(9)

    def test_a_stop_directive_alone_gives_some_text(self, client: anthropic.Anthropic) -> None:
        assert ask(client, [user("[[stop:max_tokens]]")]).content[0].text.startswith("word1")


def test_refusal_stops_midway_with_details(client: anthropic.Anthropic) -> None:
    reply = ask(client, [user("[[text:8]] [[stop:refusal]]")])
    assert reply.stop_reason == "refusal"
    assert text(reply) == "word1 word2 word3 word4"
    assert reply.stop_details is not None and reply.stop_details.type == "refusal"


class TestPauseTurn:
    def test_paused_content_sent_back_continues(self, client: anthropic.Anthropic) -> None:
        messages: list[Any] = [user("[[text:3]] [[stop:pause_turn:2]]")]
        reasons = []
        for _ in range(3):
            reply = ask(client, messages)
            reasons.append(reply.stop_reason)
            blocks = [b.model_dump(exclude_none=True) for b in reply.content]
            if messages[-1]["role"] == "assistant":
                messages[-1]["content"] += blocks
            else:
                messages.append({"role": "assistant", "content": blocks})
        assert reasons == ["pause_turn", "pause_turn", "end_turn"]
        assert text(reply) == words(3)
        markers = [b["text"] for b in messages[-1]["content"] if b["type"] == "text"]
        assert markers[:2] == ["Working on it (pause 1 of 2).", "Working on it (pause 2 of 2)."]

    def test_with_web_search_the_paused_response_holds_the_server_blocks(
        self, client: anthropic.Anthropic
    ) -> None:
        messages: list[Any] = [user("[[web_search:sqlite locking]] [[stop:pause_turn]]")]
        first = ask(client, messages, tools=WEB_TOOLS)
        assert first.stop_reason == "pause_turn"
        assert [b.type for b in first.content] == [
            "text",
            "server_tool_use",
            "web_search_tool_result",
        ]
        assert first.content[1].input == {"query": "sqlite locking"}
        assert first.content[2].tool_use_id == first.content[1].id
        assert first.usage.server_tool_use is not None
        assert first.usage.server_tool_use.web_search_requests == 1
        blocks = [b.model_dump(exclude_none=True) for b in first.content]
        final = ask(client, [*messages, {"role": "assistant", "content": blocks}], tools=WEB_TOOLS)
        assert final.stop_reason == "end_turn"
        assert 'Web search "sqlite locking": 2 results' in text(final)


class TestWebTools:
    def test_fetch_streams_a_server_call_and_its_result(self, client: anthropic.Anthropic) -> None:
        reply = ask(client, [user("[[web_fetch:https://example.org/doc]]")], tools=WEB_TOOLS)
        types = [b.type for b in reply.content]
        assert types == ["text", "server_tool_use", "web_fetch_tool_result", "text"]
        assert reply.content[1].name == "web_fetch"
        assert reply.content[1].input == {"url": "https://example.org/doc"}
        assert reply.content[2].content.url == "https://example.org/doc"
        assert 'Fetched https://example.org/doc: "Demo page' in reply.content[3].text

    def test_not_offered_means_not_used(self, client: anthropic.Anthropic) -> None:
        reply = ask(client, [user("[[web_search:anything]]")], tools=READ_TOOL)
        assert [b.type for b in reply.content] == ["text"]
        assert "(web_search is not available here)" in text(reply)


class TestContextWindow:
    def test_exceeded_while_the_request_is_over_the_limit(
        self, client: anthropic.Anthropic
    ) -> None:
        history = [user("old question " * 50), {"role": "assistant", "content": "old answer"}]
        question = user("[[text:8]] [[stop:model_context_window_exceeded:600]]")
        big = [*history, question]
        assert len(json.dumps(big)) > 600
        first = ask(client, big)
        assert first.stop_reason == "model_context_window_exceeded"
        assert text(first) == "word1 word2 word3 word4"
        # Without the history (as the worker retries), the rest of the text.
        small = continued([question], first)
        assert len(json.dumps(small)) <= 600
        second = ask(client, small)
        assert second.stop_reason == "end_turn"
        assert text(first) + text(second) == words(8)

    def test_no_limit_given_is_always_exceeded(self, client: anthropic.Anthropic) -> None:
        question = [user("[[text:4]] [[stop:model_context_window_exceeded]]")]
        first = ask(client, question)
        assert ask(client, continued(question, first)).stop_reason == (
            "model_context_window_exceeded"
        )


def test_prefill_is_refused_like_the_newest_models(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        ask(client, [user("[[text:3]]"), {"role": "assistant", "content": "The answer is"}])
    assert PREFILL_REFUSED in str(err.value)


def test_tool_choice_none_answers_without_the_pending_tool(client: anthropic.Anthropic) -> None:
    messages = [user('[[tool:Read {"file_path": "a.py"}]] [[text:2]]')]
    forced = ask(client, messages, tools=READ_TOOL, tool_choice={"type": "none"})
    assert forced.stop_reason == "end_turn"
    assert [b.type for b in forced.content] == ["text"]
    assert "(No more tools: answering after 0 of 1 calls.)" in text(forced)
    assert ask(client, messages, tools=READ_TOOL).stop_reason == "tool_use"


def test_say_includes_text_verbatim(client: anthropic.Anthropic) -> None:
    assert text(ask(client, [user("[[say:See `src/app.py:1-2`.]]")])) == "See `src/app.py:1-2`."


# ---- the prompt cache ---------------------------------------------------------------------


def marked(question: str, system: str, history: list[Any] | None = None) -> dict[str, Any]:
    """A request with breakpoints on the tool, the system prompt and the last message."""
    tools = [{**READ_TOOL[0], "cache_control": EPH}]
    last = user([{"type": "text", "text": question, "cache_control": EPH}])
    return {
        "model": MODEL,
        "max_tokens": 10,
        "tools": tools,
        "system": [{"type": "text", "text": system, "cache_control": EPH}],
        "messages": [*(history or []), last],
    }


class TestPromptCache:
    SYSTEM = "You are a test assistant. " * 40

    def test_a_repeated_prefix_is_read_and_new_parts_written(self) -> None:
        cache = PromptCache()
        first = cache.account(marked("q1 [[text:2]]", self.SYSTEM), now=0)
        assert first["cache_read_input_tokens"] == 0
        assert first["cache_creation_input_tokens"] > 0
        total = first["cache_creation_input_tokens"] + first["input_tokens"]
        # The next turn: history + a new question; the old prefix is found by looking back.
        history = [user("q1 [[text:2]]"), {"role": "assistant", "content": "word1 word2"}]
        second = cache.account(marked("q2", self.SYSTEM, history), now=10)
        assert second["cache_read_input_tokens"] == total
        assert second["cache_creation_input_tokens"] > 0
        assert second["input_tokens"] == 0  # everything was read or written
        # The cache_control marks are not part of the prefix: without the tool's mark, the
        # same request reads all that the second one wrote.
        unmarked = marked("q2", self.SYSTEM, history) | {"tools": READ_TOOL}
        again = cache.account(unmarked, now=20)
        assert again["cache_read_input_tokens"] == (
            second["cache_read_input_tokens"] + second["cache_creation_input_tokens"]
        )

    def test_a_changed_system_prompt_reads_only_the_tools(self) -> None:
        cache = PromptCache()
        cache.account(marked("q", self.SYSTEM), now=0)
        other = cache.account(marked("q", self.SYSTEM + "changed"), now=1)
        tools_only = len(json.dumps(READ_TOOL[0], separators=(",", ":"))) // 4
        assert 0 < other["cache_read_input_tokens"] <= tools_only + 1

    def test_tool_choice_change_keeps_tools_and_system_only(self) -> None:
        cache = PromptCache()
        first = cache.account(marked("q", self.SYSTEM), now=0)
        forced = cache.account(marked("q", self.SYSTEM) | {"tool_choice": {"type": "none"}}, now=1)
        whole = first["cache_creation_input_tokens"] + first["input_tokens"]
        assert 0 < forced["cache_read_input_tokens"] < whole

    def test_entries_expire_after_five_minutes_unless_read(self) -> None:
        cache = PromptCache()
        cache.account(marked("q", self.SYSTEM), now=0)
        assert cache.account(marked("q", self.SYSTEM), now=299)["cache_read_input_tokens"] > 0
        assert cache.account(marked("q", self.SYSTEM), now=598)["cache_read_input_tokens"] > 0
        assert cache.account(marked("q", self.SYSTEM), now=899)["cache_read_input_tokens"] == 0

    def test_no_breakpoints_no_caching(self) -> None:
        cache = PromptCache()
        plain = {"model": MODEL, "max_tokens": 5, "system": self.SYSTEM, "messages": [user("q")]}
        for _ in range(2):
            usage = cache.account(plain)
            assert usage["cache_read_input_tokens"] == usage["cache_creation_input_tokens"] == 0

    def test_over_the_wire_and_recorded(
        self, server: DemoModelServer, client: anthropic.Anthropic
    ) -> None:
        body = marked("wire [[text:2]]", self.SYSTEM + "wire")
        kw = {k: body[k] for k in ("tools", "system", "messages")}
        first = ask(client, **kw)
        second = ask(client, **kw)
        assert first.usage.cache_read_input_tokens == 0
        assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
        recorded = httpx.get(f"{server.url}/_requests").json()
        assert recorded[-1]["usage"]["cache_read_input_tokens"] == (
            second.usage.cache_read_input_tokens
        )

    def test_more_than_four_breakpoints_is_a_bad_request(self, client: anthropic.Anthropic) -> None:
        blocks = [{"type": "text", "text": f"b{i}", "cache_control": EPH} for i in range(5)]
        with pytest.raises(anthropic.BadRequestError, match="maximum of 4"):
            ask(client, [user(blocks)])


def test_context_directive_refuses_a_prompt_over_the_limit(client: anthropic.Anthropic) -> None:
    long = [user("x" * 500), {"role": "assistant", "content": "ok"}, user("[[context:300]] hi")]
    with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
        ask(client, long)
    assert ask(client, long[-1:]).stop_reason == "end_turn"
