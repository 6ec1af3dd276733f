"""message tree, active leaf, title source, usage and cost, the monthly usage ledger, budgets,
full-text search

Revision ID: 5d2b8e7c4a13
Revises: c4a7e1f09b2d
Create Date: 2026-11-24 15:00:00.000000

Existing conversations are straight lines: each message's parent becomes the message before it
and the active leaf the last one, so no step by hand is needed.

Search indexes only finished messages (not replies still streaming, which are rewritten twice a
second): on SQLite an external-content FTS5 table kept by triggers, on PostgreSQL partial GIN
indexes over `to_tsvector('simple', ...)` (shared/search.py queries the same expressions).
A later migration that makes SQLite rebuild `messages` or `conversations` (batch mode) drops
their triggers and must create them again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d2b8e7c4a13"
down_revision: str | None = "c4a7e1f09b2d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Both SQLite and PostgreSQL run these correlated updates.
BACKFILL_PARENTS = """
UPDATE messages SET parent_id = (
    SELECT max(m2.id) FROM messages AS m2
    WHERE m2.conversation_id = messages.conversation_id AND m2.id < messages.id
)
"""
BACKFILL_LEAVES = """
UPDATE conversations SET active_leaf_id = (
    SELECT max(m.id) FROM messages AS m WHERE m.conversation_id = conversations.id
)
"""

INDEXED = "status <> 'streaming'"
TITLE = "coalesce(title, '')"

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE messages_fts USING fts5("
    "content, content='messages', content_rowid='id', tokenize='unicode61')",
    f"""CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
    WHEN new.{INDEXED} BEGIN
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
    END""",
    # One trigger, in this order: SQLite runs several triggers of one event in no promised
    # order, and an indexed row updated again (a reply ended, then its text stored) must be
    # taken out of the index before it is put back, or the index loses the row's size record
    # and every later ranked query fails ("database disk image is malformed").
    f"""CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, status ON messages
    BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
        SELECT 'delete', old.id, old.content WHERE old.{INDEXED};
        INSERT INTO messages_fts(rowid, content)
        SELECT new.id, new.content WHERE new.{INDEXED};
    END""",
    f"""CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    WHEN old.{INDEXED} BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
        VALUES ('delete', old.id, old.content);
    END""",
    f"INSERT INTO messages_fts(rowid, content) SELECT id, content FROM messages WHERE {INDEXED}",
    "CREATE VIRTUAL TABLE conversations_fts USING fts5("
    "title, content='conversations', content_rowid='id', tokenize='unicode61')",
    """CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
        INSERT INTO conversations_fts(rowid, title) VALUES (new.id, coalesce(new.title, ''));
    END""",
    """CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations BEGIN
        INSERT INTO conversations_fts(conversations_fts, rowid, title)
        VALUES ('delete', old.id, coalesce(old.title, ''));
        INSERT INTO conversations_fts(rowid, title) VALUES (new.id, coalesce(new.title, ''));
    END""",
    """CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
        INSERT INTO conversations_fts(conversations_fts, rowid, title)
        VALUES ('delete', old.id, coalesce(old.title, ''));
    END""",
    "INSERT INTO conversations_fts(rowid, title) SELECT id, coalesce(title, '') FROM conversations",
]
SQLITE_FTS_DROP = [
    "DROP TRIGGER IF EXISTS conversations_fts_delete",
    "DROP TRIGGER IF EXISTS conversations_fts_update",
    "DROP TRIGGER IF EXISTS conversations_fts_insert",
    "DROP TABLE IF EXISTS conversations_fts",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    "DROP TRIGGER IF EXISTS messages_fts_update",
    "DROP TRIGGER IF EXISTS messages_fts_insert",
    "DROP TABLE IF EXISTS messages_fts",
]


def _words_of(expr: str) -> str:
    # shared.search.words_of, verbatim (a zero-width space after every character that is not
    # a letter, digit or space, so `src/app.py` is three words as on SQLite): the queries use
    # this very expression, or the planner could not use the indexes.
    return rf"regexp_replace({expr}, '([^\w\s]|_)', '\1' || chr(8203), 'g')"


POSTGRES_FTS = [
    "CREATE INDEX ix_messages_content_tsv ON messages "
    f"USING GIN (to_tsvector('simple', {_words_of('content')})) WHERE {INDEXED}",
    "CREATE INDEX ix_conversations_title_tsv ON conversations "
    f"USING GIN (to_tsvector('simple', {_words_of(TITLE)}))",
]
POSTGRES_FTS_DROP = [
    "DROP INDEX IF EXISTS ix_conversations_title_tsv",
    "DROP INDEX IF EXISTS ix_messages_content_tsv",
]


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("monthly_token_budget", sa.Integer(), nullable=True))
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("title_source", sa.String(length=8), server_default="auto", nullable=False)
        )
        batch_op.add_column(sa.Column("active_leaf_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("model", sa.String(length=100), nullable=True))
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("cost_usd", sa.Float(), server_default="0", nullable=False))
        batch_op.create_index(batch_op.f("ix_messages_parent_id"), ["parent_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_messages_parent_id_messages"),
            "messages",
            ["parent_id"],
            ["id"],
            ondelete="CASCADE",
        )
    op.create_table(
        "usage_months",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
        ),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_usage_months_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "month", name="pk_usage_months"),
    )
    op.execute(BACKFILL_PARENTS)
    op.execute(BACKFILL_LEAVES)
    statements = SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else POSTGRES_FTS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_FTS_DROP if sqlite else POSTGRES_FTS_DROP:
        op.execute(statement)
    op.drop_table("usage_months")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_messages_parent_id_messages"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_messages_parent_id"))
        for name in (
            "cost_usd",
            "cache_write_tokens",
            "cache_read_tokens",
            "output_tokens",
            "input_tokens",
            "model",
            "parent_id",
        ):
            batch_op.drop_column(name)
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("active_leaf_id")
        batch_op.drop_column("title_source")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("monthly_token_budget")
