"""Tenants: the api_keys table (hashed named keys with role, weight and quotas), runs.tenant and
runs.weight, workflows.tenant.

NULL tenant means the admin (bootstrap token); NULL weight means 1, so rows from before need no backfill.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 04:51:12.916947
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("api_keys",
    sa.Column("name", sa.String(length=64), nullable=False),
    sa.Column("key_hash", sa.String(length=64), nullable=False),
    sa.Column("role", sa.String(length=16), nullable=False),
    sa.Column("weight", sa.Float(), nullable=False),
    sa.Column("max_cpu", sa.Float(), nullable=True),
    sa.Column("max_gpu", sa.Float(), nullable=True),
    sa.Column("max_gpu_memory_mb", sa.Integer(), nullable=True),
    sa.Column("max_running_runs", sa.Integer(), nullable=True),
    sa.Column("created_at", sa.Float(), nullable=False),
    sa.Column("revoked_at", sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint("name"),
    sa.UniqueConstraint("key_hash")
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tenant", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("weight", sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f("ix_runs_tenant"), ["tenant"], unique=False)

    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tenant", sa.String(length=64), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.drop_column("tenant")

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_tenant"))
        batch_op.drop_column("weight")
        batch_op.drop_column("tenant")

    op.drop_table("api_keys")
