"""The benchmark's model stand-in, through the real anthropic SDK."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from anthropic import AsyncAnthropic, BadRequestError

from benchmarks.stamps import WordStream, account_words
from benchmarks.systems import Standin

WORDS, RATE, DELAY_S = 12, 200.0, 0.05


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standin]:
    server = Standin(tmp_path_factory.mktemp("standin"), WORDS, RATE, DELAY_S)
    try:
        yield server
    finally:
        server.stop()


async def _reply(client: AsyncAnthropic) -> tuple[WordStream, str, float]:
    words = WordStream()
    started_us = time.time_ns() // 1000
    async with client.messages.stream(
        model="bench", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        async for event in stream:
            if event.type == "text":
                words.feed(event.text, time.time_ns() // 1000)
        final = await stream.get_final_message()
    words.close()
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == WORDS
    return words, final.content[0].text if final.content[0].type == "text" else "", started_us


def test_replies_are_stamped_words_at_the_set_pace(standin: Standin) -> None:
    async def go() -> list[tuple[WordStream, str, float]]:
        async with AsyncAnthropic(base_url=standin.url, api_key="k", max_retries=0) as client:
            # Two replies on one client: the connection is reused (keep-alive).
            return [await _reply(client), await _reply(client)]

    for words, text, started_us in asyncio.run(go()):
        assert account_words(words.indices, WORDS).clean
        assert words.indices == list(range(WORDS))
        assert words.garbled == 0
        stamps = [int(t.split("@")[1], 16) for t in text.split()]
        assert stamps == sorted(stamps)
        # The first word waits for the first-token delay; the rest follow at the rate.
        assert stamps[0] - started_us >= DELAY_S * 1e6 - 2000
        assert stamps[-1] - stamps[0] >= (WORDS - 1) / RATE * 1e6 - 5000


def test_a_request_it_cannot_answer_gets_a_clear_400(standin: Standin) -> None:
    async def go() -> None:
        async with AsyncAnthropic(base_url=standin.url, api_key="k", max_retries=0) as client:
            with pytest.raises(BadRequestError, match="non-empty"):
                await client.messages.create(model="m", max_tokens=5, messages=[])

    asyncio.run(go())
    with urllib.request.urlopen(f"{standin.url}/_stats", timeout=5) as response:
        stats = json.loads(response.read())
    assert stats["bad_requests"] >= 1
    assert stats["streams_open"] == 0
    assert stats["words_sent"] == stats["streams_total"] * WORDS


def test_unknown_paths_are_404(standin: Standin) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{standin.url}/v2/other", timeout=5)
    info.value.close()
    assert info.value.code == 404
