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

engine = make_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds tables when needed.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
