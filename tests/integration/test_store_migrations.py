"""A real head on a store the first release made (its own DDL, no version table): the head upgrades it on
start and serves its runs, on SQLite and on PostgreSQL; a store newer than the code stops the head."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from lattice import LatticeClient, task
from lattice.core import migrations
from lattice.core.store import Store
from tests.integration.postgres_fixtures import postgres_url  # noqa: F401
from tests.migration_fixtures import OLD_RUN_ID, make_first_release_store, schema_diff


@task(inputs=["x"], outputs=["y"])
def add_one(params):
    return {"y": params["x"] + 1}


def _serves_old_and_new_runs(url: str, token: str) -> None:
    with LatticeClient(url, token=token, progress=False) as client:
        assert [run["run_id"] for run in client.list_runs()] == [OLD_RUN_ID]
        assert client.get_run(OLD_RUN_ID)["state"] == "succeeded"
        wf = client.create_workflow()
        wf.add_task(add_one, inputs={"x": 1})
        run_id = wf.run(inputs={"add_one": {"x": 41}})  # runs.inputs: the column the old schema lacks
        assert wf.get_results(run_id) == {"y": 42}
        assert {run["run_id"] for run in client.list_runs()} == {OLD_RUN_ID, run_id}


def test_a_head_upgrades_an_old_sqlite_data_dir_and_serves_it(head_factory, tmp_path) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    engine = sa.create_engine(f"sqlite:///{data_dir / 'lattice.db'}")
    make_first_release_store(engine)
    head = head_factory(data_dir=data_dir, extra_args=["--num-cpus", "1"])
    assert "store schema upgraded from an unversioned store to" in head.log_path.read_text()
    _serves_old_and_new_runs(head.url, head.token)
    assert migrations.status(engine).up_to_date and schema_diff(engine) == []


def test_a_head_refuses_a_store_newer_than_itself(head_factory, tmp_path) -> None:
    data_dir = tmp_path / "newer"
    data_dir.mkdir()
    engine = sa.create_engine(f"sqlite:///{data_dir / 'lattice.db'}")
    migrations.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {migrations.VERSION_TABLE} SET version_num = '9999'")
    with pytest.raises(RuntimeError, match="head exited") as failed:
        head_factory(data_dir=data_dir, extra_args=["--num-cpus", "1"], )
    assert "newer Lattice upgraded it" in str(failed.value)
    assert not (data_dir / "ray-head.log").exists()  # refused before anything started


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:  # noqa: F811
    """A database of its own on the session's server, dropped afterwards."""
    name = f"mig_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    admin.dispose()


def test_migrations_on_postgres_match_the_code(fresh_postgres: str) -> None:
    engine = sa.create_engine(fresh_postgres)
    migrations.upgrade(engine, "0001")
    assert ("add_column", "runs", "inputs") in [(d[0], d[2], d[3].name) for d in schema_diff(engine)
                                                if d[0] == "add_column"]
    migrations.upgrade(engine)
    assert schema_diff(engine) == []
    engine.dispose()


def test_an_old_postgres_store_is_upgraded_by_a_real_head(fresh_postgres: str, head_factory, tmp_path) -> None:
    engine = sa.create_engine(fresh_postgres)
    make_first_release_store(engine, with_checkpoints=True)
    with pytest.raises(migrations.SchemaError, match="lattice db upgrade"):
        Store(fresh_postgres, auto_upgrade=False)
    head = head_factory(data_dir=tmp_path / "pg", extra_args=["--num-cpus", "1", "--store-url", fresh_postgres])
    _serves_old_and_new_runs(head.url, head.token)
    assert migrations.status(engine).up_to_date and schema_diff(engine) == []
    head.stop()
    engine.dispose()


def test_lattice_db_current_and_upgrade_on_postgres(fresh_postgres: str) -> None:
    from click.testing import CliRunner

    import lattice.cli.main as cli_main

    engine = sa.create_engine(fresh_postgres)
    make_first_release_store(engine)
    runner = CliRunner()
    shown = runner.invoke(cli_main.cli, ["db", "current", "--db-url", fresh_postgres])
    assert shown.exit_code == 0 and "unversioned store made before migrations" in shown.output, shown.output
    done = runner.invoke(cli_main.cli, ["db", "upgrade", "--db-url", fresh_postgres])
    assert done.exit_code == 0 and "upgraded from unversioned" in done.output, done.output
    assert "(head)" in runner.invoke(cli_main.cli, ["db", "current", "--db-url", fresh_postgres]).output
    assert schema_diff(engine) == []
    store = Store(fresh_postgres, auto_upgrade=False)  # at the head now: nothing to refuse
    assert store.get_run(OLD_RUN_ID)["inputs"] == {}  # type: ignore[index]
    store.close()
    engine.dispose()
