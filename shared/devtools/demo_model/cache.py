"""The demo model's prompt cache: which part of a request's prompt it reads from cache.

A request's prompt is a sequence of blocks: the tools, the system blocks, then each message's
content blocks (a string content is one text block). A `cache_control` mark on a block is a
breakpoint. As the Messages API documents it:

- the prefix up to each breakpoint is written to the cache (kept five minutes, refreshed on
  every hit);
- a request reads the longest cached prefix that ends at one of its breakpoints or at one of
  the 20 blocks before each of them;
- the marks themselves are not part of the prefix, a change of `tool_choice` invalidates the
  cached messages (not the tools or the system prompt), and at most 4 breakpoints are allowed.

Tokens are estimated as a quarter of the canonical JSON's length, deterministically, so tests
and benchmarks can compare the reported numbers. Usage is reported as the API does:
`input_tokens` is what was neither read from nor written to the cache.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.devtools.demo_model.blocks import InvalidRequest, blocks_of

TTL_S = 300.0
LOOKBACK_BLOCKS = 20
MAX_BREAKPOINTS = 4
MAX_ENTRIES = 50_000


@dataclass(frozen=True)
class Unit:
    """One block of the prompt: its canonical form and whether a breakpoint ends on it."""

    canonical: str
    breakpoint: bool


def _canonical(value: Any) -> str:
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != "cache_control"}
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def prompt_units(body: Mapping[str, Any]) -> tuple[list[Unit], int]:
    """The prompt's blocks in cache order, and the index of the first message block."""
    units = [
        Unit(_canonical(t), isinstance(t, dict) and "cache_control" in t)
        for t in body.get("tools") or []
    ]
    for block in blocks_of(body.get("system") or []):
        units.append(Unit(_canonical(block), "cache_control" in block))
    first_message = len(units)
    for msg in body["messages"]:
        for i, block in enumerate(blocks_of(msg["content"])):
            # The role and message boundaries are part of the prompt too.
            plain = {k: v for k, v in block.items() if k != "cache_control"}
            unit = _canonical({"role": msg["role"], "first": i == 0, "block": plain})
            units.append(Unit(unit, "cache_control" in block))
    return units, first_message


def estimate_tokens(body: Mapping[str, Any]) -> int:
    units, _ = prompt_units(body)
    return max(1, sum(len(u.canonical) for u in units) // 4)


class PromptCache:
    """The cache, shared by every request to one demo model server (thread-safe)."""

    def __init__(self, ttl_s: float = TTL_S) -> None:
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, float] = OrderedDict()  # prefix hash -> expiry
        self._lock = threading.Lock()

    def account(self, body: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
        """Look the request's prefixes up, write its breakpoints, and return its usage fields."""
        units, first_message = prompt_units(body)
        breakpoints = [i for i, u in enumerate(units) if u.breakpoint]
        if len(breakpoints) > MAX_BREAKPOINTS:
            raise InvalidRequest(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {len(breakpoints)}."
            )
        hashes, tokens = self._prefixes(body, units, first_message)
        now = time.monotonic() if now is None else now
        with self._lock:
            read_end = -1
            for b in breakpoints:
                for j in range(b, max(-1, b - LOOKBACK_BLOCKS - 1), -1):
                    if self._alive(hashes[j], now):
                        read_end = max(read_end, j)
                        break
            if read_end >= 0:
                self._entries[hashes[read_end]] = now + self.ttl_s
                self._entries.move_to_end(hashes[read_end])
            written_end = read_end
            for b in breakpoints:
                if b > read_end:
                    self._entries[hashes[b]] = now + self.ttl_s
                    self._entries.move_to_end(hashes[b])
                    written_end = max(written_end, b)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
        total = max(1, tokens[-1] if tokens else 0)
        read = tokens[read_end] if read_end >= 0 else 0
        written = (tokens[written_end] if written_end >= 0 else 0) - read
        return {
            "input_tokens": total - read - written,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": written,
                "ephemeral_1h_input_tokens": 0,
            },
        }

    def _alive(self, key: str, now: float) -> bool:
        expiry = self._entries.get(key)
        return expiry is not None and expiry > now

    @staticmethod
    def _prefixes(
        body: Mapping[str, Any], units: list[Unit], first_message: int
    ) -> tuple[list[str], list[int]]:
        """Each block's prefix hash and the tokens up to and including it."""
        h = hashlib.sha256(_canonical(body.get("model")).encode())
        hashes: list[str] = []
        tokens: list[int] = []
        chars = 0
        for i, unit in enumerate(units):
            if i == first_message:
                # Cached messages only count with the same tool_choice.
                h.update(_canonical(body.get("tool_choice")).encode())
            h.update(b"\x00" + unit.canonical.encode())
            hashes.append(h.copy().hexdigest())
            chars += len(unit.canonical)
            tokens.append(chars // 4)
        return hashes, tokens
