"""Registering a workflow from its submitted JSON: parsed, validated, built and committed without touching
the registry's cache (so the head does it on a worker thread, off its event loop), then cached; and a
registered spec read back a page of tasks at a time, code by reference."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from lattice.core.cluster import ResourceManager
from lattice.core.dag import SpecError
from lattice.core.errors import NotFound
from lattice.core.events import EventBus
from lattice.core.orchestrator import Orchestrator, OrchestratorSettings
from lattice.core.store import Store, workflows
from lattice.core.workflows import WorkflowRegistry, spec_page
from lattice.wire.encoding import from_wire
from tests.unit.core.fake_backend import FakeBackend

CODE = {"pickle": base64.b64encode(cloudpickle.dumps(len)).decode(), "name": "len"}


def fan_in(leaves: int) -> dict[str, Any]:
    """``leaves`` tasks of one function (by reference into the code table) into one builtin sink."""
    tasks: list[dict[str, Any]] = [{"name": f"l{i}", "code_ref": "f0", "inputs": {"x": {"value": i}},
                                    "outputs": ["v"], "resources": {"cpu": 0}} for i in range(leaves)]
    tasks.append({"name": "sink", "builtin": "noop", "outputs": ["v"],
                  "inputs": {f"i{i}": {"task": f"l{i}", "output": "v"} for i in range(leaves)}})
    return {"format": "lattice.workflow/v1", "name": "fan-in", "code": {"f0": CODE, "unused": CODE},
            "tasks": tasks}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'lattice.db'}")
    yield s
    s.close()


def test_create_commits_the_body_as_sent_and_leaves_caching_to_add(store: Store) -> None:
    registry = WorkflowRegistry(store)
    body = json.dumps(fan_in(3), indent=1).encode()
    entry = registry.create(body, "team-a")
    assert entry.workflow_id not in registry.workflows  # create touches no registry state
    row = store.get_workflow(entry.workflow_id)
    assert row is not None and row["spec"] == json.loads(body) and row["tenant"] == "team-a"
    assert store.get_workflow(entry.workflow_id, spec=False) == {k: v for k, v in row.items() if k != "spec"}
    registry.add(entry)
    assert registry.get(entry.workflow_id) is entry and registry.owner(entry.workflow_id) == (True, "team-a")
    assert entry.graph.sinks == ("sink",) and entry.tasks["l0"].code is None  # kept by reference, not copied
    assert entry.code_of("l2") is entry.spec.code["f0"] and entry.code_of("sink") is None
    assert len({entry.code_keys[f"l{i}"] for i in range(3)}) == 1


def test_a_bad_shape_or_graph_is_refused_and_nothing_is_stored(store: Store) -> None:
    registry = WorkflowRegistry(store)
    with pytest.raises(ValidationError) as shape:
        registry.create(b'{"tasks": [{"name": "a", "builtin": "noop", "resources": {"cpu": -1}}]}')
    assert shape.value.errors()[0]["loc"] == ("tasks", 0, "resources", "cpu")
    with pytest.raises(ValidationError):
        registry.create(b"{not json")
    cycle = {"tasks": [{"name": a, "builtin": "noop", "outputs": ["r"], "inputs": {"x": {"task": b, "output": "r"}}}
                       for a, b in (("a", "b"), ("b", "a"))]}
    with pytest.raises(SpecError, match="cycle"):
        registry.create(json.dumps(cycle))
    spec = fan_in(4)
    spec["tasks"][3]["sandbox"] = "jail"  # a sandbox level is checked once per distinct name, still named
    with pytest.raises(SpecError) as level:
        registry.create(json.dumps(spec))
    assert level.value.field == "tasks[3].sandbox"
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(workflows)).scalar_one() == 0


def test_literals_are_encoded_as_from_wire_encodes_them(store: Store) -> None:
    pickled = base64.b64encode(cloudpickle.dumps({1, 2})).decode()
    spec = {"tasks": [{"name": "a", "builtin": "echo", "outputs": ["r"],
                       "inputs": {"j": {"value": {"k": [1, None]}}, "e": {"encoding": "json", "value": "s"},
                                  "p": {"encoding": "pickle", "data": pickled}, "n": {"value": None}}}]}
    entry = WorkflowRegistry(store).create(json.dumps(spec))
    expected = {}
    for name, item in entry.tasks["a"].inputs.items():
        encoding, data = from_wire(item.model_dump(exclude_unset=True))  # the encoding before: a dump per literal
        expected[name] = (str(encoding), data)
    assert entry.literals["a"] == expected and expected["p"][0] == "pickle"


def test_spec_pages_cover_the_topological_order_with_code_by_reference(store: Store) -> None:
    registry = WorkflowRegistry(store)
    entry = registry.create(json.dumps(fan_in(4)))
    pages, after = [], 0
    while after is not None:
        page = spec_page(entry, after, 2)
        pages.append(page)
        after = page.next_after
    assert [p.next_after for p in pages] == [2, 4, None]
    assert [n for p in pages for n in p.tasks] == list(entry.graph.order)
    assert [n for p in pages for n in p.sinks] == list(entry.graph.sinks)
    for p in pages:
        assert p.spec["name"] == "fan-in" and [t["name"] for t in p.spec["tasks"]] == list(p.tasks)
        named = {t["code_ref"] for t in p.spec["tasks"] if "code_ref" in t}
        assert set(p.spec.get("code", {})) == named  # only the entries this page names: "unused" never
    assert pages[-1].spec["tasks"][-1]["name"] == "sink" and "code" not in pages[-1].spec  # a builtin names none
    leaf = next(t for p in pages for t in p.spec["tasks"] if t["name"] == "l1")
    assert leaf == fan_in(4)["tasks"][1]  # as submitted: fields left unset stay unset
    assert spec_page(entry, 100, 2).tasks == () and spec_page(entry, 100, 2).next_after is None


async def test_the_orchestrator_builds_off_the_loop_and_rebuilds_after_a_restart(store: Store) -> None:
    orchestrator = Orchestrator(store, ResourceManager(), FakeBackend(), EventBus(),
                                OrchestratorSettings(node_refresh_s=3600))
    threads: list[int] = []
    registry = orchestrator.registry
    create, load = registry.create, registry.load
    registry.create = lambda *a: (threads.append(threading.get_ident()), create(*a))[1]  # type: ignore[method-assign]
    registry.load = lambda *a: (threads.append(threading.get_ident()), load(*a))[1]  # type: ignore[method-assign]
    entry = await orchestrator.create_workflow(json.dumps(fan_in(2)).encode(), "team-b")
    assert orchestrator.get_workflow(entry.workflow_id) is entry and entry.tenant == "team-b"
    registry.workflows.clear()  # a restarted head: only the store knows it
    again = await orchestrator.load_workflow(entry.workflow_id)
    assert again.graph == entry.graph and again.tenant == "team-b"
    assert await orchestrator.load_workflow(entry.workflow_id) is again  # cached: no second build
    assert len(threads) == 2 and threading.get_ident() not in threads  # both built on a worker thread
    with pytest.raises(NotFound):
        await orchestrator.load_workflow("nope")
