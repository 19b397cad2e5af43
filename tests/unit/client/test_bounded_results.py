"""The bounded results of a ``wait`` submit and of ``POST /runs/results:batch`` made whole by the SDK.

Both answers carry at most a page of a big run's sinks (``next_after`` set when more follow): the client
asks for that page (``limit``) and fetches the rest from ``GET /runs/{id}/results``, so the caller still
gets one dict per run; a head that does not page (no ``next_after``) is answered in one request as before.
"""

from __future__ import annotations

from typing import Any

from lattice import task
from lattice.wire.http import RESULTS_PAGE
from tests.unit.client.fakes import Both, FakeHead, Seen


@task(inputs=["x"], outputs=["y"])
def double(params: dict[str, Any]) -> dict[str, Any]:
    return {"y": params["x"] * 2}


def value(task: str, v: int) -> dict[str, Any]:
    return {"encoding": "json", "value": v, "task": task}


def page(run_id: str, outputs: dict[str, Any], next_after: int | None, sinks: int = 3) -> dict[str, Any]:
    return {"run_id": run_id, "state": "succeeded", "done": True, "outputs": outputs, "next_after": next_after,
            "sinks": sinks}


def rest_of(run_id: str) -> Any:
    """``GET /runs/{run_id}/results?after=``: sinks b (page 1) and c (page 2) of a 3-sink run."""
    pages = {"1": page(run_id, {"b": value("b", 2)}, 2), "2": page(run_id, {"c": value("c", 3)}, None)}
    return lambda seen: pages[seen.params["after"]]


async def test_a_waiting_run_asks_for_a_page_and_get_results_fetches_the_rest(kind: str) -> None:
    def created(seen: Seen) -> tuple[int, dict[str, Any]]:
        return 201, {"run_id": "r1", "workflow_id": "wf1", "state": "succeeded",
                     "results": page("r1", {"a": value("a", 1)}, 1)}

    head = FakeHead({"POST /api/v1/workflows": {"workflow_id": "wf1"}, "POST /api/v1/workflows/wf1/runs": created,
                     "GET /api/v1/runs/r1/results": rest_of("r1")})
    both = Both(kind, head, progress=False)
    try:
        wf = both.client.create_workflow("w")
        wf.add_task(double, inputs={"x": 1})
        run_id = await both.workflow_call(wf, "run", wait=True)
        assert await both.call("get_results", run_id) == {"a": 1, "b": 2, "c": 3}
    finally:
        await both.close()
    submit = head.seen[1]
    assert submit.params["limit"] == str(RESULTS_PAGE)  # the first page only, however big the run
    assert head.paths()[2:] == ["GET /api/v1/runs/r1/results"] * 2
    assert [s.params["after"] for s in head.seen[2:]] == ["1", "2"]


async def test_a_waiting_run_whose_results_did_not_come_is_polled(kind: str) -> None:
    head = FakeHead({"POST /api/v1/workflows": {"workflow_id": "wf1"},
                     "POST /api/v1/workflows/wf1/runs": (201, {"run_id": "r1", "workflow_id": "wf1",
                                                              "state": "succeeded"}),
                     "GET /api/v1/runs/r1/results": lambda seen: page("r1", {"a": value("a", 1)}, None, 1)})
    both = Both(kind, head, progress=False)
    try:
        wf = both.client.create_workflow("w")
        wf.add_task(double, inputs={"x": 1})
        assert await both.call("get_results", await both.workflow_call(wf, "run", wait=True)) == {"a": 1}
    finally:
        await both.close()
    assert head.paths()[-1] == "GET /api/v1/runs/r1/results"


async def test_many_results_are_asked_a_page_each_and_completed_run_by_run(kind: str) -> None:
    def batch(seen: Seen) -> dict[str, Any]:
        return {"not_found": [], "results": [
            page("r1", {"a": value("a", 1)}, 1),  # its first page: the rest from GET .../results
            page("r2", {}, 0),  # the answer was full: every sink still to come
            {"run_id": "r3", "state": "succeeded", "done": True, "outputs": {"y": value("y", 9)}}]}  # whole

    head = FakeHead({"POST /api/v1/runs/results:batch": batch, "GET /api/v1/runs/r1/results": rest_of("r1"),
                     "GET /api/v1/runs/r2/results": lambda seen: page("r2", {"a": value("a", 4), "b": value("b", 5),
                                                                               "c": value("c", 6)}, None)})
    both = Both(kind, head, progress=False)
    try:
        outputs = await both.call("get_results_many", ["r1", "r2", "r3"])
    finally:
        await both.close()
    assert outputs == [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}, {"y": 9}]
    assert head.seen[0].params == {"limit": str(RESULTS_PAGE)}
    asked = [(s.path, s.params.get("after")) for s in head.seen[1:]]
    assert asked == [("/api/v1/runs/r1/results", "1"), ("/api/v1/runs/r1/results", "2"),
                     ("/api/v1/runs/r2/results", "0")]
