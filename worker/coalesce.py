"""Coalesce tiny text deltas into fewer, larger chunks.

Publishing every token doubles wall time elsewhere; publishing the whole text so far is
quadratic. So deltas are buffered for a short window (or until a size limit) and sent as one.
The very first text goes out at once: the time to the first word is what a reader feels most,
and one more chunk per reply costs nothing worth that.
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
        # An emit that failed in the timer task, raised again to the next caller.
        self._error: BaseException | None = None
        # Held while emitting: a flush waits for the timer's emit in flight, so that after
        # `flush()` returns everything added before it has been emitted, in order.
        self._emitting = asyncio.Lock()
        self._emitted = False

    async def add(self, text: str) -> None:
        self._raise_pending()
        if not text:
            return
        self._buf.append(text)
        self._size += len(text)
        if self._size >= self._max_chars or self._window_s <= 0 or not self._emitted:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._window_s)
        self._timer = None
        try:
            await self.flush()
        except Exception as exc:
            self._error = exc

    def _raise_pending(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    async def flush(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()  # still sleeping: a timer about to emit has cleared self._timer
        async with self._emitting:
            self._raise_pending()
            if not self._buf:
                return
            text = "".join(self._buf)
            self._buf.clear()
            self._size = 0
            self._emitted = True
            await self._emit(text)

    async def aclose(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
