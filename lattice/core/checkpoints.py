"""Durable storage for LangGraph checkpoints: opaque bytes with type tags, never decoded here.

The client serializes checkpoints, metadata and pending writes with LangGraph's own serde and sends
``(type, bytes)`` pairs; the head keeps them in two tables of its store and hands them back. It never
unpickles user data, so filtering by metadata happens on the client (see ``LatticeSaver.list``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

checkpoints = Table(
    "lg_checkpoints", metadata,
    Column("thread_id", String(256), primary_key=True),
    Column("checkpoint_ns", String(512), primary_key=True),
    Column("checkpoint_id", String(64), primary_key=True),
    Column("parent_checkpoint_id", String(64)),
    Column("checkpoint_type", String(32), nullable=False),
    Column("checkpoint", LargeBinary, nullable=False),
    Column("metadata_type", String(32), nullable=False),
    Column("metadata", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

writes = Table(
    "lg_writes", metadata,
    Column("thread_id", String(256), primary_key=True),
    Column("checkpoint_ns", String(512), primary_key=True),
    Column("checkpoint_id", String(64), primary_key=True),
    Column("task_id", String(64), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("channel", String(256), nullable=False),
    Column("value_type", String(32), nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("task_path", String(512), nullable=False, default=""),
)


@dataclass
class Typed:
    type: str
    data: bytes


@dataclass
class WriteRow:
    task_id: str
    idx: int
    channel: str
    value: Typed
    task_path: str = ""


@dataclass
class CheckpointRow:
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: Typed
    metadata: Typed
    writes: list[WriteRow] = field(default_factory=list)


class CheckpointStore:
    """Reads and writes of the two checkpoint tables, on the head's engine (whose schema is migrated)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()  # one writer at a time: SQLite would answer "database is locked"
        # the tables are the store's migrations' (lattice.core.migrations), made with the store's own
        from lattice.core import migrations

        migrations.ensure(engine)

    def put(self, row: CheckpointRow) -> None:
        values = {"parent_checkpoint_id": row.parent_checkpoint_id, "checkpoint_type": row.checkpoint.type,
                  "checkpoint": row.checkpoint.data, "metadata_type": row.metadata.type,
                  "metadata": row.metadata.data, "created_at": time.time()}
        key = and_(checkpoints.c.thread_id == row.thread_id, checkpoints.c.checkpoint_ns == row.checkpoint_ns,
                   checkpoints.c.checkpoint_id == row.checkpoint_id)
        with self._lock, self.engine.begin() as conn:
            if conn.execute(select(checkpoints.c.checkpoint_id).where(key)).first() is None:
                conn.execute(insert(checkpoints).values(thread_id=row.thread_id, checkpoint_ns=row.checkpoint_ns,
                                                        checkpoint_id=row.checkpoint_id, **values))
            else:
                conn.execute(update(checkpoints).where(key).values(**values))

    def put_writes(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, rows: list[WriteRow]) -> None:
        """LangGraph's rule: a regular write (``idx >= 0``) is kept once; a special one (``idx < 0``) replaces."""
        with self._lock, self.engine.begin() as conn:
            for row in rows:
                key = and_(writes.c.thread_id == thread_id, writes.c.checkpoint_ns == checkpoint_ns,
                           writes.c.checkpoint_id == checkpoint_id, writes.c.task_id == row.task_id,
                           writes.c.idx == row.idx)
                exists = conn.execute(select(writes.c.idx).where(key)).first() is not None
                values = {"channel": row.channel, "value_type": row.value.type, "value": row.value.data,
                          "task_path": row.task_path}
                if not exists:
                    conn.execute(insert(writes).values(thread_id=thread_id, checkpoint_ns=checkpoint_ns,
                                                       checkpoint_id=checkpoint_id, task_id=row.task_id,
                                                       idx=row.idx, **values))
                elif row.idx < 0:
                    conn.execute(update(writes).where(key).values(**values))

    def list(self, thread_id: str | None, checkpoint_ns: str | None, checkpoint_id: str | None,
             before: str | None, limit: int | None, thread_prefix: str | None = None) -> list[CheckpointRow]:
        """Newest first (checkpoint ids sort by time), each with its pending writes; ``thread_prefix``: only
        threads whose id starts with it (a tenant's namespace)."""
        query = select(checkpoints)
        if thread_prefix is not None:
            query = query.where(checkpoints.c.thread_id.startswith(thread_prefix, autoescape=True))
        if thread_id is not None:
            query = query.where(checkpoints.c.thread_id == thread_id)
        if checkpoint_ns is not None:
            query = query.where(checkpoints.c.checkpoint_ns == checkpoint_ns)
        if checkpoint_id is not None:
            query = query.where(checkpoints.c.checkpoint_id == checkpoint_id)
        if before is not None:
            query = query.where(checkpoints.c.checkpoint_id < before)
        query = query.order_by(checkpoints.c.thread_id, checkpoints.c.checkpoint_ns,
                               checkpoints.c.checkpoint_id.desc())
        if thread_id is not None and checkpoint_ns is not None:
            query = query.order_by(None).order_by(checkpoints.c.checkpoint_id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = [
                CheckpointRow(r.thread_id, r.checkpoint_ns, r.checkpoint_id, r.parent_checkpoint_id,
                              Typed(r.checkpoint_type, r.checkpoint), Typed(r.metadata_type, r.metadata))
                for r in conn.execute(query)
            ]
            for row in rows:
                found = conn.execute(select(writes).where(
                    writes.c.thread_id == row.thread_id, writes.c.checkpoint_ns == row.checkpoint_ns,
                    writes.c.checkpoint_id == row.checkpoint_id))
                row.writes = [WriteRow(w.task_id, w.idx, w.channel, Typed(w.value_type, w.value), w.task_path)
                              for w in found]
        return rows

    def delete_thread(self, thread_id: str) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(delete(checkpoints).where(checkpoints.c.thread_id == thread_id))
            conn.execute(delete(writes).where(writes.c.thread_id == thread_id))

