"""Coalesce tiny text deltas into fewer, larger chunks.

Publishing every token doubles wall time elsewhere; publishing the whole text so far is
quadratic. So deltas are buffered for a short window (or until a size limit) and sent as one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class Coalescer:
    def __init__(
        self, emit: Callable[[str], Awaitable[object]], window_s: float, max_chars: int
    ) -> None:
        self._emit = emit
        self._window_s = window_s
        self._max_chars = max_chars
        self._buf: list[str] = []
        self._size = 0
        self._timer: asyncio.Task[None] | None = None

    async def add(self, text: str) -> None:
        if not text:
            return
        self._buf.append(text)
        self._size += len(text)
        if self._size >= self._max_chars or self._window_s <= 0:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._window_s)
        self._timer = None
        await self.flush()

    async def flush(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        if not self._buf:
            return
        # Take the buffer before awaiting, so a concurrent flush cannot send it twice.
        text = "".join(self._buf)
        self._buf.clear()
        self._size = 0
        await self._emit(text)

    async def aclose(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
