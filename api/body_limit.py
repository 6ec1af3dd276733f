"""Request bodies are bounded before anything else looks at them.

uvicorn sits directly on the port (no proxy in front), and FastAPI reads and parses a route's
body before its dependencies run, authentication included. So this pure ASGI middleware, the
outermost layer, refuses a body over the limit from its Content-Length at once (413), stops
reading a body without one as soon as it passes the limit (413), and refuses JSON nested more
deeply than the parser can take (400) before any route, authentication or parser sees it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Far deeper than any request of this API, far shallower than the parser's recursion limit.
MAX_JSON_DEPTH = 64
# A JSON string (escapes included), written so the engine never backtracks into it.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def json_too_deep(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `text` nests arrays/objects deeper than `limit`, brackets in strings aside.

    A scan before parsing: the standard parser recurses once per level and raises
    RecursionError (not ValueError) on a frame of a hundred thousand `[`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub("", text)):
        if m[0] in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await _refuse(send, 400, "Invalid Content-Length header")
                return
            if too_big:
                await _refuse(send, 413, self._too_large())
                return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _refuse(send, 413, self._too_large())  # the rest is never read
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and json_too_deep(body):
            await _refuse(send, 400, f"JSON nested too deeply (limit {MAX_JSON_DEPTH} levels)")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"Request body too large (limit {self.max_bytes} bytes)"


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
