"""Schema migrations of the store (runs, tasks, ... and the LangGraph checkpoint tables), with Alembic.

The tables are declared once, in :mod:`lattice.core.store` and :mod:`lattice.core.checkpoints`; the
revisions in ``versions/`` take a database from any earlier schema to that one, and a test
(``tests/unit/core/test_migrations.py``) fails when the two disagree. The head upgrades its store when it
starts (:func:`ensure`) and refuses a store that a newer Lattice already upgraded; ``lattice db current``
and ``lattice db upgrade`` do the same by hand. How to add a revision: ``docs/operations.md``.

A data dir made before migrations existed has the tables ``create_all`` made and no version table; it is
recognised (:func:`status`: ``legacy``) and brought under version control: its schema can only be the
baseline (``0001``) or the baseline plus ``runs.inputs`` (``0002``), which is what :func:`upgrade` checks.
The version table has a name of its own, so a PostgreSQL database shared with another Alembic-managed
application keeps both apart.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

#: where the store records its revision (not Alembic's default ``alembic_version``: see the module doc)
VERSION_TABLE = "lattice_schema_version"
SCRIPT_DIR = Path(__file__).resolve().parent
#: the revision whose schema a pre-migration store has when its ``runs`` table lacks / has ``inputs``
_LEGACY_WITHOUT_INPUTS, _LEGACY_WITH_INPUTS = "0001", "0002"


class SchemaError(RuntimeError):
    """The store's schema cannot be used by this version of Lattice; the message says what to do."""


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database stands: its revision (None: empty, or made before migrations) and the code's."""

    url: str
    current: str | None
    head: str
    #: tables of a store made before migrations existed, without a version table
    legacy: bool = False

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def known(self) -> bool:
        """Whether this code knows the store's revision (False: a newer Lattice upgraded it)."""
        return self.current is None or self.current in _revisions()

    def describe(self) -> str:
        if self.legacy:
            return f"unversioned store made before migrations (head {self.head}): needs 'lattice db upgrade'"
        if self.current is None:
            return f"empty (head {self.head})"
        if not self.known:
            return f"{self.current} (unknown to this Lattice, whose head is {self.head}: a newer Lattice upgraded it)"
        return f"{self.current} (head)" if self.up_to_date else f"{self.current} (head is {self.head})"


def target_metadata() -> list[sa.MetaData]:
    """The tables the code expects: what the revisions must add up to."""
    from lattice.core import checkpoints, store

    return [store.metadata, checkpoints.metadata]


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_DIR))
    config.set_main_option("version_locations", str(SCRIPT_DIR / "versions"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _revisions() -> set[str]:
    return {revision.revision for revision in _script().walk_revisions()}


def head_revision() -> str:
    head = _script().get_current_head()
    assert head is not None, "the migrations have no revision"
    return head


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Reading the revision is not news: without this, Alembic logs its dialect at INFO on every start."""
    logger = logging.getLogger("alembic.runtime.migration")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _status(connection: Connection, url: str) -> SchemaStatus:
    with _quiet():
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    current = context.get_current_revision()
    legacy = current is None and sa.inspect(connection).has_table("runs")
    return SchemaStatus(url=url, current=current, head=head_revision(), legacy=legacy)


def status(engine: Engine) -> SchemaStatus:
    with engine.connect() as connection:
        return _status(connection, engine.url.render_as_string(hide_password=True))


def upgrade(engine: Engine, target: str = "head") -> tuple[SchemaStatus, SchemaStatus]:
    """Bring the store to ``target`` (default: the code's head); returns (before, after).

    A pre-migration store first gets the tables it lacks from the baseline, then is stamped with the
    revision its ``runs`` table shows, then upgraded like any other. Refuses a store at a revision this
    code does not know, which only a newer Lattice can have written.
    """
    before = status(engine)
    if not before.known:
        raise SchemaError(_newer_message(before))
    with engine.begin() as connection:
        config = _config(connection)
        if before.legacy:
            columns = {column["name"] for column in sa.inspect(connection).get_columns("runs")}
            legacy_revision = _LEGACY_WITH_INPUTS if "inputs" in columns else _LEGACY_WITHOUT_INPUTS
            command.upgrade(config, _LEGACY_WITHOUT_INPUTS)  # the baseline adds only missing tables
            command.stamp(config, legacy_revision)
        command.upgrade(config, target)
    return before, status(engine)


def ensure(engine: Engine, auto_upgrade: bool = True) -> SchemaStatus:
    """What the head does on start: nothing when the store is at the head; upgrade it when it is behind
    (or refuse, with ``auto_upgrade=False``, naming the command); refuse a store a newer Lattice wrote."""
    current = status(engine)
    if current.up_to_date:
        return current
    if not current.known:
        raise SchemaError(_newer_message(current))
    if not auto_upgrade:
        raise SchemaError(f"the store at {current.url} is at schema {current.describe()}; "
                          "run 'lattice db upgrade' (with the same --data-dir or --db-url) first")
    return upgrade(engine)[1]


def _newer_message(current: SchemaStatus) -> str:
    from lattice import __version__

    return (f"the store at {current.url} is at schema revision {current.current!r}, which Lattice "
            f"{__version__} does not know (its newest is {current.head!r}): a newer Lattice upgraded it. "
            "Run that newer version, or point this one at another store (--data-dir / --store-url)")


def new_revision(message: str, autogenerate: bool = True) -> Path:
    """Write the next revision file (``versions/NNNN_<slug>.py``): for developers, after changing a table
    in ``store.py`` or ``checkpoints.py``. With ``autogenerate`` its operations are diffed from an SQLite
    database upgraded to the current head; review them before committing."""
    import re
    import tempfile

    head = head_revision()
    rev_id = f"{int(head) + 1:04d}" if head.isdigit() else None  # numbered, unless someone broke the habit
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40] or "revision"
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{tmp}/head.db")
        try:
            upgrade(engine)
            with engine.begin() as connection:
                config = _config(connection)
                config.set_main_option("file_template", f"%%(rev)s_{slug}")  # 0003_runs_tenant.py
                script = command.revision(config, message=message, autogenerate=autogenerate, rev_id=rev_id)
        finally:
            engine.dispose()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


__all__ = ["SCRIPT_DIR", "VERSION_TABLE", "SchemaError", "SchemaStatus", "ensure", "head_revision",
           "new_revision", "status", "target_metadata", "upgrade"]
