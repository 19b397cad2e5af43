"""Big workflows on a real head: their spec read back a bounded page at a time (code by reference), and
the results a ``wait`` submit and ``POST /runs/results:batch`` carry bounded as the paged results route
pages them, the SDK putting every run's outputs together whole."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from headproc import HeadProcess

from lattice import LatticeClient, task


@task(inputs=["i"], outputs=["v"], cpu=0)
def ident(params: dict[str, Any]) -> dict[str, Any]:
    return {"v": params["i"]}


def noops(name: str, n: int) -> dict[str, Any]:
    """``n`` independent no-ops: every one a sink, each with an output called ``result``."""
    return {"format": "lattice.workflow/v1", "name": name,
            "tasks": [{"name": f"l{i}", "builtin": "noop", "outputs": ["result"], "resources": {"cpu": 0}}
                      for i in range(n)]}


@pytest.fixture
def http(head: HeadProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{head.url}/api/v1", headers={"Authorization": f"Bearer {head.token}"},
                      timeout=300) as client:
        yield client


def all_pages(http: httpx.Client, workflow_id: str, **params: Any) -> list[dict[str, Any]]:
    pages, after = [], 0
    while after is not None:
        answer = http.get(f"/workflows/{workflow_id}", params={**params, "after": after})
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        after = pages[-1]["next_after"]
    return pages


def test_a_big_workflows_spec_comes_a_page_at_a_time_with_its_code_once(head: HeadProcess,
                                                                       client: LatticeClient,
                                                                       http: httpx.Client) -> None:
    wf = client.create_workflow("spec-pages")
    for i in range(2_500):
        wf.add_task(ident, inputs={"i": i}, name=f"t{i}")
    registered = http.post("/workflows", json=wf.to_spec())  # what the SDK sends, to keep the 201 answer
    assert registered.status_code == 201, registered.text
    created = registered.json()
    pages = all_pages(http, created["workflow_id"])  # the default page: 1,000 tasks
    assert [len(p["spec"]["tasks"]) for p in pages] == [1000, 1000, 500]
    assert {p["task_count"] for p in pages} == {2_500}
    assert [n for p in pages for n in p["tasks"]] == created["tasks"]  # the pages: the whole topological order
    assert [n for p in pages for n in p["sinks"]] == created["sinks"]
    for page in pages:
        assert [t["name"] for t in page["spec"]["tasks"]] == page["tasks"]
        assert list(page["spec"]["code"]) == ["f0"]  # the function once a page, not once per task
        assert all(t["code_ref"] == "f0" and "code" not in t for t in page["spec"]["tasks"])
    assert pages[0]["spec"]["code"]["f0"]["name"].endswith("ident")
    assert [len(p["tasks"]) for p in all_pages(http, created["workflow_id"], limit=2_000)] == [2_000, 500]
    for bad in ({"limit": 0}, {"limit": 10_001}, {"after": -1}):
        assert http.get(f"/workflows/{created['workflow_id']}", params=bad).status_code == 422


def test_a_waiting_submit_of_a_big_run_is_bounded_and_the_sdk_gets_it_whole(client: LatticeClient,
                                                                            http: httpx.Client) -> None:
    n = 1_500
    workflow_id = client.submit_workflow(noops("wait-bounded", n))
    unasked = http.post(f"/workflows/{workflow_id}/runs", params={"wait": 60}, json={}).json()
    assert unasked["state"] == "succeeded" and unasked["results"] is None  # over 1,000 sinks: not unasked
    paged = http.post(f"/workflows/{workflow_id}/runs", params={"wait": 60, "limit": 1000}, json={}).json()
    first = paged["results"]
    assert (first["done"], first["sinks"], first["next_after"], len(first["outputs"])) == (True, n, 1000, 1000)
    rest = http.get(f"/runs/{paged['run_id']}/results", params={"after": 1000, "limit": 1000}).json()
    assert rest["next_after"] is None and set(first["outputs"]) | set(rest["outputs"]) == {
        f"l{i}.result" for i in range(n)}

    wf = client.create_workflow("wait-bounded-sdk")  # run(wait=True): the first page kept, the rest fetched
    for i in range(n):
        wf.add_task(ident, inputs={"i": i}, name=f"t{i}")
    outputs = client.get_results(wf.run(wait=True), timeout=300)
    assert outputs == {f"t{i}.v": i for i in range(n)}


def test_results_of_many_big_runs_are_bounded_per_answer_and_the_sdk_merges_them(client: LatticeClient,
                                                                                 http: httpx.Client) -> None:
    n, runs = 2_001, 5  # 10,005 sinks in all: over the 10,000 one answer carries
    workflow_id = client.submit_workflow(noops("batch-bounded", n))
    run_ids = client.run_many(workflow_id, [{}] * runs)
    whole = client.get_results_many(run_ids, timeout=600)  # the SDK: each run's first page, then the rest
    assert all(outputs == {f"l{i}.result": None for i in range(n)} for outputs in whole)

    unpaged = http.post("/runs/results:batch", json={"run_ids": run_ids})
    assert unpaged.status_code == 422 and unpaged.json()["error"]["type"] == "too_many_results"
    assert http.post("/runs/results:batch", json={"run_ids": run_ids[:4]}).status_code == 200  # 8,004 fit
    answer = http.post("/runs/results:batch", params={"limit": n}, json={"run_ids": run_ids}).json()
    carried = [(len(r["outputs"]), r["next_after"], r["sinks"]) for r in answer["results"]]
    assert carried == [(n, None, n)] * 4 + [(10_000 - 4 * n, 10_000 - 4 * n, n)]  # the answer's room, then more
    small = http.post("/runs/results:batch", params={"limit": 10}, json={"run_ids": run_ids}).json()
    assert [(len(r["outputs"]), r["next_after"]) for r in small["results"]] == [(10, 10)] * runs


def test_a_restarted_head_serves_a_stored_workflows_pages_and_runs(head_factory: Any, tmp_path: Path) -> None:
    first = head_factory(tmp_path / "h", extra_args=["--num-cpus", "1"])
    with httpx.Client(base_url=f"{first.url}/api/v1", headers={"Authorization": f"Bearer {first.token}"},
                      timeout=120) as http:
        created = http.post("/workflows", json=noops("after-restart", 1_200)).json()
    first.stop()
    again = head_factory(tmp_path / "h", extra_args=["--num-cpus", "1"])  # its cache is empty: the store's row
    with httpx.Client(base_url=f"{again.url}/api/v1", headers={"Authorization": f"Bearer {again.token}"},
                      timeout=120) as http:
        pages = all_pages(http, created["workflow_id"])
        assert [n for p in pages for n in p["tasks"]] == created["tasks"]
        run = http.post(f"/workflows/{created['workflow_id']}/runs", params={"wait": 60, "limit": 200}, json={})
        assert run.status_code == 201 and run.json()["results"]["next_after"] == 200
