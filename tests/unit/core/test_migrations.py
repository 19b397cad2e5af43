"""Schema migrations on SQLite: the revisions add up to the tables the code declares, a store of the first
release (made with its own DDL) is adopted and upgraded, and a store newer than the code is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from lattice.core import migrations
from lattice.core.checkpoints import CheckpointRow, CheckpointStore, Typed
from lattice.core.store import Store
from tests.migration_fixtures import OLD_RUN_ID, make_first_release_store, schema_diff


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lattice.db'}"


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(engine).get_columns(table)}


def test_the_migrations_build_exactly_the_tables_the_code_declares(tmp_path: Path) -> None:
    """The autogenerate check: change a Table in store.py or checkpoints.py without a revision (or a
    revision without the Table) and this fails, listing the difference. The fix: ``lattice db revision -m``."""
    engine = sa.create_engine(_url(tmp_path))
    migrations.upgrade(engine)
    assert schema_diff(engine) == []
    assert migrations.status(engine).up_to_date


def test_the_check_sees_a_column_the_migrations_lack(tmp_path: Path) -> None:
    """The check above can fail: a database one revision behind differs by ``runs.inputs``."""
    engine = sa.create_engine(_url(tmp_path))
    migrations.upgrade(engine, "0001")
    diffs = [(d[0], d[2], d[3].name) for d in schema_diff(engine) if d[0] == "add_column"]
    assert ("add_column", "runs", "inputs") in diffs


def test_revisions_form_one_line_from_the_baseline() -> None:
    script = migrations._script()
    assert script.get_heads() == [migrations.head_revision()]
    assert [r.revision for r in reversed(list(script.walk_revisions()))][:2] == ["0001", "0002"]


def test_a_first_release_store_is_adopted_upgraded_and_its_runs_read(tmp_path: Path) -> None:
    engine = sa.create_engine(_url(tmp_path))
    make_first_release_store(engine)
    assert "inputs" not in _columns(engine, "runs")
    before = migrations.status(engine)
    assert before.legacy and before.current is None and not before.up_to_date

    store = Store(_url(tmp_path))  # what a head does on start
    assert store.schema.up_to_date
    run = store.get_run(OLD_RUN_ID)
    assert run is not None and run["state"] == "succeeded" and run["inputs"] == {}
    assert [r["id"] for r in store.list_runs()] == [OLD_RUN_ID]
    assert [t["state"] for t in store.get_tasks(OLD_RUN_ID)] == ["succeeded"]
    assert store.get_events(OLD_RUN_ID)[0]["type"] == "run_started"
    # the checkpoint tables it never had are there now, and work
    checkpoints = CheckpointStore(store.engine)
    checkpoints.put(CheckpointRow("th", "", "c1", None, Typed("json", b"{}"), Typed("json", b"{}")))
    assert [row.checkpoint_id for row in checkpoints.list("th", "", None, None, None)] == ["c1"]
    store.close()
    assert schema_diff(engine) == []


def test_a_store_made_by_create_all_with_inputs_is_stamped_not_altered_again(tmp_path: Path) -> None:
    """A data dir of the release just before migrations: the first release's tables plus ``runs.inputs``,
    no version table."""
    engine = sa.create_engine(_url(tmp_path))
    make_first_release_store(engine, with_checkpoints=True)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN inputs TEXT")
    assert migrations.status(engine).legacy
    before, after = migrations.upgrade(engine)
    assert before.legacy and after.up_to_date and not after.legacy
    assert schema_diff(engine) == []


def test_a_store_newer_than_the_code_is_refused_with_what_to_do(tmp_path: Path) -> None:
    engine = sa.create_engine(_url(tmp_path))
    migrations.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {migrations.VERSION_TABLE} SET version_num = '9999'")
    with pytest.raises(migrations.SchemaError, match=r"'9999'.*newer Lattice upgraded it"):
        Store(_url(tmp_path))
    with pytest.raises(migrations.SchemaError, match="newer Lattice"):
        migrations.upgrade(engine)


def test_without_auto_upgrade_a_behind_store_names_the_command(tmp_path: Path) -> None:
    engine = sa.create_engine(_url(tmp_path))
    make_first_release_store(engine)
    with pytest.raises(migrations.SchemaError, match="lattice db upgrade"):
        Store(_url(tmp_path), auto_upgrade=False)
    assert "inputs" not in _columns(engine, "runs")  # refused means untouched


def test_the_version_table_is_lattices_own(tmp_path: Path) -> None:
    """A database shared with another Alembic application keeps both versions apart."""
    engine = sa.create_engine(_url(tmp_path))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('someone_elses')")
    migrations.upgrade(engine)
    assert migrations.status(engine).up_to_date
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "someone_elses"


def test_adding_a_revision_is_one_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``lattice db revision -m`` writes the next numbered file after the head (here into a copy of the
    migrations, so the package is not touched); with nothing changed, its operations are empty."""
    import shutil

    from click.testing import CliRunner

    import lattice.cli.main as cli_main

    copy = tmp_path / "migrations"
    shutil.copytree(migrations.SCRIPT_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrations, "SCRIPT_DIR", copy)
    migrations._script.cache_clear()
    try:
        head = migrations.head_revision()
        result = CliRunner().invoke(cli_main.cli, ["db", "revision", "-m", "runs.tenant column"])
        assert result.exit_code == 0, result.output
        written = copy / "versions" / f"{int(head) + 1:04d}_runs_tenant_column.py"
        assert written.exists(), sorted(p.name for p in (copy / "versions").iterdir())
        text = written.read_text()
        assert f"down_revision = {head!r}" in text and "def upgrade() -> None:" in text
        assert "op.add_column" not in text and "batch_alter_table" not in text  # the code and head agree
        migrations._script.cache_clear()
        assert migrations.head_revision() == f"{int(head) + 1:04d}"
    finally:
        migrations._script.cache_clear()
