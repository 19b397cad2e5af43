"""Many runs in one request on a real head with real Ray: ``map``/``run_many`` and ``get_results_many``.

Every check goes over real HTTP: the runs a batch starts are committed before their ids come back, a
failing run among many is reported in its place, bounds answer 422 naming the field, a repeated
Idempotency-Key starts nothing, and another tenant's runs and workflows stay invisible.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from headproc import HeadProcess

from lattice import AsyncLatticeClient, LatticeClient, NotFoundError, TaskFailed, task
from lattice.client import endpoints
from lattice.wire.spec import MAX_BATCH_RUNS, MAX_BATCH_TASKS


@task(inputs=["x"], outputs=["y"], cpu=0)
def square(params: dict[str, Any]) -> dict[str, Any]:
    if params["x"] == 3:
        raise ValueError("three is not welcome")
    return {"y": params["x"] ** 2}


@task(inputs=["y"], outputs=["z"], cpu=0)
def plus_one(params: dict[str, Any]) -> dict[str, Any]:
    return {"z": params["y"] + 1}


@pytest.fixture
def admin(head: HeadProcess) -> Iterator[LatticeClient]:
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        yield client


def chain(client: LatticeClient, name: str = "many") -> Any:
    wf = client.create_workflow(name)
    first = wf.add_task(square, inputs={"x": 0})
    wf.add_task(plus_one, inputs={"y": first.outputs["y"]})
    return wf


def post(head: HeadProcess, path: str, body: Any, token: str | None = None, **headers: str) -> httpx.Response:
    return httpx.post(f"{head.url}/api/v1{path}", json=body, timeout=60,
                      headers={"authorization": f"Bearer {token or head.token}", **headers})


def test_map_starts_committed_runs_and_results_come_back_in_order(admin: LatticeClient) -> None:
    wf = chain(admin)
    ids = wf.map([{"square": {"x": i}} for i in (4, 5, 6, 7)], tags={"batch": "a"})
    assert len(set(ids)) == 4
    for run_id in ids:  # in the store already: the head answers a run's state without waiting
        assert admin.get_run(run_id)["tags"] == {"batch": "a"}
    assert admin.get_results_many(ids, timeout=120) == [{"z": 17}, {"z": 26}, {"z": 37}, {"z": 50}]


def test_a_failing_run_among_many_is_reported_in_its_place(admin: LatticeClient) -> None:
    ids = admin.run_many(chain(admin), [{"square": {"x": i}} for i in range(6)])
    with pytest.raises(TaskFailed, match="three is not welcome") as info:
        admin.get_results_many(ids, timeout=120)
    assert info.value.run_id == ids[3] and info.value.task == "square"
    values = admin.get_results_many(ids, timeout=120, return_exceptions=True)
    assert [v if isinstance(v, dict) else type(v) for v in values] == [
        {"z": 1}, {"z": 2}, {"z": 5}, TaskFailed, {"z": 17}, {"z": 26}]
    assert admin.get_run(ids[3])["state"] == "failed" and admin.get_run(ids[4])["state"] == "succeeded"


def test_bounds_answer_422_naming_the_field_and_start_nothing(head: HeadProcess, admin: LatticeClient) -> None:
    workflow_id = chain(admin, "bounds").register()
    too_many = post(head, f"/workflows/{workflow_id}/runs:batch", {"runs": [{}] * (MAX_BATCH_RUNS + 1)})
    assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "runs"
    bad_item = post(head, f"/workflows/{workflow_id}/runs:batch",
                    {"runs": [{}, {"inputs": {"square": {"nope": {"value": 1}}}}]})
    assert bad_item.status_code == 422, bad_item.text
    assert bad_item.json()["error"]["field"] == "runs[1].inputs.square.nope"
    bad_shape = post(head, f"/workflows/{workflow_id}/runs:batch", {"runs": [{}, {"weight": -1}]})
    assert bad_shape.status_code == 422 and bad_shape.json()["error"]["field"] == "runs[1].weight"
    too_many_ids = post(head, "/runs/results:batch", {"run_ids": ["x"] * 1001})
    assert too_many_ids.status_code == 422 and too_many_ids.json()["error"]["field"] == "run_ids"
    runs = httpx.get(f"{head.url}/api/v1/runs", params={"workflow_id": workflow_id}, timeout=30,
                     headers={"authorization": f"Bearer {head.token}"}).json()
    assert runs["total"] == 0  # the good first item of a bad batch did not start either

    wide = admin.create_workflow("wide")
    per_run = MAX_BATCH_TASKS // MAX_BATCH_RUNS + 1
    for i in range(per_run):
        wide.add_task(plus_one, inputs={"y": i}, name=f"p{i}")
    answer = post(head, f"/workflows/{wide.register()}/runs:batch", {"runs": [{}] * MAX_BATCH_RUNS})
    assert answer.status_code == 422 and answer.json()["error"]["type"] == "batch_too_large"
    assert answer.json()["error"]["field"] == "runs"


def test_a_repeated_idempotency_key_starts_nothing(head: HeadProcess, admin: LatticeClient) -> None:
    wf = chain(admin, "keyed")
    first = wf.map([{"square": {"x": 1}}, {"square": {"x": 2}}], idempotency_key="batch-key-1")
    again = wf.map([{"square": {"x": 1}}, {"square": {"x": 2}}], idempotency_key="batch-key-1")
    assert again == first
    replay = post(head, f"/workflows/{wf.register()}/runs:batch",
                  {"runs": [endpoints.run_body(inputs={"square": {"x": x}}) for x in (1, 2)]},
                  **{"Idempotency-Key": "batch-key-1"})
    assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["run_ids"] == first
    other = post(head, f"/workflows/{wf.register()}/runs:batch", {"runs": [{}]}, **{"Idempotency-Key": "batch-key-1"})
    assert other.status_code == 422 and other.json()["error"]["type"] == "idempotency_key_reused"
    assert admin.get_results_many(first, timeout=120) == [{"z": 2}, {"z": 5}]
    assert httpx.get(f"{head.url}/api/v1/runs", params={"workflow_id": wf.register()}, timeout=30,
                     headers={"authorization": f"Bearer {head.token}"}).json()["total"] == 2


def test_another_tenants_runs_and_workflows_stay_hidden(head: HeadProcess, admin: LatticeClient) -> None:
    alice = admin._send(endpoints.create_key("many-alice"))["key"]
    bob = admin._send(endpoints.create_key("many-bob"))["key"]
    with LatticeClient(head.url, token=alice, progress=False) as as_alice, \
            LatticeClient(head.url, token=bob, progress=False) as as_bob:
        wf = chain(as_alice, "alice's")
        ids = wf.map([{"square": {"x": 2}}])
        assert as_alice.get_results_many(ids, timeout=120) == [{"z": 5}]
        answer = post(head, "/runs/results:batch", {"run_ids": [*ids, "no-such-run"], "wait": 0}, token=bob)
        assert answer.status_code == 200
        assert answer.json() == {"results": [], "not_found": [ids[0], "no-such-run"]}
        with pytest.raises(NotFoundError):
            as_bob.get_results_many(ids)
        with pytest.raises(NotFoundError):
            as_bob.run_many(wf.register(), [{}])
    # the admin sees every tenant's runs, as on the single route
    assert admin.get_results_many(ids) == [{"z": 5}]


def test_the_async_client_maps_and_waits_the_same_way(head: HeadProcess) -> None:
    async def go() -> list[Any]:
        async with AsyncLatticeClient(head.url, token=head.token, progress=False) as client:
            wf = client.create_workflow("async-many")
            first = wf.add_task(square, inputs={"x": 0})
            wf.add_task(plus_one, inputs={"y": first.outputs["y"]})
            ids = await client.run_many(wf, [{"square": {"x": i}} for i in (1, 3)])
            return await client.get_results_many(ids, timeout=120, return_exceptions=True)

    values = asyncio.run(go())
    assert values[0] == {"z": 2} and isinstance(values[1], TaskFailed)
