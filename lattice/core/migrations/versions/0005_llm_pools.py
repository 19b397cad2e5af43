"""llm_pools: the model pools deployed on a head (alias, PoolSpec JSON), so that a restarted head deploys
them again instead of forgetting them (runs it resumes may call them).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "llm_pools",
        sa.Column("alias", sa.String(length=64), primary_key=True),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("llm_pools")
