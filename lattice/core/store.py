"""The durable store: workflows, runs, tasks, attempts, events and output blobs.

SQLAlchemy Core over any URL (SQLite in the data dir by default, PostgreSQL for a shared deployment).
The orchestrator collects the changes of one step in a :class:`Batch` and commits them in a single
transaction *before* it announces them, so whatever a client saw is on disk, and one commit serves
many tasks under load.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

workflows = Table(
    "workflows", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("spec", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("tenant", String(64)),  # the key that registered it; NULL: the admin (bootstrap token)
)

runs = Table(
    "runs", metadata,
    Column("id", String(64), primary_key=True),
    Column("workflow_id", String(64), nullable=False, index=True),
    Column("workflow_name", String(200), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("priority", Integer, nullable=False, default=0),
    Column("tags", Text, nullable=False, default="{}"),
    Column("inputs", Text),
    Column("created_at", Float, nullable=False, index=True),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("failed_task", String(128)),
    Column("error", Text),
    Column("tenant", String(64), index=True),  # the key that started it; NULL: the admin (bootstrap token)
    Column("weight", Float),  # its fair-share weight (NULL: 1)
)

tasks = Table(
    "tasks", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    # attempts lost to dead nodes or heads (not the task's retries), kept so the cap holds across restarts
    Column("node_losses", Integer, nullable=False, default=0, server_default="0"),
    Column("attempt_id", String(80)),
    Column("node_id", String(64)),
    Column("queued_at", Float),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("error", Text),
)

attempts = Table(
    "attempts", metadata,
    Column("id", String(80), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("task", String(128), nullable=False),
    Column("number", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("node_id", String(64)),
    Column("worker_pid", Integer),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("error", Text),
    Column("stdout", Text),
    Column("stderr", Text),
    Index("ix_attempts_run_task", "run_id", "task"),
)

events = Table(
    "events", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("ts", Float, nullable=False),
    Column("type", String(32), nullable=False),
    Column("task", String(128)),
    Column("data", Text),
)

api_keys = Table(
    "api_keys", metadata,
    Column("name", String(64), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),  # SHA-256 hex of the secret
    Column("role", String(16), nullable=False),
    Column("weight", Float, nullable=False, default=1.0),
    Column("max_cpu", Float),
    Column("max_gpu", Float),
    Column("max_gpu_memory_mb", Integer),
    Column("max_running_runs", Integer),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

llm_pools = Table(  # the model pools deployed on this head, so that a restarted head brings them back
    "llm_pools", metadata,
    Column("alias", String(64), primary_key=True),
    Column("spec", Text, nullable=False),  # PoolSpec as JSON (lattice.wire.llm)
    Column("created_at", Float, nullable=False),
)

blobs = Table(
    "blobs", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("task", String(128), primary_key=True),
    Column("output", String(128), primary_key=True),
    Column("encoding", String(16), nullable=False),
    Column("data", LargeBinary, nullable=False),
)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


@dataclass
class Batch:
    """The writes of one orchestrator step, committed together."""

    run_inserts: list[dict[str, Any]] = field(default_factory=list)
    task_inserts: list[dict[str, Any]] = field(default_factory=list)
    #: a new run's tasks, inserted ``pending`` at attempt 0: (run id, task names). The rows are built by
    #: the writer's thread at commit, not on the loop (a 20,000-task run's rows cost the loop ~0.1 s)
    new_tasks: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    run_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_updates: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    attempt_inserts: list[dict[str, Any]] = field(default_factory=list)
    attempt_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    event_rows: list[dict[str, Any]] = field(default_factory=list)
    blob_rows: list[dict[str, Any]] = field(default_factory=list)

    def update_run(self, run_id: str, **values: Any) -> None:
        if "error" in values:
            values["error"] = _dumps(values["error"])
        self.run_updates.setdefault(run_id, {}).update(values)

    def update_task(self, run_id: str, name: str, **values: Any) -> None:
        if "error" in values:
            values["error"] = _dumps(values["error"])
        self.task_updates.setdefault((run_id, name), {}).update(values)

    def add_attempt(self, **values: Any) -> None:
        self.attempt_inserts.append(values)

    def update_attempt(self, attempt_id: str, **values: Any) -> None:
        if "error" in values:
            values["error"] = _dumps(values["error"])
        self.attempt_updates.setdefault(attempt_id, {}).update(values)

    def add_event(self, run_id: str, seq: int, type: str, task: str | None, data: dict[str, Any] | None,
                  ts: float) -> dict[str, Any]:
        """Queue an event row and return it: it has the fields a live listener gets, so the orchestrator
        announces this very dict once it is committed (one dict per event, not two). The commit never
        changes it: ``data`` stays a dict here and the writer thread encodes a copy (off the loop)."""
        row = {"run_id": run_id, "seq": seq, "ts": ts, "type": type, "task": task, "data": data}
        self.event_rows.append(row)
        return row

    def put_blob(self, run_id: str, task: str, output: str, encoding: str, data: bytes) -> None:
        self.blob_rows.append(
            {"run_id": run_id, "task": task, "output": output, "encoding": encoding, "data": data}
        )

    def merge(self, other: Batch) -> None:
        """Append a later batch: its inserts follow ours and its updates win."""
        self.run_inserts.extend(other.run_inserts)
        self.task_inserts.extend(other.task_inserts)
        self.new_tasks.extend(other.new_tasks)
        for run_id, values in other.run_updates.items():
            self.run_updates.setdefault(run_id, {}).update(values)
        for key, values in other.task_updates.items():
            self.task_updates.setdefault(key, {}).update(values)
        self.attempt_inserts.extend(other.attempt_inserts)
        for attempt_id, values in other.attempt_updates.items():
            self.attempt_updates.setdefault(attempt_id, {}).update(values)
        self.event_rows.extend(other.event_rows)
        self.blob_rows.extend(other.blob_rows)

    def __bool__(self) -> bool:
        return bool(
            self.run_inserts or self.task_inserts or self.new_tasks or self.run_updates or self.task_updates
            or self.attempt_inserts or self.attempt_updates or self.event_rows or self.blob_rows
        )


class Store:
    """All reads and writes of durable state; the only source of truth after a restart."""

    def __init__(self, url: str, auto_upgrade: bool = True) -> None:
        """Open the store at ``url`` and bring its schema to this code's (``lattice.core.migrations``):
        upgraded when behind, unless ``auto_upgrade`` is False; a :class:`SchemaError` when it cannot be."""
        from lattice.core import migrations

        self.url = url
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self.schema = migrations.ensure(self.engine, auto_upgrade=auto_upgrade)
        except BaseException:
            self.engine.dispose()
            raise
        self._bulk = _BulkWriter(self.engine)
        if not self._bulk.usable:
            raise ValueError(f"unsupported database driver paramstyle {self.engine.dialect.paramstyle!r}")

    def close(self) -> None:
        self.engine.dispose()

    # --- writes -------------------------------------------------------------------------------------

    def create_workflow(self, workflow_id: str, name: str, spec: dict[str, Any] | str,
                        tenant: str | None = None) -> None:
        """Store a workflow's spec: a dict, or its JSON text already (a submitted body, kept as sent)."""
        text = spec if isinstance(spec, str) else json.dumps(spec)
        with self.engine.begin() as conn:
            conn.execute(insert(workflows).values(
                id=workflow_id, name=name, spec=text, created_at=time.time(), tenant=tenant))

    def commit(self, batch: Batch) -> None:
        if not batch:
            return
        if batch.new_tasks:
            new, batch.new_tasks = batch.new_tasks, []
            batch.task_inserts.extend({"run_id": run_id, "name": name, "state": "pending", "attempt": 0}
                                      for run_id, names in new for name in names)
        _fold_updates_into_inserts(batch)
        bulk = self._bulk
        with self.engine.begin() as conn:
            bulk.insert(conn, runs, batch.run_inserts)
            bulk.insert(conn, tasks, batch.task_inserts)
            bulk.update(conn, runs, ("id",), {(k,): v for k, v in batch.run_updates.items()})
            bulk.update(conn, tasks, ("run_id", "name"), batch.task_updates)
            bulk.insert(conn, attempts, batch.attempt_inserts)
            bulk.update(conn, attempts, ("id",), {(k,): v for k, v in batch.attempt_updates.items()})
            bulk.insert(conn, events, [{**row, "data": _dumps(row["data"])} for row in batch.event_rows])
            bulk.insert(conn, blobs, batch.blob_rows)

    # --- reads --------------------------------------------------------------------------------------

    def get_workflow(self, workflow_id: str, spec: bool = True) -> dict[str, Any] | None:
        """A workflow's row, its spec parsed; ``spec=False``: without the spec (a big workflow's spec is tens
        of MB of JSON, which a check of its owner or creation time need not read)."""
        columns = workflows.c if spec else [c for c in workflows.c if c.name != "spec"]
        with self.engine.connect() as conn:
            row = conn.execute(select(*columns).where(workflows.c.id == workflow_id)).mappings().first()
        if row is None:
            return None
        return {**row, "spec": json.loads(row["spec"])} if spec else dict(row)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:  # one statement built once: every submit asks (its idempotency key)
            row = conn.execute(_RUN_BY_ID, {"run_id": run_id}).mappings().first()
        return None if row is None else _run_dict(row)

    def get_runs(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The rows of those runs that exist, by id (one query per 500 ids, under SQLite's variable limit)."""
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(run_ids), 500):
                chunk = run_ids[start:start + 500]
                for row in conn.execute(select(runs).where(runs.c.id.in_(chunk))).mappings():
                    out[row["id"]] = _run_dict(row)
        return out

    def list_runs(self, state: str | None = None, workflow_id: str | None = None, limit: int = 100,
                  offset: int = 0, tenant: str | None = None, search: str | None = None) -> list[dict[str, Any]]:
        """Newest first; ``tenant``: only that tenant's runs (the admin's are those with no tenant);
        ``search``: a case-insensitive substring of the run's id, workflow name or tags."""
        query = self._runs_where(select(runs), state, workflow_id, tenant, search)
        query = query.order_by(runs.c.created_at.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [_run_dict(row) for row in conn.execute(query).mappings()]

    def count_runs(self, state: str | None = None, workflow_id: str | None = None, tenant: str | None = None,
                   search: str | None = None) -> int:
        """How many runs :meth:`list_runs` would page through with the same filters."""
        query = self._runs_where(select(func.count()).select_from(runs), state, workflow_id, tenant, search)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def task_counts(self, run_ids: list[str]) -> dict[str, dict[str, int]]:
        """Per run, how many of its tasks are in each state (one grouped query for a page of runs)."""
        if not run_ids:
            return {}
        query = (select(tasks.c.run_id, tasks.c.state, func.count()).where(tasks.c.run_id.in_(run_ids))
                 .group_by(tasks.c.run_id, tasks.c.state))
        counts: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for run_id, state, count in conn.execute(query).all():
                counts.setdefault(run_id, {})[state] = count
        return counts

    @staticmethod
    def _runs_where(query: Any, state: str | None, workflow_id: str | None, tenant: str | None,
                    search: str | None) -> Any:
        if tenant is not None:
            query = query.where(runs.c.tenant == tenant)
        if state:
            query = query.where(runs.c.state == state)
        if workflow_id:
            query = query.where(runs.c.workflow_id == workflow_id)
        if search:
            pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(func.lower(runs.c.id).like(pattern, escape="\\")
                                | func.lower(runs.c.workflow_name).like(pattern, escape="\\")
                                | func.lower(runs.c.tags).like(pattern, escape="\\"))
        return query

    def count_runs_by_state(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs.c.state, func.count()).group_by(runs.c.state)).all()
        return {state: count for state, count in rows}

    def get_tasks(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tasks).where(tasks.c.run_id == run_id)).mappings().all()
        return [{**row, "error": _loads(row["error"])} for row in rows]

    def get_attempts(self, run_id: str, task: str | None = None) -> list[dict[str, Any]]:
        query = select(attempts).where(attempts.c.run_id == run_id).order_by(attempts.c.task, attempts.c.number)
        if task is not None:
            query = query.where(attempts.c.task == task)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**row, "error": _loads(row["error"])} for row in rows]

    def get_events(self, run_id: str, after: int = 0, limit: int = 10_000) -> list[dict[str, Any]]:
        query = (select(events).where(events.c.run_id == run_id, events.c.seq > after)
                 .order_by(events.c.seq).limit(limit))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [event_dict(row) for row in rows]

    def last_event_seq(self, run_id: str) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(events.c.seq)).where(events.c.run_id == run_id)).scalar()
        return int(value or 0)

    def get_blobs(self, run_id: str,
                  task_names: Iterable[str] | None = None) -> dict[str, dict[str, tuple[str, bytes]]]:
        query = select(blobs).where(blobs.c.run_id == run_id)
        if task_names is not None:
            query = query.where(blobs.c.task.in_(list(task_names)))
        out: dict[str, dict[str, tuple[str, bytes]]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                out.setdefault(row["task"], {})[row["output"]] = (row["encoding"], bytes(row["data"]))
        return out

    def get_blobs_of_runs(self, run_ids: list[str], task_names: Iterable[str]
                          ) -> dict[str, dict[str, dict[str, tuple[str, bytes]]]]:
        """:meth:`get_blobs` for many runs at once: ``{run_id: {task: {output: (encoding, bytes)}}}``."""
        names = set(task_names)
        out: dict[str, dict[str, dict[str, tuple[str, bytes]]]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(run_ids), 500):
                query = select(blobs).where(blobs.c.run_id.in_(run_ids[start:start + 500]))
                if len(names) <= 500:  # else filtered here: SQLite bounds the variables of one statement
                    query = query.where(blobs.c.task.in_(sorted(names)))
                for row in conn.execute(query).mappings():
                    if row["task"] not in names:
                        continue
                    out.setdefault(row["run_id"], {}).setdefault(row["task"], {})[row["output"]] = (
                        row["encoding"], bytes(row["data"]))
        return out

    # --- API keys (tenants) ---------------------------------------------------------------------------

    def add_key(self, row: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(api_keys).values(**row))

    def list_keys(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(select(api_keys).order_by(api_keys.c.name)).mappings()]

    def revoke_key(self, name: str, when: float) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(update(api_keys).where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                                  .values(revoked_at=when))
        return bool(result.rowcount)

    # --- model pools ----------------------------------------------------------------------------------

    def save_pool(self, alias: str, spec_json: str, when: float) -> None:
        """Keep a deployed pool's spec (replacing what was kept under that alias)."""
        with self.engine.begin() as conn:
            conn.execute(delete(llm_pools).where(llm_pools.c.alias == alias))
            conn.execute(insert(llm_pools).values(alias=alias, spec=spec_json, created_at=when))

    def delete_pool(self, alias: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(llm_pools).where(llm_pools.c.alias == alias)).rowcount)

    def list_pools(self) -> list[tuple[str, str]]:
        """(alias, spec JSON) of every kept pool, in the order they were deployed."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(llm_pools.c.alias, llm_pools.c.spec).order_by(llm_pools.c.created_at)).all()
        return [(row[0], row[1]) for row in rows]

    def unfinished_run_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs.c.id).where(runs.c.state.in_(["pending", "running"]))
                                .order_by(runs.c.created_at)).all()
        return [row[0] for row in rows]


def _fold_updates_into_inserts(batch: Batch) -> None:
    """A row inserted and updated in the same batch is inserted once, already updated."""
    if batch.task_inserts and batch.task_updates:
        for row in batch.task_inserts:
            values = batch.task_updates.pop((row["run_id"], row["name"]), None)
            if values:
                row.update(values)
    if batch.attempt_inserts and batch.attempt_updates:
        for row in batch.attempt_inserts:
            values = batch.attempt_updates.pop(row["id"], None)
            if values:
                row.update(values)


def _plain(value: Any) -> Any:
    """Drivers adapt values by type: a state (a StrEnum) goes as the plain string it is."""
    return str(value) if isinstance(value, str) and type(value) is not str else value


class _BulkWriter:
    """Batch writes as plain SQL through the driver's ``executemany``.

    The writes of a step are many small rows of a few shapes; SQLAlchemy's per-row parameter handling
    costs more than the database itself there (measured: a quarter of the head's CPU per task). The SQL
    is built once per (table, columns) with the driver's own placeholder style and quoted names.
    """

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect
        self._quote = dialect.identifier_preparer.quote
        self._placeholder = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
        self._sql: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], str] = {}

    @property
    def usable(self) -> bool:
        return self._placeholder is not None

    def _statement(self, kind: str, table: Table, columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
        cache_key = (kind, table.name, columns, keys)
        sql = self._sql.get(cache_key)
        if sql is None:
            q, ph = self._quote, self._placeholder
            if kind == "insert":
                sql = (f"INSERT INTO {q(table.name)} ({', '.join(q(c) for c in columns)}) "
                       f"VALUES ({', '.join(ph for _ in columns)})")  # type: ignore[misc]
            else:
                sql = (f"UPDATE {q(table.name)} SET {', '.join(f'{q(c)} = {ph}' for c in columns)} "
                       f"WHERE {' AND '.join(f'{q(k)} = {ph}' for k in keys)}")
            self._sql[cache_key] = sql
        return sql

    def insert(self, conn: Any, table: Table, rows: list[dict[str, Any]]) -> None:
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for row in rows:
            columns = tuple(row)
            groups.setdefault(columns, []).append(tuple(_plain(v) for v in row.values()))
        for columns, values in groups.items():
            conn.exec_driver_sql(self._statement("insert", table, columns, ()), values)

    def update(self, conn: Any, table: Table, keys: tuple[str, ...],
               updates: dict[tuple[Any, ...], dict[str, Any]]) -> None:
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for key, values in updates.items():
            columns = tuple(sorted(values))
            groups.setdefault(columns, []).append(tuple(_plain(values[c]) for c in columns) + tuple(key))
        for columns, rows in groups.items():
            conn.exec_driver_sql(self._statement("update", table, columns, keys), rows)


def event_dict(row: Any) -> dict[str, Any]:
    return {"seq": row["seq"], "ts": row["ts"], "type": row["type"], "task": row["task"],
            "data": _loads(row["data"]) or {}}


#: the lookup of a run by id, built once: each submit makes it (its idempotency key's run may exist), and
#: building the statement cost about as much as SQLAlchemy's execution of it
_RUN_BY_ID = select(runs).where(runs.c.id == bindparam("run_id"))


def _run_dict(row: Any) -> dict[str, Any]:
    return {**row, "tags": _loads(row["tags"]) or {}, "error": _loads(row["error"]),
            "inputs": _loads(row["inputs"]) or {}}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
