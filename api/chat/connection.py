"""One client's WebSocket: what it is bound to, how chunks reach it, and the turn it follows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field

from fastapi import WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from api.follow import GONE, TurnFollower
from api.metrics import chunk_sent
from shared.config import Settings
from shared.protocol import Chunk, error_chunk

log = logging.getLogger(__name__)


@dataclass
class Connection:
    ws: WebSocket
    settings: Settings
    project: str
    user_id: int = 0
    # The conversation this connection acts on (its `start`, or the user's last one).
    conversation_id: int | None = None
    id: str = field(default_factory=lambda: f"{time.time_ns()}-{uuid.uuid4().hex[:8]}")
    # Checked again for every new turn, so a revoked token stops working on open sockets too.
    credential: str | None = None
    follower: asyncio.Task[None] | None = None
    following: int | None = None
    generation: int = 0
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Highest seq sent per turn on this connection: switching followers never repeats one.
    sent_seq: dict[int, int] = field(default_factory=dict)

    async def send(self, chunk: Chunk) -> None:
        async with self.send_lock:
            if self.ws.application_state == WebSocketState.CONNECTED:
                data = chunk.dump()
                await self.ws.send_text(data)
                chunk_sent(chunk, len(data))
                if chunk.turn_id is not None and chunk.seq is not None:
                    self.sent_seq[chunk.turn_id] = chunk.seq

    async def send_for(self, generation: int, chunk: Chunk) -> None:
        """Send on behalf of a follower; a replaced (stale) follower can never send again."""
        if generation == self.generation:
            await self.send(chunk)

    async def error(self, content: str) -> None:
        await self.send(error_chunk(content))

    def follow(self, turn_id: int, after_seq: int, *, new_turn: bool = False) -> TurnFollower:
        """Stream turn `turn_id` to this connection in the background, replacing any other."""
        if self.follower is not None and not self.follower.done():
            if self.following == turn_id:
                # Switching followers of the same live turn (start, then resume): no repeats.
                after_seq = max(after_seq, self.sent_seq.get(turn_id, 0))
            self.follower.cancel()
        self.following = turn_id
        self.generation += 1
        generation = self.generation

        async def send(chunk: Chunk) -> None:
            await self.send_for(generation, chunk)

        state = self.ws.app.state
        follower = TurnFollower(
            state.relay, state.redis, turn_id, after_seq, send, new_turn=new_turn
        )

        async def run() -> None:
            try:
                await follower.run()
            except (WebSocketDisconnect, RuntimeError):
                pass  # the client went away; the turn goes on without it
            except Exception:
                # Never leave the client waiting without a terminal chunk.
                log.exception("websocket %s: following turn %s failed", self.id, turn_id)
                with contextlib.suppress(Exception):
                    await send(error_chunk(GONE, turn_id=turn_id))

        self.follower = asyncio.create_task(run(), name=f"follow-{self.id}-{turn_id}")
        return follower

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, reason=reason)

    def stop_following(self) -> None:
        """A disconnect is not a stop: only our forwarding ends; the turn runs on."""
        if self.follower is not None:
            self.follower.cancel()
