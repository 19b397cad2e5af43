"""Many runs in one request, on both clients, against a fake head: ``map``/``run_many`` and ``get_results_many``.

What is checked here is the client's side of the batch routes: the bodies it sends, how it splits long
lists at the head's bounds with one idempotency key per request, how it long-polls only the runs still
going, and how each run's outcome (outputs, a failure, an unknown id, a timeout) lands in its place.
"""

from __future__ import annotations

from typing import Any

import pytest

from lattice import NotFoundError, TaskFailed, WaitTimeout, WorkflowError, task
from lattice.wire.http import MAX_BATCH_RESULTS
from lattice.wire.spec import MAX_BATCH_RUNS
from tests.unit.client.fakes import Both, FakeHead, Seen


@task(inputs=["x"], outputs=["y"])
def double(params: dict[str, Any]) -> dict[str, Any]:
    return {"y": params["x"] * 2}


def batch_route(seen: Seen) -> dict[str, Any]:
    """A head's answer to a batch: one id per run, named after the request's key and the run's position."""
    key = seen.headers["idempotency-key"]
    return {"workflow_id": "wf1", "run_ids": [f"{key}/{i}" for i in range(len(seen.body["runs"]))]}


def done(run_id: str, value: Any) -> dict[str, Any]:
    return {"run_id": run_id, "state": "succeeded", "done": True,
            "outputs": {"y": {"encoding": "json", "value": value, "task": "double"}}}


async def test_map_registers_once_and_sends_every_run_in_one_request(kind: str) -> None:
    head = FakeHead({"POST /api/v1/workflows": {"workflow_id": "wf1"},
                     "POST /api/v1/workflows/wf1/runs:batch": batch_route})
    both = Both(kind, head)
    try:
        wf = both.client.create_workflow("m")
        wf.add_task(double, inputs={"x": 0})
        ids = await both.workflow_call(wf, "map", [{"double": {"x": i}} for i in range(3)], priority=5,
                                       tags={"k": "v"}, idempotency_key="key1")
        again = await both.workflow_call(wf, "map", [{}], idempotency_key="key2")
    finally:
        await both.close()
    assert ids == ["key1/0", "key1/1", "key1/2"]
    assert again == ["key2/0"]
    assert head.paths() == ["POST /api/v1/workflows", "POST /api/v1/workflows/wf1/runs:batch",
                            "POST /api/v1/workflows/wf1/runs:batch"]  # registered once, not once per run
    body = head.seen[1].body
    assert body["runs"][2] == {"priority": 5, "tags": {"k": "v"},
                               "inputs": {"double": {"x": {"encoding": "json", "value": 2}}}}
    assert head.seen[2].body == {"runs": [{"priority": 0, "tags": {}}]}


async def test_run_many_splits_a_long_list_at_the_heads_bound_with_a_key_per_request(kind: str) -> None:
    head = FakeHead({"POST /api/v1/workflows/wf1/runs:batch": batch_route})
    both = Both(kind, head)
    try:
        ids = await both.call("run_many", "wf1", [{}] * (MAX_BATCH_RUNS + 2), idempotency_key="big")
    finally:
        await both.close()
    assert [len(s.body["runs"]) for s in head.seen] == [MAX_BATCH_RUNS, 2]
    assert [s.headers["idempotency-key"] for s in head.seen] == ["big.0", "big.1"]
    assert len(ids) == MAX_BATCH_RUNS + 2 and ids[-1] == "big.1/1" and len(set(ids)) == len(ids)


async def test_map_refuses_inputs_that_are_not_a_list_of_dicts(kind: str) -> None:
    both = Both(kind, FakeHead())
    try:
        wf = both.client.create_workflow("m")
        wf.add_task(double, inputs={"x": 0})
        with pytest.raises(WorkflowError, match="list of per-run inputs"):
            await both.workflow_call(wf, "map", {"double": {"x": 1}})
        with pytest.raises(WorkflowError, match=r"inputs\[1\] is a int"):
            await both.workflow_call(wf, "map", [{}, 3])
        assert await both.workflow_call(wf, "map", []) == []
    finally:
        await both.close()


async def test_get_results_many_polls_only_the_runs_still_going_and_keeps_the_order(kind: str) -> None:
    polls: list[list[str]] = []

    def results(seen: Seen) -> dict[str, Any]:
        polls.append(seen.body["run_ids"])
        first = len(polls) == 1
        answered = [done("a", 1), {"run_id": "b", "state": "running", "done": False} if first else done("b", 2),
                    done("c", 3)]
        return {"results": [r for r in answered if r["run_id"] in seen.body["run_ids"]], "not_found": []}

    head = FakeHead({"POST /api/v1/runs/results:batch": results})
    both = Both(kind, head)
    try:
        values = await both.call("get_results_many", ["c", "a", "b", "a"])
    finally:
        await both.close()
    assert values == [{"y": 3}, {"y": 1}, {"y": 2}, {"y": 1}]
    assert polls == [["c", "a", "b"], ["b"]]
    assert 0 < head.seen[0].body["wait"] <= 30


async def test_a_failed_or_unknown_run_raises_or_takes_its_place(kind: str) -> None:
    failed = {"run_id": "bad", "state": "failed", "done": True, "failed_task": "double",
              "error": {"kind": "exception", "type": "ValueError", "message": "boom", "traceback": ""}}
    head = FakeHead({"POST /api/v1/runs/results:batch": {"results": [done("ok", 1), failed],
                                                          "not_found": ["ghost"]}})
    both = Both(kind, head)
    try:
        with pytest.raises(TaskFailed, match="boom"):
            await both.call("get_results_many", ["ok", "bad", "ghost"])
        with pytest.raises(NotFoundError, match="ghost"):
            await both.call("get_results_many", ["ok", "ghost", "bad"])
        values = await both.call("get_results_many", ["ok", "bad", "ghost"], return_exceptions=True)
    finally:
        await both.close()
    assert values[0] == {"y": 1}
    assert isinstance(values[1], TaskFailed) and values[1].task == "double"
    assert isinstance(values[2], NotFoundError) and values[2].status == 404


async def test_runs_still_going_at_the_timeout_are_wait_timeouts(kind: str) -> None:
    head = FakeHead({"POST /api/v1/runs/results:batch": lambda seen: {
        "results": [done("ok", 1), {"run_id": "slow", "state": "running", "done": False}], "not_found": []}})
    both = Both(kind, head)
    try:
        values = await both.call("get_results_many", ["ok", "slow"], timeout=0.3, return_exceptions=True)
        with pytest.raises(WaitTimeout, match="slow"):
            await both.call("get_results_many", ["slow"], timeout=0.2)
    finally:
        await both.close()
    assert values[0] == {"y": 1} and isinstance(values[1], WaitTimeout)


async def test_more_ids_than_one_request_holds_are_asked_in_chunks(kind: str) -> None:
    def results(seen: Seen) -> dict[str, Any]:
        return {"results": [done(run_id, 0) for run_id in seen.body["run_ids"]], "not_found": []}

    head = FakeHead({"POST /api/v1/runs/results:batch": results})
    both = Both(kind, head)
    try:
        ids = [f"r{i}" for i in range(MAX_BATCH_RESULTS + 5)]
        values = await both.call("get_results_many", ids)
    finally:
        await both.close()
    assert [len(s.body["run_ids"]) for s in head.seen] == [MAX_BATCH_RESULTS, 5]
    assert len(values) == len(ids)
