"""The fold of model stream events into the reply, on recorded SSE transcripts.

`api_*.sse` follow the Messages API's documented streams (text; text then two tool calls, one
with empty input; several text blocks); `demo_*.sse` was recorded from the model stand-in.
Events are parsed as the SDK's own `RawMessageStreamEvent` types, exactly what the worker
iterates over, and `ping` events are skipped as the SDK does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from worker.reply import Out, Reply, Round, TextOut, ToolCallOut, fold

TRANSCRIPTS = Path(__file__).with_name("transcripts")
_events: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)


def events_of(name: str) -> list[RawMessageStreamEvent]:
    """The events of a recorded SSE stream (blank-line separated `event:`/`data:` records)."""
    out = []
    for record in (TRANSCRIPTS / name).read_text().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in record.strip().splitlines() if ": " in line)
        if fields.get("event") not in (None, "ping"):
            out.append(_events.validate_python(json.loads(fields["data"])))
    return out


def fold_all(name: str, reply: Reply | None = None) -> tuple[Reply, Round, list[Out]]:
    reply = reply if reply is not None else Reply()
    rnd, outs = Round(), []
    for event in events_of(name):
        outs.extend(fold(reply, rnd, event))
    return reply, rnd, outs


def test_text_only() -> None:
    reply, rnd, outs = fold_all("api_text.sse")
    assert outs == [TextOut("Hello"), TextOut("!")]
    assert (reply.text, reply.tool_calls) == ("Hello!", [])
    assert rnd.stop_reason == "end_turn"
    assert rnd.params() == [{"type": "text", "text": "Hello!"}]
    assert rnd.tool_uses() == []


def test_text_then_tool_calls_from_json_fragments() -> None:
    reply, rnd, outs = fold_all("api_tool_use.sse")
    text = "Okay, let's look for TODOs:"
    assert "".join(o.text for o in outs if isinstance(o, TextOut)) == text
    calls = [o for o in outs if isinstance(o, ToolCallOut)]
    assert calls == [
        ToolCallOut("Grep", {"pattern": "TODO", "glob": "*.py"}),
        ToolCallOut("Glob", {}),
    ]
    # Tool calls are announced after the text before them, in order.
    assert isinstance(outs[-1], ToolCallOut) and isinstance(outs[-3], TextOut)
    assert reply.tool_calls == [
        {"tool": "Grep", "input": {"pattern": "TODO", "glob": "*.py"}},
        {"tool": "Glob", "input": {}},
    ]
    assert rnd.stop_reason == "tool_use"
    # What goes back to the model with the tool results: the response's own blocks.
    assert rnd.params() == [
        {"type": "text", "text": text},
        {
            "type": "tool_use",
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "Grep",
            "input": {"pattern": "TODO", "glob": "*.py"},
        },
        {"type": "tool_use", "id": "toolu_02", "name": "Glob", "input": {}},
    ]
    assert [b["id"] for b in rnd.tool_uses()] == ["toolu_01T1x1fJ34qAmk2tNTrN7Up6", "toolu_02"]


def test_text_blocks_become_paragraphs_and_empty_ones_are_not_sent_back() -> None:
    reply, rnd, _ = fold_all("api_two_text_blocks.sse")
    assert reply.text == "First paragraph.\n\nSecond, see `src/app.py:1-2`.\n"
    assert rnd.params() == [
        {"type": "text", "text": "First paragraph."},
        {"type": "text", "text": "Second, see `src/app.py:1-2`.\n"},
    ]


def test_a_later_round_continues_the_same_reply() -> None:
    reply, _, _ = fold_all("demo_text_then_tool_use.sse")
    assert reply.text == "Calling `Read` (step 1 of 1)."
    assert reply.tool_calls == [{"tool": "Read", "input": {"file_path": "src/app.py"}}]
    # The next round's text starts a new paragraph after the tool call; calls accumulate.
    reply, rnd, outs = fold_all("api_tool_use.sse", reply)
    assert outs[0] == TextOut("\n\n")
    assert reply.text.startswith("Calling `Read` (step 1 of 1).\n\nOkay,")
    assert [c["tool"] for c in reply.tool_calls] == ["Read", "Grep", "Glob"]
    # The separator is the reply's, not part of what the model said in this round.
    assert rnd.params()[0] == {"type": "text", "text": "Okay, let's look for TODOs:"}


@pytest.mark.parametrize(
    "name",
    [
        "api_text.sse",
        "api_tool_use.sse",
        "api_two_text_blocks.sse",
        "demo_text_then_tool_use.sse",
        "api_web_search_pause.sse",
    ],
)
def test_the_client_sees_exactly_the_stored_reply(name: str) -> None:
    """Concatenated text outputs are the stored text, and announced calls the stored calls."""
    reply, _, outs = fold_all(name)
    assert "".join(o.text for o in outs if isinstance(o, TextOut)) == reply.text
    assert [{"tool": o.tool, "input": o.input} for o in outs if isinstance(o, ToolCallOut)] == (
        reply.tool_calls
    )


def test_server_tool_calls_are_announced_and_kept_to_send_back() -> None:
    reply, rnd, outs = fold_all("api_web_search_pause.sse")
    calls = [o for o in outs if isinstance(o, ToolCallOut)]
    assert calls == [ToolCallOut("web_search", {"query": "sqlite busy timeout"})]
    assert reply.tool_calls == [{"tool": "web_search", "input": {"query": "sqlite busy timeout"}}]
    assert reply.text == "I'll search for that.\n\nIt sets a busy handler that sleeps"
    assert rnd.stop_reason == "pause_turn"
    # Server tool calls are not ours to run, and the paused content goes back whole.
    assert rnd.tool_uses() == []
    assert [b["type"] for b in rnd.params()] == [
        "text",
        "server_tool_use",
        "web_search_tool_result",
        "text",
    ]
    assert rnd.params()[1]["input"] == {"query": "sqlite busy timeout"}
    assert rnd.params()[2]["content"][0]["url"] == "https://www.sqlite.org/c3ref/busy_timeout.html"


def test_a_continuation_carries_on_without_a_paragraph_break() -> None:
    reply, _, _ = fold_all("api_text.sse")
    rnd, outs = Round(continues=True), []
    for event in events_of("api_two_text_blocks.sse"):
        outs.extend(fold(reply, rnd, event))
    # The first block continues "Hello!" directly; a later block is a new paragraph again.
    assert reply.text == "Hello!First paragraph.\n\nSecond, see `src/app.py:1-2`.\n"
    assert "".join(o.text for o in outs if isinstance(o, TextOut)) == reply.text[len("Hello!") :]
