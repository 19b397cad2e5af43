"""The web UIs' Python side without a browser: the committed OpenAPI copy, the shipped build, the task
catalog against the builtins, the new builtins themselves, and runs paging over 10,000 runs in a store."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from lattice.api.schema import openapi_document
from lattice.core.store import Store, runs
from lattice.executor import builtins
from lattice.wire.attempt import BUILTIN_NAMES
from lattice.wire.catalog import BUILTIN_CATALOG

ROOT = Path(__file__).resolve().parents[3]
DIST = ROOT / "lattice" / "web" / "dist"


def test_the_committed_openapi_document_is_the_heads() -> None:
    committed = json.loads((ROOT / "web" / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(openapi_document())), (
        "web/openapi.json drifted from the routes: run `python -m lattice.api.schema > web/openapi.json` "
        "then `npm run gen:api` in web/ and commit both")


def test_the_generated_types_name_every_route_the_uis_call() -> None:
    types = (ROOT / "web" / "src" / "shared" / "api-types.ts").read_text()
    client = (ROOT / "web" / "src" / "shared" / "api.ts").read_text()
    for path in set(re.findall(r'request<\w+(?:\[\])?>\(\s*[`"](/[a-z/]+)', client)):
        assert f'"/api/v1{path}' in types, path


def test_the_build_ships_both_pages_and_only_local_assets() -> None:
    for page in ("board", "playground"):
        html = (DIST / f"{page}.html").read_text()
        refs = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert refs and all(ref.startswith("/ui/assets/") for ref in refs), refs
        assert all((DIST / "assets" / ref.removeprefix("/ui/assets/")).is_file() for ref in refs)
    for css in (DIST / "assets").glob("*.css"):
        assert not re.search(r"url\(\s*['\"]?https?:", css.read_text()), css


def test_the_catalog_describes_every_builtin() -> None:
    assert {task.name for task in BUILTIN_CATALOG} == set(builtins.BUILTINS) == BUILTIN_NAMES
    for entry in BUILTIN_CATALOG:
        assert entry.outputs and entry.description, entry.name
        assert builtins.BUILTINS[entry.name].__doc__


def test_the_text_and_data_builtins() -> None:
    assert builtins.text_split({"text": "a,b,,c", "sep": ","}) == {"result": ["a", "b", "c"]}
    assert builtins.text_split({"text": "x\ny"}) == {"result": ["x", "y"]}
    assert builtins.text_join({"items": ["a", 1], "sep": "-"}) == {"result": "a-1"}
    assert builtins.prompt_template({"template": "Hi {name}!", "values": {"name": "Ada"}}) == {"result": "Hi Ada!"}
    assert builtins.json_extract({"data": '{"a": [{"b": 7}]}', "path": "a.0.b"}) == {"result": 7}
    with pytest.raises(KeyError, match="'who'"):
        builtins.prompt_template({"template": "{who}", "values": {}})
    with pytest.raises(KeyError, match="'z'"):
        builtins.json_extract({"data": {"a": 1}, "path": "z"})
    with pytest.raises(TypeError, match="items must be a list"):
        builtins.text_join({"items": "abc"})


def test_runs_page_filter_and_search_over_ten_thousand_runs(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    now = time.time()
    rows = [{"id": f"run{i:05d}", "workflow_id": f"wf{i % 3}", "workflow_name": f"flow-{i % 3}",
             "state": "failed" if i % 10 == 0 else "succeeded", "priority": 0,
             "tags": json.dumps({"batch": "big" if i % 1000 == 0 else "small"}), "created_at": now + i,
             "tenant": None} for i in range(10_000)]
    with store.engine.begin() as conn:  # seeded directly: 10,000 runs through a head would take minutes
        conn.execute(runs.insert(), rows)
    assert store.count_runs() == 10_000
    page = store.list_runs(limit=50, offset=100)
    assert [r["id"] for r in page] == [f"run{i:05d}" for i in range(9899, 9849, -1)]
    assert store.count_runs(state="failed") == 1000
    assert store.count_runs(search="FLOW-1") == 3333
    assert store.count_runs(search='"batch": "big"') == 10
    assert store.count_runs(search="100%") == 0  # a LIKE wildcard is matched literally
    assert [r["id"] for r in store.list_runs(search="run0999", limit=5)] == [f"run0999{i}" for i in range(9, 4, -1)]
    assert store.task_counts([]) == {} and store.task_counts(["run00001"]) == {}
    store.engine.dispose()


def test_start_help_lists_playground_and_the_banner_names_the_pages(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lattice.cli import banner
    from lattice.cli.main import cli
    from lattice.core.config import HeadSettings

    help_text = CliRunner().invoke(cli, ["start", "--help"]).output
    assert "--playground" in help_text and "/playground" in help_text
    off = "\n".join(banner.head_banner(HeadSettings(port=8123, data_dir=tmp_path), "ray:1", 1))
    assert "http://127.0.0.1:8123/board" in off and "playground" not in off
    on = "\n".join(banner.head_banner(HeadSettings(port=8123, data_dir=tmp_path, playground=True), "ray:1", 1))
    assert "http://127.0.0.1:8123/playground" in on
