"""FastAPI dependencies: the database session, the current user, and the shared Redis client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlmodel import Session

from shared import auth
from shared.config import Settings, get_settings
from shared.db import read_scope, session_scope
from shared.errors import Forbidden
from shared.models import User


def get_db() -> Iterator[Session]:
    with session_scope() as session:
        yield session


def get_read_db() -> Iterator[Session]:
    with read_scope() as session:
        yield session


# scope="function": the commit happens before the response is sent, never after it.
SessionDep = Annotated[Session, Depends(get_db, scope="function")]
# For routes that only read: on SQLite they wait for no writer.
ReadSessionDep = Annotated[Session, Depends(get_read_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def resolve_user(session: Session, settings: Settings, token: str | None) -> User:
    """The caller, inside a writing transaction: the token's owner; in open mode (local
    development) the local user."""
    if settings.auth_mode == "open" and not token:
        return auth.ensure_user(session, auth.LOCAL_USER, is_admin=True)
    return auth.authenticate(session, token)


def current_user(settings: Settings, token: str | None) -> User:
    """The caller, in short transactions of its own that write only when they must (the local
    user's first use, a token's last use when stale): most requests only read."""
    with read_scope() as session:
        if settings.auth_mode == "open" and not token:
            user = auth.find_user(session, auth.LOCAL_USER)
            stale_token_id = None
        else:
            user, row = auth.identify(session, token)
            stale_token_id = row.id if auth.use_is_stale(row) else None
    if user is None or stale_token_id is not None:
        with session_scope() as session:
            return resolve_user(session, settings, token)
    return user


def get_current_user(request: Request, settings: SettingsDep) -> User:
    return current_user(settings, bearer_token(request.headers.get("authorization")))


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("Only administrators can do this")
    return user


AdminUser = Annotated[User, Depends(get_admin)]


def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


RedisDep = Annotated[Redis, Depends(get_redis)]
