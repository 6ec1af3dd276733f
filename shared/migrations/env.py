"""Alembic environment: the URL comes from the settings (or the caller), metadata from the models."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import shared.models  # noqa: F401  (registers the tables on the metadata)
from shared.db import make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    from shared.config import get_settings

    url = get_settings().sqlalchemy_url

# Full-text search lives outside the models (raw DDL in a migration): autogenerate leaves it.
SEARCH_OBJECTS = (
    "messages_fts",
    "conversations_fts",
    "ix_messages_content_tsv",
    "ix_conversations_title_tsv",
)


def include_name(name: str | None, _type: str, _parent: object) -> bool:
    return not (name or "").startswith(SEARCH_OBJECTS)


engine = make_engine(url)
with engine.connect() as connection:
    if connection.dialect.name == "sqlite":
        # Batch mode rebuilds a table by copying it and dropping the original; with foreign
        # keys enforced that DROP fails once other rows reference the table (turns ->
        # messages). The pragma only works outside a transaction: set it before one begins.
        connection.connection.dbapi_connection.execute(  # type: ignore[union-attr]
            "PRAGMA foreign_keys=OFF"
        )
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds tables when needed.
        render_as_batch=connection.dialect.name == "sqlite",
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
