"""The coalescer: the first text at once, then deltas batched by window or size, in order."""

from __future__ import annotations

import asyncio

import pytest

from worker.coalesce import Coalescer


class Sink:
    def __init__(self, fail_on: str | None = None) -> None:
        self.sent: list[str] = []
        self.fail_on = fail_on
        self.arrived = asyncio.Event()

    async def emit(self, text: str) -> None:
        await asyncio.sleep(0)  # an emit awaits (a Redis round trip in the worker)
        if text == self.fail_on:
            raise RuntimeError("publish failed")
        self.sent.append(text)
        self.arrived.set()


def test_the_first_text_goes_out_at_once_then_deltas_wait_for_the_window() -> None:
    async def go() -> list[str]:
        sink = Sink()
        c = Coalescer(sink.emit, window_s=60, max_chars=10_000)
        await c.add("Hello")
        assert sink.sent == ["Hello"]  # no window for the first words of a reply
        for word in (" big", " wide", " world"):
            await c.add(word)
        assert sink.sent == ["Hello"]  # held for the window
        await c.flush()
        await c.aclose()
        return sink.sent

    assert asyncio.run(go()) == ["Hello", " big wide world"]


def test_the_size_limit_flushes_before_the_window() -> None:
    async def go() -> list[str]:
        sink = Sink()
        c = Coalescer(sink.emit, window_s=60, max_chars=6)
        for part in ("a", "bc", "def", "g", "hijkl"):
            await c.add(part)
        await c.aclose()
        return sink.sent

    # "a" at once; then "bc"+"def" (5) waits, +"g" reaches 6 and flushes; "hijkl" waits.
    assert asyncio.run(go()) == ["a", "bcdefg"]


def test_the_window_flushes_and_a_flush_waits_for_a_timer_emit_in_flight() -> None:
    async def go() -> list[str]:
        sink = Sink()
        c = Coalescer(sink.emit, window_s=0.01, max_chars=10_000)
        await c.add("one")
        sink.arrived.clear()
        await c.add(" two")
        async with asyncio.timeout(10):
            await sink.arrived.wait()  # the timer emitted " two" by itself
        await c.add(" three")
        await c.flush()  # returns only when everything added before it went out
        assert sink.sent == ["one", " two", " three"]
        await c.aclose()
        return sink.sent

    asyncio.run(go())


def test_an_emit_that_failed_in_the_timer_is_raised_to_the_next_caller() -> None:
    async def go() -> None:
        sink = Sink(fail_on=" two")
        c = Coalescer(sink.emit, window_s=0.01, max_chars=10_000)
        await c.add("one")
        await c.add(" two")
        async with asyncio.timeout(10):
            while c._error is None:  # the timer's emit failed
                await asyncio.sleep(0.005)
        with pytest.raises(RuntimeError, match="publish failed"):
            await c.add(" three")
        await c.aclose()

    asyncio.run(go())
