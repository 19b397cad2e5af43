"""``lattice db``: the store's schema revision, and upgrading it (``lattice.core.migrations``).

A head upgrades its store itself when it starts; these commands are for doing it beforehand (a shared
PostgreSQL store, a backup first) and for seeing where a store stands. ``lattice db revision`` is for
developers of Lattice: it writes the next migration file after a table changed (docs/operations.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from lattice.utils.home import default_home

_data_dir = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                         help="The head's data dir, whose lattice.db is the store [default: $LATTICE_HOME or "
                              "~/.lattice].")
_db_url = click.option("--db-url", "--store-url", "db_url", default=None, envvar="LATTICE_STORE_URL",
                       help="SQLAlchemy URL of the store instead (e.g. postgresql+psycopg://...).")


def _store_url(data_dir: Path | None, db_url: str | None) -> str:
    if db_url:
        return db_url
    data_dir = (data_dir or default_home()).expanduser().resolve()
    return f"sqlite:///{data_dir / 'lattice.db'}"


def _engine(url: str, must_exist: bool):  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    if url.startswith("sqlite:///") and must_exist:
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise click.ClickException(f"no store at {path} (a head creates it on its first start)")
    try:
        return sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise click.ClickException(f"--db-url {url!r} is not usable: {exc}") from exc


@click.group()
def db() -> None:
    """The store's schema: show its revision, upgrade it."""


@db.command()
@_data_dir
@_db_url
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def current(data_dir: Path | None, db_url: str | None, as_json: bool) -> None:
    """Show the store's schema revision and the one this Lattice expects."""
    import sqlalchemy as sa

    from lattice.core import migrations

    engine = _engine(_store_url(data_dir, db_url), must_exist=True)
    try:
        state = migrations.status(engine)
    except sa.exc.SQLAlchemyError as exc:
        raise click.ClickException(f"cannot read the store: {exc.__class__.__name__}: {exc}") from exc
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({"url": state.url, "current": state.current, "head": state.head,
                               "legacy": state.legacy, "up_to_date": state.up_to_date, "known": state.known}))
    else:
        click.echo(f"{state.url}: {state.describe()}")


@db.command()
@_data_dir
@_db_url
@click.option("--revision", default="head", show_default=True, help="Revision to upgrade to.")
def upgrade(data_dir: Path | None, db_url: str | None, revision: str) -> None:
    """Upgrade the store's schema to this Lattice's (creating it if there is none)."""
    import sqlalchemy as sa
    from alembic.util import CommandError

    from lattice.core import migrations

    url = _store_url(data_dir, db_url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = _engine(url, must_exist=False)
    try:
        before, after = migrations.upgrade(engine, revision)
    except migrations.SchemaError as exc:
        raise click.ClickException(str(exc)) from exc
    except CommandError as exc:
        raise click.ClickException(f"--revision {revision!r}: {exc}") from exc
    except sa.exc.SQLAlchemyError as exc:
        raise click.ClickException(f"cannot upgrade the store: {exc.__class__.__name__}: {exc}") from exc
    finally:
        engine.dispose()
    was = "unversioned (made before migrations)" if before.legacy else (before.current or "empty")
    if before.current == after.current and not before.legacy:
        click.echo(f"{after.url}: already at {after.current}")
    else:
        click.echo(f"{after.url}: upgraded from {was} to {after.current}")


@db.command(hidden=True)
@click.option("-m", "--message", required=True, help="What the revision changes, e.g. 'runs.tenant'.")
@click.option("--empty", is_flag=True, help="Write an empty revision instead of diffing the tables.")
def revision(message: str, empty: bool) -> None:
    """For Lattice developers: write the next migration from the tables in store.py/checkpoints.py."""
    from lattice.core import migrations

    path = migrations.new_revision(message, autogenerate=not empty)
    click.echo(f"wrote {path}; review its operations, then run tests/unit/core/test_migrations.py")
