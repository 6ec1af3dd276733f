"""search index kept right on SQLite: one update trigger, delete before insert

Revision ID: 7e3f9a1c2b64
Revises: 5d2b8e7c4a13
Create Date: 2026-11-24 15:20:00.000000

5d2b8e7c4a13 kept `messages_fts` with two AFTER UPDATE triggers, one removing the old text and
one adding the new. SQLite fires triggers of one event newest first, so the new text was added
before the old was removed, and the removal (an external-content 'delete' of the old tokens at
that rowid) then took the new entry with it: a finished message whose text or status was
updated again vanished from search, and the index could end up malformed. One trigger with both
steps in order fixes it. The index is then refilled from the messages (finished ones only, as
before), since a database upgraded to 5d2b8e7c4a13 may already hold such damage.

PostgreSQL has nothing to change (its indexes are expressions over the rows themselves).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7e3f9a1c2b64"
down_revision: str | None = "5d2b8e7c4a13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXED = "status <> 'streaming'"

REFILL = [
    "INSERT INTO messages_fts(messages_fts) VALUES ('delete-all')",
    f"INSERT INTO messages_fts(rowid, content) SELECT id, content FROM messages WHERE {INDEXED}",
]

UPGRADE = [
    "DROP TRIGGER IF EXISTS messages_fts_reindex",
    "DROP TRIGGER IF EXISTS messages_fts_unindex",
    f"""CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, status ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
        SELECT 'delete', old.id, old.content WHERE old.{INDEXED};
        INSERT INTO messages_fts(rowid, content)
        SELECT new.id, new.content WHERE new.{INDEXED};
    END""",
    *REFILL,
]

# 5d2b8e7c4a13's triggers, as it created them (their order problem included).
DOWNGRADE = [
    "DROP TRIGGER IF EXISTS messages_fts_update",
    f"""CREATE TRIGGER messages_fts_unindex AFTER UPDATE OF content, status ON messages
    WHEN old.{INDEXED} BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
        VALUES ('delete', old.id, old.content);
    END""",
    f"""CREATE TRIGGER messages_fts_reindex AFTER UPDATE OF content, status ON messages
    WHEN new.{INDEXED} BEGIN
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
    END""",
    *REFILL,
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in DOWNGRADE:
            op.execute(statement)
