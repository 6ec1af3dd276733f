"""autocoder's feature backlog (`features.db` at the project root): opened safely, read, grown.

The database is opened through the tools' sandbox, never by a path the model supplies: the
file must be a regular file named `features.db` directly in the project (not a symbolic link,
not a protected file, not hard-linked unless the project allows it). SQLite then opens the same
path in the project's real directory, and the inode it reaches is checked against the
descriptor the sandbox opened, before and after, so a file swapped in between is refused.
SQLite is never asked to create the file (`mode=rw` / `mode=ro`).

Writes take SQLite's write lock at once (`BEGIN IMMEDIATE`) and compute the new priority inside
that transaction, so workers in several processes racing to add features get distinct
priorities; the lock is held for one INSERT or UPDATE, and others wait for it (busy timeout).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shared.tools import DEFAULT_LIMITS, ToolError, ToolLimits
from shared.tools.sandbox import Project, check_regular, denied

DB_NAME = "features.db"
COLUMNS = ("id", "priority", "category", "name", "description", "steps", "passes", "in_progress")
BUSY_TIMEOUT_S = 5.0
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class NoBacklog(ToolError):
    """The project has no usable features.db."""


@contextlib.contextmanager
def open_backlog(
    root: Path, limits: ToolLimits = DEFAULT_LIMITS, *, write: bool = False
) -> Iterator[sqlite3.Connection]:
    """A connection to the project's features.db (autocommit mode: the caller opens its own
    transactions), checked as the module docstring says; NoBacklog when there is none."""
    with Project(root, limits) as project:
        if denied((DB_NAME,), limits.deny_globs):
            raise NoBacklog(f"access to '{DB_NAME}' is not allowed (protected file)")
        try:
            fd = os.open(DB_NAME, _OPEN_FLAGS, dir_fd=project.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise NoBacklog(f"'{DB_NAME}' is a symbolic link; refused") from None
            raise NoBacklog(f"this project has no {DB_NAME}") from None
        try:
            held = os.fstat(fd)
            check_regular(held, DB_NAME, limits)
            path = project.path / DB_NAME
            _same_file(path, held)
            mode = "rw" if write else "ro"
            conn = sqlite3.connect(
                f"file:{quote(str(path))}?mode={mode}",
                uri=True,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute("PRAGMA schema_version").fetchone()  # opens the file now
                _same_file(path, held)
                conn.row_factory = sqlite3.Row
                yield conn
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise ToolError(f"the backlog database cannot be used: {exc}") from None
        finally:
            os.close(fd)


def _same_file(path: Path, held: os.stat_result) -> None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        raise NoBacklog(f"'{DB_NAME}' changed while it was being opened; refused") from None
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (held.st_dev, held.st_ino):
        raise NoBacklog(f"'{DB_NAME}' changed while it was being opened; refused")


def has_backlog(root: Path, limits: ToolLimits = DEFAULT_LIMITS) -> bool:
    """Whether the project holds an autocoder features.db with the `features` table."""
    try:
        with open_backlog(root, limits) as conn:
            rows = conn.execute("PRAGMA table_info(features)").fetchall()
    except (ToolError, sqlite3.Error):
        return False
    return set(COLUMNS) <= {row["name"] for row in rows}


def feature_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A feature as autocoder's tools return it."""
    try:
        steps = json.loads(row["steps"]) if isinstance(row["steps"], str) else row["steps"]
    except ValueError:
        steps = row["steps"]
    return {
        "id": row["id"],
        "priority": row["priority"],
        "category": row["category"],
        "name": row["name"],
        "description": row["description"],
        "steps": steps,
        "passes": bool(row["passes"]),
        "in_progress": bool(row["in_progress"]),
    }


_SELECT = f"SELECT {', '.join(COLUMNS)} FROM features"


def stats(conn: sqlite3.Connection) -> dict[str, Any]:
    row = conn.execute(
        "SELECT COUNT(*) AS total, COALESCE(SUM(passes = 1), 0) AS passing, "
        "COALESCE(SUM(in_progress = 1), 0) AS in_progress FROM features"
    ).fetchone()
    total, passing = int(row["total"]), int(row["passing"])
    return {
        "passing": passing,
        "in_progress": int(row["in_progress"]),
        "total": total,
        "percentage": round(passing / total * 100, 1) if total else 0.0,
    }


def next_feature(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute(
        f"{_SELECT} WHERE COALESCE(passes, 0) = 0 ORDER BY priority ASC, id ASC LIMIT 1"
    ).fetchone()
    return feature_dict(row) if row is not None else None


def for_regression(conn: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(f"{_SELECT} WHERE passes = 1 ORDER BY RANDOM() LIMIT ?", (limit,))
    return [feature_dict(r) for r in rows.fetchall()]


@contextlib.contextmanager
def write_lock(conn: sqlite3.Connection) -> Iterator[None]:
    """One short write transaction, its lock taken at the start (BEGIN IMMEDIATE)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _next_priority(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(priority), 0) + 1 FROM features").fetchone()[0])


def create(conn: sqlite3.Connection, features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Append `features` (validated) after the highest priority, in order; the created rows."""
    with write_lock(conn):
        first = _next_priority(conn)
        ids = []
        for i, f in enumerate(features):
            cur = conn.execute(
                "INSERT INTO features (priority, category, name, description, steps, passes, "
                "in_progress) VALUES (?, ?, ?, ?, ?, 0, 0)",
                (first + i, f["category"], f["name"], f["description"], json.dumps(f["steps"])),
            )
            ids.append(cur.lastrowid)
        rows = conn.execute(
            f"{_SELECT} WHERE id IN ({', '.join('?' * len(ids))}) ORDER BY priority", ids
        ).fetchall()
    return [feature_dict(r) for r in rows]


def skip(conn: sqlite3.Connection, feature_id: int) -> dict[str, Any]:
    """Move a feature that does not pass after the highest priority and clear in_progress."""
    with write_lock(conn):
        row = conn.execute(f"{_SELECT} WHERE id = ?", (feature_id,)).fetchone()
        if row is None:
            raise ToolError(f"feature {feature_id} does not exist")
        if row["passes"]:
            raise ToolError(
                f"feature {feature_id} already passes; only pending features can be skipped"
            )
        new_priority = _next_priority(conn)
        conn.execute(
            "UPDATE features SET priority = ?, in_progress = 0 WHERE id = ?",
            (new_priority, feature_id),
        )
    return {
        "id": feature_id,
        "name": row["name"],
        "old_priority": row["priority"],
        "new_priority": new_priority,
        "message": f"Feature '{row['name']}' moved to the end of the queue",
    }
