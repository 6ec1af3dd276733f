"""A client that speaks to the server the way autocoder's own web client does.

autocoder's `useAssistantChat.ts`, reduced to what the server sees: `start` omits
`conversation_id` for a new conversation; after `start` or `message` the input stays disabled
("loading") until any `response_done` or `error` arrives; after a dropped connection it connects
again and sends **no** `start`; its messages carry no `client_message_id`; it ignores frame types
it does not know.
"""

from __future__ import annotations

from typing import Any

from tests.support.client import WsClient

LOADING_ENDS = {"response_done", "error"}


class AutocoderClient:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.ws: WsClient | None = None
        self.conversation_id: int | None = None

    def connect(self, url: str | None = None) -> None:
        """Open a (new) connection, to another API process when `url` is given; no `start`."""
        self.drop()
        self.ws = WsClient(url or self.url, self.token)

    def drop(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None

    def _conn(self) -> WsClient:
        if self.ws is None:
            self.connect()
        assert self.ws is not None
        return self.ws

    def _until_loading_ends(self, timeout: float) -> list[dict[str, Any]]:
        frames = self._conn().recv_until(lambda m: m["type"] in LOADING_ENDS, timeout)
        for frame in frames:
            if frame["type"] == "conversation_created":
                self.conversation_id = frame["conversation_id"]
        return frames

    def start(self, conversation_id: Any = None, timeout: float = 30) -> list[dict[str, Any]]:
        """`start`, then every frame until the input would be enabled again."""
        payload: dict[str, Any] = {"type": "start"}
        if conversation_id:
            payload["conversation_id"] = conversation_id
            self.conversation_id = conversation_id
        self._conn().send(**payload)
        return self._until_loading_ends(timeout)

    def send_message(self, content: str, timeout: float = 30) -> list[dict[str, Any]]:
        self._conn().send(type="message", content=content)
        return self._until_loading_ends(timeout)

    def __enter__(self) -> AutocoderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()
