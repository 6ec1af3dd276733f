"""A small synchronous WebSocket client speaking the assistant protocol, for the tests."""

from __future__ import annotations

import json
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

TERMINAL = {"response_done", "error"}


class WsClient:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        extra = dict(headers or {})
        if token:
            extra["Authorization"] = f"Bearer {token}"
        self._cm = connect(url, additional_headers=extra or None, open_timeout=10, **kwargs)
        self.conn: ClientConnection = self._cm.__enter__()
        self.received: list[dict[str, Any]] = []

    def send(self, **msg: Any) -> None:
        self.conn.send(json.dumps(msg))

    def send_raw(self, raw: str) -> None:
        self.conn.send(raw)

    def recv(self, timeout: float = 15) -> dict[str, Any]:
        msg = json.loads(self.conn.recv(timeout=timeout))
        self.received.append(msg)
        return dict(msg)

    def recv_until(self, pred: Any, timeout: float = 30) -> list[dict[str, Any]]:
        """Frames up to and including the first that satisfies `pred`."""
        deadline = time.monotonic() + timeout
        got: list[dict[str, Any]] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching frame; got {got}")
            msg = self.recv(timeout=remaining)
            got.append(msg)
            if pred(msg):
                return got

    def until_closed(self, timeout: float = 10) -> tuple[list[dict[str, Any]], int | None]:
        """Every frame until the server closes the connection, and the close code (None when
        it ended without a close frame)."""
        deadline = time.monotonic() + timeout
        frames: list[dict[str, Any]] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the server did not close the connection; got {frames}")
            try:
                frames.append(self.recv(timeout=remaining))
            except ConnectionClosed as exc:
                return frames, exc.rcvd.code if exc.rcvd is not None else None

    def until_terminal(self, timeout: float = 30) -> list[dict[str, Any]]:
        return self.recv_until(lambda m: m["type"] in TERMINAL and "turn_id" in m, timeout)

    def start(self, conversation_id: int | None = None) -> int:
        """`start`; the conversation id once the server has bound it.

        A new conversation: `conversation_created`, the greeting, `response_done` (all read
        here). A stored one with no reply running: a single `response_done` (no `turn_id`), as
        the original answered. With a reply running: `conversation_created`, then the reply's
        chunks, which are left for the caller to read."""
        self.send(type="start", conversation_id=conversation_id)
        frames = self.recv_until(
            lambda m: (
                m["type"] in ("conversation_created", "error")
                or (m["type"] == "response_done" and "turn_id" not in m)
            )
        )
        last = frames[-1]
        if last["type"] == "error":
            raise AssertionError(f"start failed: {last['content']}")
        if conversation_id is None:
            self.recv_until(lambda m: m["type"] == "response_done")
            return int(last["conversation_id"])
        return int(last.get("conversation_id", conversation_id))

    def ask(self, content: str, timeout: float = 30, **extra: Any) -> list[dict[str, Any]]:
        self.send(type="message", content=content, **extra)
        return self.until_terminal(timeout)

    def close(self) -> None:
        self._cm.__exit__(None, None, None)

    def __enter__(self) -> WsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def text_of(frames: list[dict[str, Any]]) -> str:
    return "".join(f["content"] for f in frames if f["type"] == "text")


def turn_frames(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if "seq" in f]
