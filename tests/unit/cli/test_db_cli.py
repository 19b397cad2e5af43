"""``lattice db current`` and ``lattice db upgrade`` on a real SQLite store of the first release."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

import lattice.cli.main as cli_main
from lattice.core import migrations
from tests.migration_fixtures import make_first_release_store, schema_diff


def _db(args: list[str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli_main.cli, ["db", *args])


def test_current_then_upgrade_an_old_data_dir(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'lattice.db'}")
    make_first_release_store(engine)
    shown = _db(["current", "--data-dir", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "unversioned store made before migrations" in shown.output and "lattice db upgrade" in shown.output
    done = _db(["upgrade", "--data-dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    head = migrations.head_revision()
    assert f"upgraded from unversioned (made before migrations) to {head}" in done.output
    assert schema_diff(engine) == []
    again = _db(["upgrade", "--data-dir", str(tmp_path)])
    assert again.exit_code == 0 and f"already at {head}" in again.output
    as_json = json.loads(_db(["current", "--data-dir", str(tmp_path), "--json"]).output)
    assert as_json["current"] == head and as_json["up_to_date"] and not as_json["legacy"]


def test_upgrade_by_url_to_a_revision_and_on(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other' / 'store.db'}"
    first = _db(["upgrade", "--db-url", url, "--revision", "0001"])
    assert first.exit_code == 0 and "upgraded from empty to 0001" in first.output, first.output
    assert "(head is" in _db(["current", "--db-url", url]).output
    assert _db(["upgrade", "--db-url", url]).exit_code == 0
    assert "(head)" in _db(["current", "--db-url", url]).output


def test_bad_input_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    missing = _db(["current", "--data-dir", str(tmp_path / "nothing")])
    assert missing.exit_code == 1 and "no store at" in missing.output and "Traceback" not in missing.output
    bad_url = _db(["current", "--db-url", "notadialect://x"])
    assert bad_url.exit_code == 1 and "--db-url" in bad_url.output
    bad_rev = _db(["upgrade", "--db-url", f"sqlite:///{tmp_path / 's.db'}", "--revision", "nope"])
    assert bad_rev.exit_code == 1 and "--revision 'nope'" in bad_rev.output, bad_rev.output


def test_a_store_newer_than_this_lattice_is_refused(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'lattice.db'}")
    migrations.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {migrations.VERSION_TABLE} SET version_num = '9999'")
    refused = _db(["upgrade", "--data-dir", str(tmp_path)])
    assert refused.exit_code == 1 and "newer Lattice upgraded it" in refused.output
    assert "unknown to this Lattice" in _db(["current", "--data-dir", str(tmp_path)]).output

