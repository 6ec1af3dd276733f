"""A turn's token usage, summed over its model rounds from the stream's own usage reports.

The Messages API reports usage twice per response: `message_start` carries the input side
(input, cache-read and cache-write tokens; output so far), `message_delta` at the end the
output tokens, cumulative for that response (newer API versions repeat the input side there
too, also cumulative). So a round's usage is message_start's, overridden by whatever its
message_delta reports; the turn's is the sum of its rounds (tool calls, continuations, pauses).
Two events per round: nothing here runs per streamed chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.usage import Usage


@dataclass
class RoundUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def update(self, usage: Any) -> None:
        """Take the counts `usage` reports (a message_start or message_delta usage object);
        a count it leaves out (None) keeps its value."""
        for name, source in _SOURCES:
            value = getattr(usage, source, None)
            if value is not None:
                setattr(self, name, int(value))


_SOURCES = (
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("cache_read_tokens", "cache_read_input_tokens"),
    ("cache_write_tokens", "cache_creation_input_tokens"),
)


@dataclass
class TurnUsage:
    """The rounds of one attempt of a turn, and the model that answered them."""

    model: str | None = None
    rounds: list[RoundUsage] = field(default_factory=list)

    def observe(self, event: Any) -> None:
        """Account one stream event (only message_start and message_delta carry usage)."""
        if event.type == "message_start":
            self.model = event.message.model or self.model
            current = RoundUsage()
            current.update(event.message.usage)
            self.rounds.append(current)
        elif event.type == "message_delta" and self.rounds:
            self.rounds[-1].update(event.usage)

    def total(self) -> Usage:
        """The tokens of every round so far (not yet priced)."""
        return Usage(
            input_tokens=sum(r.input_tokens for r in self.rounds),
            output_tokens=sum(r.output_tokens for r in self.rounds),
            cache_read_tokens=sum(r.cache_read_tokens for r in self.rounds),
            cache_write_tokens=sum(r.cache_write_tokens for r in self.rounds),
        )
