"""Database fixtures of each kind, migrated: a fresh SQLite file and a fresh PostgreSQL database.

PostgreSQL is skipped when no server is reachable at 127.0.0.1:5432. The schema always comes
from the Alembic migrations, never create_all, so these tests also prove that the migrations
build a working schema on both.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

import shared.db
from shared import conversations as convs
from shared.db import make_engine
from shared.migrate import upgrade
from tests.support.db import Ids, new_user

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
PG_ADMIN_URL = f"{PG_SERVER}/test"


def _pg_engine() -> Iterator[Engine]:
    admin = create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        conn = admin.connect()
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc.orig}")
    name = f"assistant_test_{uuid.uuid4().hex[:16]}"
    conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine: Engine | None = None
    try:
        url = f"{PG_SERVER}/{name}"
        upgrade(url)
        engine = make_engine(url)
        yield engine
    finally:
        if engine is not None:
            engine.dispose()
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.close()
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database of each kind."""
    if request.param == "postgresql":
        yield from _pg_engine()
        return
    url = f"sqlite:///{tmp_path / 'assistant.db'}"
    upgrade(url)
    eng = make_engine(url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def scoped(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Point shared.db.session_scope (used by the turn functions) at this test's engine."""
    monkeypatch.setattr(shared.db, "get_engine", lambda: engine)
    return engine


@pytest.fixture
def conv_ids(engine: Engine) -> Ids:
    """A user and their conversation (with the greeting) in project 'demo', committed."""
    with Session(engine) as s:
        uid = new_user(s, "alice")
        conv = convs.create_conversation(s, "demo", uid)
        convs.add_greeting(s, conv)
        assert conv.id is not None
        ids = Ids(uid, conv.id)
        s.commit()
    return ids
