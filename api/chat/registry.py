"""Open assistant WebSockets, per user, visible to every API process through Redis.

autocoder's REST calls these "sessions" (`/api/assistant/sessions`): it kept one per project,
so a second tab or user replaced the first. Here each connection is registered on its own;
listing shows only the caller's, and closing them reaches the API process that holds each one
through a control message on the relay's connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from redis.asyncio import Redis

REGISTRATION_TTL_S = 120.0  # refreshed by the holding process; a crashed one's entries age out
# Control messages between API processes (close a user's connections), read by the relay.
CONTROL_CHANNEL = "assistant:control"


def connections_key(user_id: int) -> str:
    return f"connections:{user_id}"


@dataclass(frozen=True)
class OpenConnection:
    connection_id: str
    project_name: str
    conversation_id: int | None


class ConnectionRegistry:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def put(
        self, user_id: int, connection_id: str, project: str, conversation_id: int | None
    ) -> None:
        value = json.dumps(
            {
                "project": project,
                "conversation_id": conversation_id,
                "expires": time.time() + REGISTRATION_TTL_S,
            }
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(connections_key(user_id), connection_id, value)
            pipe.expire(connections_key(user_id), int(REGISTRATION_TTL_S))
            await pipe.execute()

    async def remove(self, user_id: int, connection_id: str) -> None:
        await self.redis.hdel(connections_key(user_id), connection_id)

    async def list(self, user_id: int) -> list[OpenConnection]:
        raw = cast(dict[str, str], await self.redis.hgetall(connections_key(user_id)))
        now = time.time()
        found = []
        for conn, value in raw.items():
            data = json.loads(value)
            if data.get("expires", 0) < now:
                continue
            found.append(OpenConnection(conn, data["project"], data.get("conversation_id")))
        return sorted(found, key=lambda s: s.connection_id)

    async def close(self, user_id: int, project: str) -> None:
        """Close the user's connections to `project`, on whichever API process holds them."""
        await self.redis.publish(
            CONTROL_CHANNEL, json.dumps({"op": "close", "user_id": user_id, "project": project})
        )


class _Local(Protocol):
    """What the registry needs of a local connection (api.chat.connection.Connection)."""

    id: str
    user_id: int
    project: str
    conversation_id: int | None

    async def close(self, code: int, reason: str) -> None: ...


async def close_local(connections: Mapping[str, _Local], message: dict[str, Any]) -> None:
    """A control message from any API process: close this process's matching connections."""
    if message.get("op") != "close":
        return
    for conn in list(connections.values()):
        if conn.user_id == message.get("user_id") and conn.project == message.get("project"):
            with contextlib.suppress(Exception):
                await conn.close(code=1000, reason="Session closed")


async def keep_registered(registry: ConnectionRegistry, connections: Mapping[str, _Local]) -> None:
    """Forever: refresh this process's registrations before they age out."""
    while True:
        await asyncio.sleep(REGISTRATION_TTL_S / 3)
        for conn in list(connections.values()):
            if conn.conversation_id is not None:
                with contextlib.suppress(Exception):
                    await registry.put(conn.user_id, conn.id, conn.project, conn.conversation_id)
