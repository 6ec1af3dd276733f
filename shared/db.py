"""Engine and sessions: one engine per process, sessions that commit or roll back at the edge."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlmodel import Session, create_engine

from shared.config import get_settings
from shared.metrics import DATABASE_ERRORS


def make_engine(url: str) -> Engine:
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        # The API and the worker's threads share the file: wait on locks instead of failing.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 20
    engine = create_engine(url, **kwargs)
    event.listen(engine, "handle_error", _count_error)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


READ_ONLY = "assistant_read_only"  # execution option of `read_scope` sessions


def _count_error(context: Any) -> None:
    """Every failed statement or connection of any process shows in its metrics."""
    error = context.sqlalchemy_exception or context.original_exception
    DATABASE_ERRORS.labels(type(error).__name__).inc()


def _sqlite_begin(conn: Any) -> None:
    # Several processes write one file. A deferred transaction that reads and then writes can
    # fail at once with "database is locked" (the busy timeout does not apply to that upgrade);
    # taking the write lock up front makes every writer wait its turn instead. Transactions
    # here are short, and deployments use PostgreSQL. Reading-only sessions never write, so
    # they take no lock at all: in WAL mode they read a snapshot beside the one writer.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL lets the API read while a worker writes; foreign keys make cascades real.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().sqlalchemy_url)


@contextmanager
def read_scope() -> Iterator[Session]:
    """A session for reading only: never committed, and on SQLite it waits for no writer."""
    with Session(get_engine().execution_options(**{READ_ONLY: True})) as session:
        yield session


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error (worker and CLI edge)."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
