"""Users, tokens and projects created straight in the test database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from shared import auth, projects
from shared.db import session_scope


@dataclass(frozen=True)
class Account:
    name: str
    token: str
    user_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_account(admin: bool = False) -> Account:
    name = f"u{uuid.uuid4().hex[:10]}"
    with session_scope() as session:
        user = auth.create_user(session, name, is_admin=admin)
        _, token = auth.issue_token(session, user)
        assert user.id is not None
        return Account(name, token, user.id)


def make_project(path: Path) -> str:
    name = f"p{uuid.uuid4().hex[:10]}"
    with session_scope() as session:
        projects.add_project(session, name, str(path))
    return name
