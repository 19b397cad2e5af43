"""tasks.node_losses: attempts a task lost to dead nodes (or a head that died under it), not its retries.

Kept so that the cap on them (``algorithm.MAX_NODE_LOSSES``) holds across head restarts; rows from
before start at 0 (the server default), which is what a head of that version believed after a restart.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("node_losses", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("node_losses")
