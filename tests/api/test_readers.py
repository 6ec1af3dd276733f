"""Reading never waits for a writer: on SQLite, REST reads and the per-message credential check
take no write lock, so a long write elsewhere (another process's transaction) does not stall
them. And a token's last use is recorded at most once a minute, not on every request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import select

from shared.db import read_scope, session_scope
from shared.models import ApiToken
from tests.support.data import Account, make_account, make_project
from tests.support.processes import Stack


@pytest.fixture
def write_lock_held() -> Iterator[None]:
    """A write transaction held open on the service's database (SQLite: BEGIN IMMEDIATE)."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with session_scope() as session:
            session.exec(text("UPDATE users SET name = name WHERE id = -1"))  # type: ignore[call-overload]
            held.set()
            release.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join(10)


def _last_used(acct: Account) -> object:
    with read_scope() as session:
        row = session.exec(select(ApiToken).where(ApiToken.user_id == acct.user_id)).one()
        return row.last_used_at


def test_rest_reads_do_not_wait_for_a_writer(
    stack: Stack, project_dir: Path, request: pytest.FixtureRequest
) -> None:
    acct, project = make_account(), make_project(project_dir)
    base = f"{stack.api.base_url}/api"
    # The first request records the token's use (a write); within the minute, no more writes.
    assert httpx.get(f"{base}/projects", headers=acct.headers, timeout=10).status_code == 200
    first_use = _last_used(acct)
    assert first_use is not None
    request.getfixturevalue("write_lock_held")
    # The busy timeout is 30 s: a reader that took the write lock would time out here.
    for path in (f"/assistant/conversations/{project}", "/projects"):
        response = httpx.get(f"{base}{path}", headers=acct.headers, timeout=5)
        assert response.status_code == 200, response.text
    assert _last_used(acct) == first_use
