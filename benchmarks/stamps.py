"""Pure parts of the benchmark: word stamps, their accounting, and percentiles.

The stand-in model streams each reply as words `w<index>@<emitted>` followed by a space, where
`<emitted>` is the emission time in microseconds since the Unix epoch, in hexadecimal (stand-in,
services and load generator share one clock: they run on one machine). The service coalesces
deltas into larger chunks, so a chunk holds several words and, in principle, a word could be cut
between two chunks; `WordStream` therefore only counts a word once the space after it arrived.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

WORD_PREFIX = "w"
STAMP_SEPARATOR = "@"


def stamp_word(index: int, emitted_us: int) -> str:
    """The text of word `index` emitted at `emitted_us`, with its trailing space."""
    return f"{WORD_PREFIX}{index}{STAMP_SEPARATOR}{emitted_us:x} "


def parse_word(token: str) -> tuple[int, int] | None:
    """(index, emitted microseconds) of one stamped word without its space; None if garbled."""
    if not token.startswith(WORD_PREFIX):
        return None
    index, sep, stamp = token[1:].partition(STAMP_SEPARATOR)
    if not sep or not index.isdigit() or not stamp:
        return None
    try:
        return int(index), int(stamp, 16)
    except ValueError:
        return None


@dataclass
class WordStream:
    """The words of one reply as they arrive in text chunks, each with its arrival time."""

    indices: list[int] = field(default_factory=list)
    delays_ms: list[float] = field(default_factory=list)
    garbled: int = 0
    _carry: str = ""

    def feed(self, text: str, received_us: int) -> None:
        data = self._carry + text
        head, space, tail = data.rpartition(" ")
        if not space:
            self._carry = data
            return
        self._carry = tail
        for token in head.split(" "):
            if not token:
                continue
            parsed = parse_word(token)
            if parsed is None:
                self.garbled += 1
                continue
            index, emitted_us = parsed
            self.indices.append(index)
            self.delays_ms.append((received_us - emitted_us) / 1000)

    def close(self) -> None:
        """End of the reply: a word still waiting for its space was cut off."""
        if self._carry:
            self.garbled += 1
            self._carry = ""


@dataclass(frozen=True)
class WordAccount:
    lost: int
    duplicated: int
    reordered: int

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.reordered)


def account_words(indices: Sequence[int], expected: int) -> WordAccount:
    """Compare received word indices with 0..expected-1 sent in order.

    A repeat of an index already seen is a duplicate; an index smaller than one already seen
    (and not a repeat) arrived out of order; an index never seen (or out of range) is lost.
    """
    seen: set[int] = set()
    duplicated = reordered = 0
    highest = -1
    for index in indices:
        if index in seen:
            duplicated += 1
            continue
        seen.add(index)
        if index < highest:
            reordered += 1
        highest = max(highest, index)
    lost = expected - len(seen & set(range(expected)))
    return WordAccount(lost=lost, duplicated=duplicated, reordered=reordered)


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0..100) with linear interpolation between ranks, as numpy's
    default; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    if not 0 <= p <= 100:
        raise ValueError(f"percentile out of range: {p}")
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
