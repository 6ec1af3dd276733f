"""The messages of one turn across its model rounds, and what each stop reason leads to.

A turn is a sequence of model rounds. After each, `Dialogue.after` looks at why the model
stopped and says what comes next:

| stop reason                    | next                                                        |
|--------------------------------|-------------------------------------------------------------|
| end_turn, stop_sequence        | the reply is complete                                       |
| tool_use                       | run the tools and send their results (up to the round limit;|
|                                | then the reply ends saying it stopped looking)              |
| pause_turn                     | send the paused content back as it is, so the model goes on |
|                                | (server tools); counts as a round                           |
| max_tokens                     | continue the cut-off reply (`max_tokens_continuations`      |
|                                | times), then end it marked truncated                        |
| model_context_window_exceeded  | drop the earlier history and continue, once; then fail      |
|  (or HTTP 400 prompt too long) |  (the request again without the earlier history, once)      |
| refusal                        | end: the partial text is not kept as an answer              |

A cut-off reply is continued by sending it as an assistant message followed by a user message
asking to continue (`CONTINUE_PROMPT`), not as a trailing assistant "prefill", which newer
models refuse. The continuation's text is appended to the reply without a paragraph break.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from shared.config import Settings
from shared.models import StopReason
from shared.prompt import CONTINUE_PROMPT
from worker.reply import Round

# Told to the model with the last tool results before the round limit.
LIMIT_NOTE = (
    "You have reached the limit of tool calls for this reply. Answer now with what you have "
    "found, and say what you could not check."
)
CONTEXT_EXCEEDED = "context_window"  # an end that fails the turn


@dataclass(frozen=True)
class Step:
    kind: Literal["tools", "again", "end"]
    stop_reason: str = StopReason.end_turn
    tool_uses: list[dict[str, Any]] = field(default_factory=list)


class Dialogue:
    """The messages of a turn, grown round by round (history first, this turn's question
    last)."""

    def __init__(self, settings: Settings, messages: list[dict[str, Any]]) -> None:
        self.settings = settings
        self.messages = list(messages)
        self.turn_start = len(self.messages) - 1  # this turn's question
        self.tool_rounds = 0  # rounds that used tools, client or server side
        self.continuations = 0
        self.trimmed = False
        # The next round continues text that was cut off (no paragraph break before it).
        self.continues = False

    @property
    def last_round(self) -> bool:
        """The round limit is reached: the next round may not use tools."""
        return self.tool_rounds >= self.settings.max_tool_rounds

    def after(self, rnd: Round) -> Step:
        """What follows the round `rnd` (whose stop reason and blocks are known now)."""
        limited = self.last_round
        self.continues = False
        reason = rnd.stop_reason
        if reason == "tool_use" and rnd.tool_uses():
            if limited:
                return Step("end", StopReason.max_tool_rounds)
            self._assistant(rnd.params())
            self.tool_rounds += 1
            return Step("tools", tool_uses=rnd.tool_uses())
        if reason == "pause_turn":
            if limited:
                return Step("end", StopReason.max_tool_rounds)
            self._assistant(rnd.params())
            self.tool_rounds += 1
            return Step("again")
        if reason == "max_tokens":
            if self.continuations >= self.settings.max_tokens_continuations:
                return Step("end", StopReason.max_tokens)
            self.continuations += 1
            self._continue(rnd)
            return Step("again")
        if reason == "model_context_window_exceeded":
            if self.trimmed:
                return Step("end", CONTEXT_EXCEEDED)
            self._drop_history()
            self._continue(rnd)
            return Step("again")
        if reason == "refusal":
            return Step("end", StopReason.refusal)
        return Step("end", StopReason.max_tool_rounds if limited else StopReason.end_turn)

    def refused_as_too_long(self) -> Step:
        """The request was refused as longer than the context window (HTTP 400 "prompt is
        too long"): the same request without the earlier history, once, if there is any."""
        if self.trimmed or self.turn_start == 0:
            return Step("end", CONTEXT_EXCEEDED)
        self._drop_history()
        return Step("again")

    def _drop_history(self) -> None:
        self.trimmed = True
        self.messages = self.messages[self.turn_start :]
        self.turn_start = 0

    def add_tool_results(self, results: list[dict[str, Any]]) -> None:
        content = list(results)
        if self.last_round:
            content.append({"type": "text", "text": LIMIT_NOTE})
        self.messages.append({"role": "user", "content": content})

    def _assistant(self, blocks: list[dict[str, Any]]) -> None:
        """Add the model's blocks as the assistant's message (one message: a paused response
        and its continuation are the same assistant turn)."""
        if not blocks:
            return
        last = self.messages[-1]
        if last["role"] == "assistant" and isinstance(last["content"], list):
            last["content"] = [*last["content"], *blocks]
        else:
            self.messages.append({"role": "assistant", "content": list(blocks)})

    def _continue(self, rnd: Round) -> None:
        # Only the text: a tool call cut off midway has no complete input to send back.
        text = [b for b in rnd.params() if b["type"] == "text"]
        if not text:
            return  # nothing was said: the same request again
        self._assistant(text)
        self.messages.append(
            {"role": "user", "content": [{"type": "text", "text": CONTINUE_PROMPT}]}
        )
        self.continues = True
