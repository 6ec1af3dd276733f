"""message references and stop_reason; project backlog_writes and web_tools

Revision ID: c4a7e1f09b2d
Revises: 8600d5544c1e
Create Date: 2026-11-26 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4a7e1f09b2d"
down_revision: str | None = "8600d5544c1e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("references", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("stop_reason", sa.String(length=32), nullable=True))
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("backlog_writes", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("web_tools", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("web_tools")
        batch_op.drop_column("backlog_writes")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("stop_reason")
        batch_op.drop_column("references")
