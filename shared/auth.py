"""Users and API tokens. Tokens are random, shown once, and stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from shared.errors import Conflict, InvalidInput, NotFound, Unauthorized
from shared.models import ApiToken, User, utcnow

TOKEN_PREFIX = "pa_"
USER_NAME_RE = re.compile(r"^[a-zA-Z0-9_.@-]{1,64}$")
LOCAL_USER = "local"


def hash_token(token: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough (no password stretching).
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, name: str, is_admin: bool = False) -> User:
    if not USER_NAME_RE.fullmatch(name):
        raise InvalidInput("User names are 1-64 letters, digits or _ . @ -")
    if session.exec(select(User).where(User.name == name)).first() is not None:
        raise Conflict(f"User '{name}' already exists")
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, name: str) -> User:
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(f"No user '{name}'")
    return user


def find_user(session: Session, name: str) -> User | None:
    return session.exec(select(User).where(User.name == name)).first()


def ensure_user(session: Session, name: str, is_admin: bool = False) -> User:
    user = session.exec(select(User).where(User.name == name)).first()
    return user if user is not None else create_user(session, name, is_admin)


def issue_token(session: Session, user: User, name: str = "") -> tuple[ApiToken, str]:
    """A new token for `user`: (its row, the secret, which is not stored anywhere)."""
    assert user.id is not None
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id, token_hash=hash_token(secret), prefix=secret[:10], name=name[:64]
    )
    session.add(row)
    session.flush()
    return row, secret


# A token's last use is recorded at most this often: recording it on every request would make
# each request (and each chat message) a database write.
LAST_USE_RESOLUTION = timedelta(minutes=1)


def identify(session: Session, token: str | None) -> tuple[User, ApiToken]:
    """The token's owner and row, or Unauthorized; reads only."""
    if not token:
        raise Unauthorized("Missing credentials")
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        raise Unauthorized("Invalid or revoked token")
    user = session.get(User, row.user_id)
    if user is None:
        raise Unauthorized("Invalid or revoked token")
    return user, row


def use_is_stale(row: ApiToken) -> bool:
    last = row.last_used_at
    if last is None:
        return True
    last = last if last.tzinfo is not None else last.replace(tzinfo=UTC)
    return utcnow() - last > LAST_USE_RESOLUTION


def record_use(session: Session, token_id: int) -> None:
    session.execute(
        update(ApiToken).where(col(ApiToken.id) == token_id).values(last_used_at=utcnow())
    )


def authenticate(session: Session, token: str | None) -> User:
    """The token's owner (in a writing session: its last use is recorded when stale)."""
    user, row = identify(session, token)
    if use_is_stale(row) and row.id is not None:
        record_use(session, row.id)
    return user


def list_tokens(session: Session, user: User | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(col(ApiToken.id))
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(session.exec(query).all())


def revoke_token(session: Session, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"No token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row
