"""Live WebSocket sessions, per user and connection, visible to every API process via Redis.

autocoder kept one session per project, so a second tab or user replaced the first. Here each
connection is its own session; listing shows only the caller's, and closing one reaches the API
process that holds it through a control message on the relay's channel.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from shared.channels import SESSION_CONTROL, sessions_key

SESSION_TTL_S = 120.0  # refreshed by the holding process; a crashed process's entries age out


@dataclass(frozen=True)
class LiveSession:
    connection_id: str
    project_name: str
    conversation_id: int | None


class SessionRegistry:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def put(
        self, user_id: int, connection_id: str, project: str, conversation_id: int | None
    ) -> None:
        value = json.dumps(
            {
                "project": project,
                "conversation_id": conversation_id,
                "expires": time.time() + SESSION_TTL_S,
            }
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(sessions_key(user_id), connection_id, value)
            pipe.expire(sessions_key(user_id), int(SESSION_TTL_S))
            await pipe.execute()

    async def remove(self, user_id: int, connection_id: str) -> None:
        await self.redis.hdel(sessions_key(user_id), connection_id)

    async def list(self, user_id: int) -> list[LiveSession]:
        raw: dict[Any, Any] = await self.redis.hgetall(sessions_key(user_id))
        now = time.time()
        found = []
        for conn, value in raw.items():
            data = json.loads(value)
            if data.get("expires", 0) < now:
                continue
            conn_id = conn.decode() if isinstance(conn, bytes) else str(conn)
            found.append(LiveSession(conn_id, data["project"], data.get("conversation_id")))
        return sorted(found, key=lambda s: s.connection_id)

    async def close(self, user_id: int, project: str) -> None:
        await self.redis.publish(
            SESSION_CONTROL, json.dumps({"op": "close", "user_id": user_id, "project": project})
        )
