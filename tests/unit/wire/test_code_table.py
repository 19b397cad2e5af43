"""The workflow spec's code table: each distinct function's code once, tasks naming it by ``code_ref``.

The client puts a function that several tasks run into the table (a fan-out of one function is then its
bytes once); the head validates every reference, runs a table task exactly as one with inline code (one
shared CodeSpec, one function key), and old specs with inline code keep working."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from lattice import task
from lattice.client.workflow import WorkflowBuilder
from lattice.core.store import Store
from lattice.core.workflows import WorkflowRegistry
from lattice.wire.spec import WorkflowSpec


@task(inputs=["i"], outputs=["v"], cpu=0)
def square(params):
    return {"v": params["i"] ** 2}


@task(inputs=["v0", "v1", "v2"], outputs=["total"], cpu=0)
def total(params):
    return {"total": params["v0"] + params["v1"] + params["v2"]}


def _fan_out(n: int = 3) -> WorkflowBuilder:
    wf = WorkflowBuilder("fan")
    leaves = [wf.add_task(square, inputs={"i": i}, name=f"sq{i}") for i in range(n)]
    wf.add_task(total, inputs={f"v{i}": leaves[i].outputs["v"] for i in range(3)}, name="sum")
    return wf


def test_a_function_many_tasks_run_goes_once_into_the_table() -> None:
    spec = _fan_out().to_spec()
    assert list(spec["code"]) == ["f0"]
    assert [t.get("code_ref") for t in spec["tasks"]] == ["f0", "f0", "f0", None]
    assert "code" in spec["tasks"][3] and "code" not in spec["tasks"][0]  # used once: inline, as before
    validated = WorkflowSpec.model_validate(spec)
    assert validated.code_of(validated.tasks[0]) is validated.code["f0"]


def test_the_request_grows_by_the_tasks_not_by_their_code() -> None:
    small, big = (len(json.dumps(_fan_out(n).to_spec())) for n in (3, 300))
    inline = len(json.dumps(_fan_out(300).to_spec(shared_code=False)))
    code = len(json.dumps(_fan_out(3).to_spec()["code"]["f0"]))
    assert big - small < 300 * code / 4  # per extra task: its name, inputs and policy, not its function
    assert inline - big > 290 * code  # inline repeats the function in every task


def test_export_keeps_the_code_inline_for_readers_that_predate_the_table() -> None:
    exported = _fan_out().export()
    assert "code" not in exported and all("code" in t and "code_ref" not in t for t in exported["tasks"])
    shared = _fan_out().to_spec()
    for by_ref, inline in zip(shared["tasks"], exported["tasks"], strict=True):  # the same tasks, code put in place
        code = shared["code"][by_ref["code_ref"]] if "code_ref" in by_ref else by_ref["code"]
        assert inline == {**{k: v for k, v in by_ref.items() if k != "code_ref"}, "code": code}


def test_a_reference_to_no_table_entry_names_the_task_and_the_fix() -> None:
    spec = _fan_out().to_spec()
    spec["tasks"][1]["code_ref"] = "nope"
    with pytest.raises(ValidationError, match=r"tasks\[1\]\.code_ref: 'nope' is not a key"):
        WorkflowSpec.model_validate(spec)


def test_a_task_has_exactly_one_of_code_code_ref_or_builtin() -> None:
    spec = _fan_out().to_spec()
    spec["tasks"][0]["code"] = spec["code"]["f0"]
    with pytest.raises(ValidationError, match="exactly one of 'code', 'code_ref' or 'builtin'"):
        WorkflowSpec.model_validate(spec)
    spec["tasks"][0].pop("code")
    spec["tasks"][0]["code_ref"] = "bad key!"
    with pytest.raises(ValidationError, match="code_ref"):
        WorkflowSpec.model_validate(spec)


def test_the_head_runs_a_table_task_as_an_inline_one(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'lattice.db'}")
    try:
        registry = WorkflowRegistry(store, "none", "none")
        shared = registry.get(registry.register(WorkflowSpec.model_validate(_fan_out().to_spec())))
        inline = registry.get(registry.register(WorkflowSpec.model_validate(_fan_out().to_spec(shared_code=False))))
        for entry in (shared, inline):
            assert all(entry.code_of(f"sq{i}") is not None for i in range(3))
            assert len({entry.code_keys[f"sq{i}"] for i in range(3)}) == 1  # one function, put once
        assert shared.code_of("sq0") is shared.code_of("sq2")  # one object, not a copy per task
        assert shared.tasks["sq0"].code is None  # the task is kept as sent (by reference), not copied
        assert shared.code_of("sq0") == inline.code_of("sq0")
        registry.workflows.clear()  # after a restart: from the stored (compact) spec
        again = registry.get(shared.workflow_id)
        assert again.code_of("sq1") == shared.code_of("sq1")
        stored = store.get_workflow(shared.workflow_id)["spec"]
        assert list(stored["code"]) == ["f0"] and stored["tasks"][0] == {**stored["tasks"][0], "code_ref": "f0"}
    finally:
        store.close()


def test_a_bad_pickle_in_the_table_names_its_key(tmp_path: Path) -> None:
    from lattice.core.dag import SpecError

    spec = _fan_out().to_spec()
    spec["code"]["f0"]["pickle"] = "not base64!"
    store = Store(f"sqlite:///{tmp_path / 'lattice.db'}")
    try:
        with pytest.raises(SpecError) as info:
            WorkflowRegistry(store, "none", "none").register(WorkflowSpec.model_validate(spec))
        assert info.value.field == "code.f0.pickle"
    finally:
        store.close()
