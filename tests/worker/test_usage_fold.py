"""A turn's usage from the stream's own reports (worker/usage.py), on recorded SSE transcripts:
message_start gives a round's input side, message_delta its output; the turn sums its rounds."""

from __future__ import annotations

from collections.abc import Sequence

from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from shared.usage import Usage
from tests.worker.test_reply_fold import events_of
from worker.usage import TurnUsage

_events: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)


def observe_all(usage: TurnUsage, events: Sequence[RawMessageStreamEvent]) -> TurnUsage:
    for event in events:
        usage.observe(event)
    return usage


def test_one_round_takes_input_from_message_start_and_output_from_message_delta() -> None:
    usage = observe_all(TurnUsage(), events_of("api_text.sse"))
    assert usage.model == "claude-sonnet-4-5"
    assert usage.total() == Usage(input_tokens=25, output_tokens=15)


def test_the_rounds_of_a_tool_use_turn_are_summed() -> None:
    """A tool call, then the answer after the results: two responses, one turn."""
    usage = TurnUsage()
    observe_all(usage, events_of("api_tool_use.sse"))
    observe_all(usage, events_of("api_two_text_blocks.sse"))
    assert len(usage.rounds) == 2
    assert usage.total() == Usage(input_tokens=472 + 900, output_tokens=89 + 20)


def test_cache_reads_and_writes_are_counted() -> None:
    usage = observe_all(TurnUsage(), events_of("api_web_search_pause.sse"))
    assert usage.total() == Usage(2679, 120, 2310, 0)


def test_cumulative_counts_in_message_delta_replace_the_start_ones() -> None:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5-20251001",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 10,
                "output_tokens": 1,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 5,
            },
        },
    }
    # Newer API versions repeat the input side, cumulative, at the end of the response.
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 42, "input_tokens": 12, "cache_read_input_tokens": None},
    }
    usage = observe_all(TurnUsage(), [_events.validate_python(e) for e in (start, delta)] * 2)
    assert usage.model == "claude-haiku-4-5-20251001"
    assert usage.total() == Usage(24, 84, 200, 10)


def test_a_round_cut_off_before_its_message_delta_keeps_what_message_start_said() -> None:
    events = [e for e in events_of("api_text.sse") if e.type == "message_start"]
    assert observe_all(TurnUsage(), events).total() == Usage(input_tokens=25, output_tokens=1)
