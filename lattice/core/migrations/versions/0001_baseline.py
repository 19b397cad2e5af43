"""Baseline: the schema of the first release, before ``runs.inputs`` (reconstructed from git history).

Revision ID: 0001
Revises:
Create Date: 2026-12-02

The one special revision: a data dir made before migrations existed (``create_all`` and no version
table) already holds some or all of these tables, so each one is created only where it is missing. The
checkpoint tables were made lazily, on a head's first LangGraph checkpoint, so an old store may lack them.
Every later revision is an ordinary one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())

    def table(name: str, *columns: sa.Column, indexes: tuple[tuple[str, list[str]], ...] = ()) -> None:
        if name in existing:
            return
        op.create_table(name, *columns)
        for index_name, index_columns in indexes:
            op.create_index(index_name, name, index_columns)

    table("workflows",
          sa.Column("id", sa.String(64), primary_key=True),
          sa.Column("name", sa.String(200), nullable=False),
          sa.Column("spec", sa.Text, nullable=False),
          sa.Column("created_at", sa.Float, nullable=False))
    table("runs",
          sa.Column("id", sa.String(64), primary_key=True),
          sa.Column("workflow_id", sa.String(64), nullable=False),
          sa.Column("workflow_name", sa.String(200), nullable=False),
          sa.Column("state", sa.String(16), nullable=False),
          sa.Column("priority", sa.Integer, nullable=False),
          sa.Column("tags", sa.Text, nullable=False),
          sa.Column("created_at", sa.Float, nullable=False),
          sa.Column("started_at", sa.Float),
          sa.Column("finished_at", sa.Float),
          sa.Column("failed_task", sa.String(128)),
          sa.Column("error", sa.Text),
          indexes=(("ix_runs_workflow_id", ["workflow_id"]), ("ix_runs_state", ["state"]),
                   ("ix_runs_created_at", ["created_at"])))
    table("tasks",
          sa.Column("run_id", sa.String(64), primary_key=True),
          sa.Column("name", sa.String(128), primary_key=True),
          sa.Column("state", sa.String(16), nullable=False),
          sa.Column("attempt", sa.Integer, nullable=False),
          sa.Column("attempt_id", sa.String(80)),
          sa.Column("node_id", sa.String(64)),
          sa.Column("queued_at", sa.Float),
          sa.Column("started_at", sa.Float),
          sa.Column("finished_at", sa.Float),
          sa.Column("error", sa.Text))
    table("attempts",
          sa.Column("id", sa.String(80), primary_key=True),
          sa.Column("run_id", sa.String(64), nullable=False),
          sa.Column("task", sa.String(128), nullable=False),
          sa.Column("number", sa.Integer, nullable=False),
          sa.Column("state", sa.String(16), nullable=False),
          sa.Column("node_id", sa.String(64)),
          sa.Column("worker_pid", sa.Integer),
          sa.Column("started_at", sa.Float),
          sa.Column("finished_at", sa.Float),
          sa.Column("error", sa.Text),
          sa.Column("stdout", sa.Text),
          sa.Column("stderr", sa.Text),
          indexes=(("ix_attempts_run_task", ["run_id", "task"]),))
    table("events",
          sa.Column("run_id", sa.String(64), primary_key=True),
          sa.Column("seq", sa.Integer, primary_key=True),
          sa.Column("ts", sa.Float, nullable=False),
          sa.Column("type", sa.String(32), nullable=False),
          sa.Column("task", sa.String(128)),
          sa.Column("data", sa.Text))
    table("blobs",
          sa.Column("run_id", sa.String(64), primary_key=True),
          sa.Column("task", sa.String(128), primary_key=True),
          sa.Column("output", sa.String(128), primary_key=True),
          sa.Column("encoding", sa.String(16), nullable=False),
          sa.Column("data", sa.LargeBinary, nullable=False))
    table("lg_checkpoints",
          sa.Column("thread_id", sa.String(256), primary_key=True),
          sa.Column("checkpoint_ns", sa.String(512), primary_key=True),
          sa.Column("checkpoint_id", sa.String(64), primary_key=True),
          sa.Column("parent_checkpoint_id", sa.String(64)),
          sa.Column("checkpoint_type", sa.String(32), nullable=False),
          sa.Column("checkpoint", sa.LargeBinary, nullable=False),
          sa.Column("metadata_type", sa.String(32), nullable=False),
          sa.Column("metadata", sa.LargeBinary, nullable=False),
          sa.Column("created_at", sa.Float, nullable=False))
    table("lg_writes",
          sa.Column("thread_id", sa.String(256), primary_key=True),
          sa.Column("checkpoint_ns", sa.String(512), primary_key=True),
          sa.Column("checkpoint_id", sa.String(64), primary_key=True),
          sa.Column("task_id", sa.String(64), primary_key=True),
          sa.Column("idx", sa.Integer, primary_key=True),
          sa.Column("channel", sa.String(256), nullable=False),
          sa.Column("value_type", sa.String(32), nullable=False),
          sa.Column("value", sa.LargeBinary, nullable=False),
          sa.Column("task_path", sa.String(512), nullable=False))


def downgrade() -> None:
    for name in ("lg_writes", "lg_checkpoints", "blobs", "events", "attempts", "tasks", "runs", "workflows"):
        op.drop_table(name)
