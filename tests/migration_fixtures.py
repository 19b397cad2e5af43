"""Stores as older Lattice versions left them, made with their own DDL (not with today's code), and the
check that a migrated database matches the tables the code declares.

``FIRST_RELEASE_DDL`` is what ``metadata.create_all`` of the first release issued (store.py of commit
995fdd8 and checkpoints.py of 62194cd): no ``runs.inputs``, no version table. ``{blob}`` is the binary
type of the dialect.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from lattice.core import migrations

FIRST_RELEASE_DDL = """
CREATE TABLE workflows (id VARCHAR(64) NOT NULL, name VARCHAR(200) NOT NULL, spec TEXT NOT NULL,
    created_at FLOAT NOT NULL, PRIMARY KEY (id));
CREATE TABLE runs (id VARCHAR(64) NOT NULL, workflow_id VARCHAR(64) NOT NULL, workflow_name VARCHAR(200) NOT NULL,
    state VARCHAR(16) NOT NULL, priority INTEGER NOT NULL, tags TEXT NOT NULL, created_at FLOAT NOT NULL,
    started_at FLOAT, finished_at FLOAT, failed_task VARCHAR(128), error TEXT, PRIMARY KEY (id));
CREATE INDEX ix_runs_workflow_id ON runs (workflow_id);
CREATE INDEX ix_runs_state ON runs (state);
CREATE INDEX ix_runs_created_at ON runs (created_at);
CREATE TABLE tasks (run_id VARCHAR(64) NOT NULL, name VARCHAR(128) NOT NULL, state VARCHAR(16) NOT NULL,
    attempt INTEGER NOT NULL, attempt_id VARCHAR(80), node_id VARCHAR(64), queued_at FLOAT, started_at FLOAT,
    finished_at FLOAT, error TEXT, PRIMARY KEY (run_id, name));
CREATE TABLE attempts (id VARCHAR(80) NOT NULL, run_id VARCHAR(64) NOT NULL, task VARCHAR(128) NOT NULL,
    number INTEGER NOT NULL, state VARCHAR(16) NOT NULL, node_id VARCHAR(64), worker_pid INTEGER,
    started_at FLOAT, finished_at FLOAT, error TEXT, stdout TEXT, stderr TEXT, PRIMARY KEY (id));
CREATE INDEX ix_attempts_run_task ON attempts (run_id, task);
CREATE TABLE events (run_id VARCHAR(64) NOT NULL, seq INTEGER NOT NULL, ts FLOAT NOT NULL, type VARCHAR(32) NOT NULL,
    task VARCHAR(128), data TEXT, PRIMARY KEY (run_id, seq));
CREATE TABLE blobs (run_id VARCHAR(64) NOT NULL, task VARCHAR(128) NOT NULL, output VARCHAR(128) NOT NULL,
    encoding VARCHAR(16) NOT NULL, data {blob} NOT NULL, PRIMARY KEY (run_id, task, output));
"""

#: the checkpoint tables, which a head of that time made on its first LangGraph checkpoint only
FIRST_RELEASE_CHECKPOINT_DDL = """
CREATE TABLE lg_checkpoints (thread_id VARCHAR(256) NOT NULL, checkpoint_ns VARCHAR(512) NOT NULL,
    checkpoint_id VARCHAR(64) NOT NULL, parent_checkpoint_id VARCHAR(64), checkpoint_type VARCHAR(32) NOT NULL,
    checkpoint {blob} NOT NULL, metadata_type VARCHAR(32) NOT NULL, metadata {blob} NOT NULL,
    created_at FLOAT NOT NULL, PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id));
CREATE TABLE lg_writes (thread_id VARCHAR(256) NOT NULL, checkpoint_ns VARCHAR(512) NOT NULL,
    checkpoint_id VARCHAR(64) NOT NULL, task_id VARCHAR(64) NOT NULL, idx INTEGER NOT NULL,
    channel VARCHAR(256) NOT NULL, value_type VARCHAR(32) NOT NULL, value {blob} NOT NULL,
    task_path VARCHAR(512) NOT NULL, PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx));
"""

#: a finished run of one task, as the first release stored it
OLD_RUN_ID = "0123456789abcdef0123456789abcdef"
OLD_ROWS = [
    "INSERT INTO workflows VALUES ('wf1', 'old-workflow', '{\"format\": \"lattice.workflow/v1\", \"name\": "
    "\"old-workflow\", \"tasks\": [{\"name\": \"t\", \"builtin\": \"echo\", \"inputs\": {\"x\": {\"value\": 1}}, "
    "\"outputs\": [\"x\"]}]}', 1.0)",
    f"INSERT INTO runs VALUES ('{OLD_RUN_ID}', 'wf1', 'old-workflow', 'succeeded', 0, '{{}}', 1.0, 1.0, 2.0, "
    "NULL, NULL)",
    f"INSERT INTO tasks VALUES ('{OLD_RUN_ID}', 't', 'succeeded', 1, '{OLD_RUN_ID}:t:1', 'n1', 1.0, 1.0, 2.0, NULL)",
    f"INSERT INTO events VALUES ('{OLD_RUN_ID}', 1, 1.0, 'run_started', NULL, '{{}}')",
]


def make_first_release_store(engine: sa.Engine, with_checkpoints: bool = False) -> None:
    blob = "BYTEA" if engine.dialect.name == "postgresql" else "BLOB"
    ddl = FIRST_RELEASE_DDL + (FIRST_RELEASE_CHECKPOINT_DDL if with_checkpoints else "")
    with engine.begin() as conn:
        for statement in ddl.format(blob=blob).split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)
        for row in OLD_ROWS:
            conn.exec_driver_sql(row)


def schema_diff(engine: sa.Engine) -> list[Any]:
    """What autogenerate would write to make the database match the code's tables: [] when they agree."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": migrations.VERSION_TABLE,
                                                         "compare_type": True})
        return list(compare_metadata(context, migrations.target_metadata()))  # type: ignore[arg-type]
