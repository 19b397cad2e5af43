"""Alembic's environment for the store: run by :mod:`lattice.core.migrations`, never by hand.

The caller hands in an open connection (``config.attributes["connection"]``), so the head, ``lattice db``
and the tests migrate exactly the engine they use, with its SQLite pragmas. Batch mode lets ``ALTER``
work on SQLite (which rebuilds the table).
"""

from __future__ import annotations

from alembic import context

from lattice.core.migrations import VERSION_TABLE, target_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    version_table=VERSION_TABLE,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
