"""The demo model as the title model and its usage reports, driven by the real `anthropic` SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from shared.config import Settings
from shared.devtools.demo_model import DemoModelServer
from shared.devtools.demo_model.titles import TITLE_MARK, demo_title
from shared.titles import TITLE_SYSTEM, ask_title
from shared.usage import Usage


@pytest.fixture
def server() -> Iterator[DemoModelServer]:
    with DemoModelServer() as srv:
        yield srv


@pytest.fixture
def client(server: DemoModelServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="test", base_url=server.url, max_retries=0) as c:
        yield c


def asked(server: DemoModelServer, question: str) -> tuple[str, Usage]:
    async def go() -> tuple[str, Usage]:
        async with anthropic.AsyncAnthropic(
            api_key="test", base_url=server.url, max_retries=0
        ) as client:
            return await ask_title(
                client, Settings(), question=question, answer="It is in src/app.py."
            )

    return asyncio.run(go())


def title_of(server: DemoModelServer, question: str) -> str:
    return asked(server, question)[0]


def test_the_workers_title_request_gets_the_first_words_of_the_question(
    server: DemoModelServer,
) -> None:
    assert TITLE_SYSTEM.startswith(TITLE_MARK)
    # The question's directives are for the reply, not the title: none is obeyed here.
    question = "where is the entry point of this app? [[error:500]] [[text:9]] [[stall:30]]"
    title, usage = asked(server, question)
    assert title == "Where is the entry point of"
    (request,) = httpx.get(f"{server.url}/_requests").json()
    assert request["body"]["model"] == "claude-haiku-4-5"
    assert request["usage"]["output_tokens"] == len("Where is the entry point of".split())
    # What the title cost, as the stand-in reported it, priced as the title model.
    assert (usage.input_tokens, usage.output_tokens) == (
        request["usage"]["input_tokens"],
        request["usage"]["output_tokens"],
    )
    assert usage.cost_usd > 0


def test_title_error_makes_the_title_request_fail(server: DemoModelServer) -> None:
    with pytest.raises(anthropic.APIStatusError) as failed:
        title_of(server, "Anything [[title-error]] [[text:2]]")
    assert failed.value.status_code == 529


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("What is this project about? [[text:5]]", "What is this project about"),
        ("[[text:3]]", "A new conversation"),
        ("show  me\nthe   README.md, please.", "Show me the README.md, please"),
    ],
)
def test_demo_titles(question: str, title: str) -> None:
    assert demo_title(question) == title


def test_a_streamed_reply_reports_output_tokens_in_message_delta(
    server: DemoModelServer, client: anthropic.Anthropic
) -> None:
    with client.messages.stream(
        model="claude-demo",
        max_tokens=100,
        messages=[{"role": "user", "content": "Hi [[text:7]]"}],
    ) as stream:
        events = list(stream)
    start = next(e for e in events if e.type == "message_start")
    delta = next(e for e in events if e.type == "message_delta")
    assert start.message.usage.input_tokens > 0 and start.message.usage.output_tokens == 1
    assert delta.usage.output_tokens == 7
    # /_requests shows all of it: message_start's counts and message_delta's output.
    (request,) = httpx.get(f"{server.url}/_requests").json()
    assert request["usage"]["input_tokens"] == start.message.usage.input_tokens
    assert request["usage"]["output_tokens"] == 7
