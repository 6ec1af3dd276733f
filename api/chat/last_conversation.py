"""The conversation of each user's last `start` in a project, remembered in Redis for a day.

autocoder's client reconnects after a dropped connection without sending `start` again and
expects its next `message` to continue the same conversation: the original kept one session
per project that outlived disconnects. Here the reconnect may reach any API process, so the
conversation is remembered in Redis; and it is keyed by user as well as project, so another
user's connection can never continue it (the original's per-project session let it).
"""

from __future__ import annotations

from redis.asyncio import Redis

REMEMBER_S = 24 * 3600


def last_conversation_key(user_id: int, project: str) -> str:
    return f"last-conversation:{user_id}:{project}"


async def remember(redis: Redis, user_id: int, project: str, conversation_id: int) -> None:
    await redis.set(last_conversation_key(user_id, project), conversation_id, ex=REMEMBER_S)


async def keep(redis: Redis, user_id: int, project: str) -> None:
    """Another day for whichever conversation is remembered now: used, it stays, but a later
    `start` elsewhere (another tab) is not overwritten by a connection still on an older one."""
    await redis.expire(last_conversation_key(user_id, project), REMEMBER_S)


async def recall(redis: Redis, user_id: int, project: str) -> int | None:
    """The remembered conversation id, if any; using it keeps it for another day."""
    key = last_conversation_key(user_id, project)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(key)
        pipe.expire(key, REMEMBER_S)
        value, _ = await pipe.execute()
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def forget(redis: Redis, user_id: int, project: str) -> bool:
    """Forget it (the session is closed); whether there was one."""
    return bool(await redis.delete(last_conversation_key(user_id, project)))
