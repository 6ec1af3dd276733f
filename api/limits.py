"""Per-user limits on turns: a rate per minute (Redis counter), a concurrency cap and a monthly
token budget (database)."""

from __future__ import annotations

import time

from redis.asyncio import Redis
from sqlalchemy import func
from sqlmodel import Session, col, select

from shared.config import Settings
from shared.errors import RateLimited
from shared.models import ACTIVE_TURN_STATUSES, Turn, User
from shared.usage import check_budget


def rate_key(user_id: int, minute: int) -> str:
    return f"rate:{user_id}:{minute}"


async def check_turn_allowed(redis: Redis, settings: Settings, user_id: int) -> None:
    """Fixed one-minute windows: cheap, shared by all API processes, good enough for fairness."""
    key = rate_key(user_id, int(time.time() // 60))
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, 120)
        count, _ = await pipe.execute()
    if int(count) > settings.turns_per_minute:
        raise RateLimited(f"Too many messages: the limit is {settings.turns_per_minute} per minute")


def check_concurrent_turns(session: Session, settings: Settings, user_id: int) -> None:
    # Lock the user's row so two messages at once cannot both pass the count (PostgreSQL;
    # SQLite already serialises writers with BEGIN IMMEDIATE).
    session.exec(select(User.id).where(User.id == user_id).with_for_update()).first()
    running = session.exec(
        select(func.count(col(Turn.id))).where(
            Turn.user_id == user_id,
            col(Turn.status).in_([s.value for s in ACTIVE_TURN_STATUSES]),
        )
    ).one()
    if running >= settings.max_concurrent_turns_per_user:
        raise RateLimited(
            "Too many replies in progress: the limit is "
            f"{settings.max_concurrent_turns_per_user} at once"
        )


def check_new_turn(session: Session, settings: Settings, user_id: int) -> None:
    """May this user start another turn: under the concurrency cap and within their monthly
    token budget (RateLimited / BudgetExhausted otherwise), checked in the transaction that
    would store it, so a refusal stores nothing."""
    check_concurrent_turns(session, settings, user_id)
    check_budget(session, settings, user_id)
