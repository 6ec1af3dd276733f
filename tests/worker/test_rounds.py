"""What each stop reason leads to, round by round (worker.rounds.Dialogue), without a model."""

from __future__ import annotations

from typing import Any

from shared.config import Settings
from shared.models import StopReason
from shared.prompt import CONTINUE_PROMPT
from worker.reply import Round
from worker.rounds import CONTEXT_EXCEEDED, LIMIT_NOTE, Dialogue

HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "q1"},
    {"role": "assistant", "content": "a1"},
    {"role": "user", "content": "q2"},
]
TOOL = {"type": "tool_use", "id": "t1", "name": "Glob", "input": {"pattern": "*"}}


def rnd(stop: str | None, *blocks: dict[str, Any]) -> Round:
    return Round(blocks=[dict(b) for b in blocks], stop_reason=stop)


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def dialogue(**settings: Any) -> Dialogue:
    return Dialogue(Settings(**settings), HISTORY)


def test_end_turn_ends() -> None:
    d = dialogue()
    step = d.after(rnd("end_turn", text("done")))
    assert (step.kind, step.stop_reason) == ("end", StopReason.end_turn)
    assert d.messages == HISTORY


def test_tool_use_runs_tools_until_the_round_limit_then_says_so() -> None:
    d = dialogue(max_tool_rounds=2)
    for _ in range(2):
        assert not d.last_round
        step = d.after(rnd("tool_use", text("look"), TOOL))
        assert step.kind == "tools" and step.tool_uses == [TOOL]
        d.add_tool_results([{"type": "tool_result", "tool_use_id": "t1", "content": "x"}])
    assert d.last_round
    # The last results tell the model to answer now.
    assert d.messages[-1]["content"][-1] == {"type": "text", "text": LIMIT_NOTE}
    assert [m["role"] for m in d.messages] == ["user", "assistant", "user"] + [
        "assistant",
        "user",
    ] * 2
    # Forced to answer, it does: the reply is marked as having stopped looking.
    assert d.after(rnd("end_turn", text("answer"))).stop_reason == StopReason.max_tool_rounds
    # A model that asks for a tool anyway is not obeyed.
    assert d.after(rnd("tool_use", TOOL)).stop_reason == StopReason.max_tool_rounds


def test_pause_turn_sends_the_content_back_in_one_assistant_message() -> None:
    d = dialogue()
    paused = [text("searching"), {"type": "server_tool_use", "id": "s1", "name": "web_search"}]
    assert d.after(rnd("pause_turn", *paused)).kind == "again"
    assert d.messages[-1] == {"role": "assistant", "content": paused}
    assert d.after(rnd("pause_turn", text("more"))).kind == "again"
    assert d.messages[-1]["content"] == [*paused, text("more")]
    assert len(d.messages) == 4
    assert not d.continues  # a paused turn is not a cut-off text


def test_max_tokens_continues_once_then_ends_truncated() -> None:
    d = dialogue()
    assert d.after(rnd("max_tokens", text("part one"), {**TOOL, "input": {}})).kind == "again"
    assert d.continues
    # The cut-off text (not the incomplete tool call) and a user turn asking to continue.
    assert d.messages[-2:] == [
        {"role": "assistant", "content": [text("part one")]},
        {"role": "user", "content": [text(CONTINUE_PROMPT)]},
    ]
    step = d.after(rnd("max_tokens", text(" part two")))
    assert (step.kind, step.stop_reason) == ("end", StopReason.max_tokens)
    assert not d.continues


def test_max_tokens_without_continuations_ends_at_once() -> None:
    step = dialogue(max_tokens_continuations=0).after(rnd("max_tokens", text("cut")))
    assert step.stop_reason == StopReason.max_tokens


def test_max_tokens_with_nothing_said_retries_the_same_request() -> None:
    d = dialogue()
    assert d.after(rnd("max_tokens")).kind == "again"
    assert d.messages == HISTORY and not d.continues


def test_context_window_exceeded_drops_history_once_then_fails() -> None:
    d = dialogue()
    assert d.after(rnd("model_context_window_exceeded", text("half"))).kind == "again"
    assert d.messages == [
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": [text("half")]},
        {"role": "user", "content": [text(CONTINUE_PROMPT)]},
    ]
    assert d.after(rnd("model_context_window_exceeded")).stop_reason == CONTEXT_EXCEEDED


def test_context_trim_keeps_this_turns_tool_rounds() -> None:
    d = dialogue()
    d.after(rnd("tool_use", TOOL))
    d.add_tool_results([{"type": "tool_result", "tool_use_id": "t1", "content": "x"}])
    d.after(rnd("model_context_window_exceeded"))
    assert [m["role"] for m in d.messages] == ["user", "assistant", "user"]
    assert d.messages[0] == {"role": "user", "content": "q2"}


def test_refusal_ends() -> None:
    assert dialogue().after(rnd("refusal", text("I"))).stop_reason == StopReason.refusal


def test_a_prompt_refused_as_too_long_goes_again_without_history_once() -> None:
    d = dialogue()
    assert d.refused_as_too_long().kind == "again"
    assert d.messages == [{"role": "user", "content": "q2"}]
    assert d.refused_as_too_long().stop_reason == CONTEXT_EXCEEDED
    # Without history there is nothing to drop: a clear end at once.
    alone = Dialogue(Settings(), HISTORY[-1:])
    assert alone.refused_as_too_long().stop_reason == CONTEXT_EXCEEDED
