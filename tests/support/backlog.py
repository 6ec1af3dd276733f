"""autocoder's features.db, made the way autocoder makes it (its SQLAlchemy schema's DDL)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE features (
    id INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    category VARCHAR(100) NOT NULL,
    name VARCHAR(255) NOT NULL,
    description TEXT NOT NULL,
    steps JSON NOT NULL,
    passes BOOLEAN,
    in_progress BOOLEAN,
    PRIMARY KEY (id)
);
CREATE INDEX ix_features_id ON features (id);
CREATE INDEX ix_features_priority ON features (priority);
CREATE INDEX ix_features_passes ON features (passes);
CREATE INDEX ix_features_in_progress ON features (in_progress);
"""

FEATURES: list[dict[str, Any]] = [
    # (priority, category, name, passes, in_progress)
    {"priority": 1, "category": "Auth", "name": "Login form", "passes": True},
    {"priority": 2, "category": "Auth", "name": "Password reset", "passes": True},
    {
        "priority": 3,
        "category": "UI",
        "name": "Settings page",
        "passes": False,
        "in_progress": True,
    },
    {"priority": 4, "category": "API", "name": "Export as CSV", "passes": False},
    {"priority": 5, "category": "UI", "name": "Keyboard shortcuts", "passes": False},
]


def make_features_db(root: Path, features: list[dict[str, Any]] | None = None) -> Path:
    path = root / "features.db"
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SCHEMA)
        for f in FEATURES if features is None else features:
            conn.execute(
                "INSERT INTO features (priority, category, name, description, steps, passes, "
                "in_progress) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    f["priority"],
                    f["category"],
                    f["name"],
                    f.get("description", f"{f['name']}, as described in the spec."),
                    json.dumps(f.get("steps", [f"Build {f['name']}", "Check it works"])),
                    f.get("passes", False),
                    f.get("in_progress", False),
                ),
            )
        conn.commit()
    finally:
        conn.close()
    return path


def rows(path: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM features ORDER BY id")]
    finally:
        conn.close()
