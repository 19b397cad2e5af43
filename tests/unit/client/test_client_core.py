"""Both clients through the one core, against one fake head: requests, auth, errors, long polls, progress.

Each test runs twice (``kind`` is ``sync`` or ``async``) with the same body and the same assertions, so
the two clients are checked to behave alike, not only to have the same names.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

import lattice
from lattice import APIError, AuthenticationError, HeadUnavailableError, LatticeError, NotFoundError, WaitTimeout
from lattice.client import base
from lattice.client.base import ClientConfig, api_error
from lattice.client.transport import HeadHTTP
from tests.unit.client.fakes import Both, FakeHead, Seen, connect


def results(done: bool, **extra: Any) -> dict[str, Any]:
    return {"run_id": "r1", "state": "succeeded" if done else "running", "done": done,
            "outputs": {"y": {"encoding": "json", "value": 2, "task": "t"}} if done else None, **extra}


async def test_every_call_sends_its_endpoint_with_the_token(kind: str) -> None:
    head = FakeHead({
        "GET /api/v1/runs": {"runs": [{"run_id": "r1"}]},
        "GET /api/v1/runs/r1/events": {"run_id": "r1", "events": [{"seq": 1}], "last_seq": 1},
        "GET /api/v1/cluster/resources": {"nodes": 1, "queued_tasks": {}},
        "GET /api/v1/cluster/nodes": {"nodes": [{"node_id": "n"}]},
        "GET /health": {"status": "ok"},
        "GET /api/v1/runs/r1": {"run_id": "r1", "state": "running"},
        "GET /api/v1/runs/r1/logs": {"run_id": "r1", "attempts": []},
        "POST /api/v1/runs/r1/cancel": {"run_id": "r1", "state": "cancelled"},
    })
    both = Both(kind, head)
    try:
        assert await both.call("list_runs", state="running", limit=3) == [{"run_id": "r1"}]
        assert await both.call("get_events", "r1", after=0) == [{"seq": 1}]
        assert await both.call("resources") == {"nodes": 1, "queued_tasks": {}}
        assert await both.call("nodes") == [{"node_id": "n"}]
        assert await both.call("health") == {"status": "ok"}
        assert (await both.call("get_run", "r1"))["state"] == "running"
        assert await both.call("get_logs", "r1", task="t") == []
        assert (await both.call("cancel", "r1"))["state"] == "cancelled"
    finally:
        await both.close()
    assert head.seen[0].params == {"state": "running", "limit": "3"}
    assert head.seen[6].params == {"task": "t"}
    assert all(s.headers["authorization"] == "Bearer secret" for s in head.seen)
    assert all(s.headers["user-agent"] == f"lattice-agent/{lattice.__version__}" for s in head.seen)
    assert all(s.headers["x-lattice-client-version"] == lattice.__version__ for s in head.seen)


async def test_error_answers_become_typed_errors(kind: str) -> None:
    head = FakeHead({
        "GET /api/v1/runs/bad": (401, {"error": {"type": "unauthorized", "message": "no", "field": "token",
                                                 "hint": "pass token="}}),
        "POST /api/v1/workflows/w1/runs": (422, {"error": {"type": "validation_error", "message": "bad",
                                                           "field": "inputs.t.x"}}),
        "GET /api/v1/cluster/nodes": (500, "<html>internal error</html>"),
    })
    both = Both(kind, head)
    try:
        with pytest.raises(AuthenticationError) as auth:
            await both.call("get_run", "bad")
        assert (auth.value.status, auth.value.field, auth.value.hint) == (401, "token", "pass token=")
        with pytest.raises(NotFoundError):
            await both.call("get_run", "missing")
        with pytest.raises(APIError) as invalid:
            await both.call("start_run", "w1", inputs={"t": {"x": 1}})
        assert (invalid.value.status, invalid.value.type) == (422, "validation_error")
        assert invalid.value.field == "inputs.t.x"
        with pytest.raises(APIError) as gateway:
            await both.call("nodes")
        assert (gateway.value.type, gateway.value.message) == ("http_error", "<html>internal error</html>")
    finally:
        await both.close()


async def test_an_unreachable_head_is_head_unavailable(kind: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    both = Both(kind, FakeHead(), unavailable_timeout=0)  # 0: no retries (test_retry.py has those)
    connect(both.client, refuse)
    try:
        with pytest.raises(HeadUnavailableError, match=re.escape("cannot reach the Lattice head at http://head.test")):
            await both.call("health")
    finally:
        await both.close()


def test_api_error_reads_the_body_or_falls_back_to_the_text() -> None:
    assert type(api_error(404, '{"error": {"type": "not_found", "message": "m"}}')) is NotFoundError
    odd = api_error(500, '{"error": "a string"}', "Internal Server Error")
    assert (type(odd), odd.type, odd.message) == (APIError, "http_error", '{"error": "a string"}')
    assert api_error(503, "", "Service Unavailable").message == "Service Unavailable"


async def test_wait_long_polls_until_done_and_get_results_decodes(kind: str) -> None:
    answers = iter([results(False), results(False), results(True)])
    head = FakeHead({"GET /api/v1/runs/r1/results": lambda seen: next(answers)})
    both = Both(kind, head, progress=False)
    try:
        assert await both.call("get_results", "r1") == {"y": 2}
    finally:
        await both.close()
    assert [s.params for s in head.seen] == [{"wait": "30.0", "limit": "1000", "after": "0"}] * 3
    assert head.paths() == ["GET /api/v1/runs/r1/results"] * 3  # no get_run without a bar


async def test_a_paged_result_is_fetched_page_by_page_and_merged_into_one(kind: str) -> None:
    def page(after: int, outputs: dict[str, Any], next_after: int | None) -> dict[str, Any]:
        return {"run_id": "r1", "state": "succeeded", "done": True, "outputs": outputs, "next_after": next_after,
                "sinks": 3}

    pages = {"0": page(0, {"a": {"encoding": "json", "value": 1, "task": "a"}}, 1),
             "1": page(1, {"b": {"encoding": "json", "value": 2, "task": "b"}}, 2),
             "2": page(2, {"c": {"encoding": "json", "value": 3, "task": "c"}}, None)}
    head = FakeHead({"GET /api/v1/runs/r1/results": lambda seen: pages[seen.params["after"]]})
    both = Both(kind, head, progress=False)
    try:
        assert await both.call("get_results", "r1") == {"a": 1, "b": 2, "c": 3}
    finally:
        await both.close()
    assert [s.params["after"] for s in head.seen] == ["0", "1", "2"]
    assert [s.params["wait"] for s in head.seen][1:] == ["0.0", "0.0"]  # the later pages do not wait


async def test_a_head_that_does_not_page_answers_everything_at_once(kind: str) -> None:
    head = FakeHead({"GET /api/v1/runs/r1/results": lambda seen: results(True)})  # no next_after at all
    both = Both(kind, head, progress=False)
    try:
        assert await both.call("get_results", "r1") == {"y": 2}
    finally:
        await both.close()
    assert len(head.seen) == 1


async def test_wait_gives_up_after_its_timeout(kind: str) -> None:
    head = FakeHead({"GET /api/v1/runs/r1/results": results(False)})
    both = Both(kind, head, progress=False)
    try:
        with pytest.raises(WaitTimeout, match=re.escape("did not finish within 0.05 s")) as info:
            await both.call("wait", "r1", timeout=0.05)
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, LatticeError)
    finally:
        await both.close()
    assert head.seen and float(head.seen[0].params["wait"]) <= 0.05


class FakeBar:
    made: list[FakeBar] = []

    def __init__(self, run_id: str) -> None:
        self.run_id, self.updates, self.closed = run_id, [], False
        FakeBar.made.append(self)

    def update(self, run: dict[str, Any]) -> None:
        self.updates.append(run["task_counts"])

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> list[FakeBar]:
    import lattice.client.progress

    FakeBar.made = []
    monkeypatch.setattr(lattice.client.progress, "RunProgress", FakeBar)
    return FakeBar.made


async def test_a_progress_bar_polls_each_second_and_is_fed_the_run(kind: str, bars: list[FakeBar]) -> None:
    answers = iter([results(False), results(True)])
    counts = iter([{"running": 1}, {"succeeded": 1}])
    head = FakeHead({"GET /api/v1/runs/r1/results": lambda seen: next(answers),
                     "GET /api/v1/runs/r1": lambda seen: {"run_id": "r1", "task_counts": next(counts)}})
    both = Both(kind, head, progress=True)
    try:
        await both.call("wait", "r1")
        assert bars[-1].updates == [{"running": 1}, {"succeeded": 1}] and bars[-1].closed
    finally:
        await both.close()
    assert head.paths() == ["GET /api/v1/runs/r1/results", "GET /api/v1/runs/r1"] * 2
    assert head.seen[0].params == {"wait": "1.0", "limit": "1000", "after": "0"}


async def test_the_bar_is_closed_when_the_head_fails_mid_wait(kind: str, bars: list[FakeBar]) -> None:
    head = FakeHead({"GET /api/v1/runs/r1/results": (500, {"error": {"type": "internal_error", "message": "x"}})})
    both = Both(kind, head)
    try:
        with pytest.raises(APIError):
            await both.call("get_results", "r1", progress=True)
        assert bars[-1].closed
        both.client.progress = True  # the client's setting applies when the call gives none ...
        with pytest.raises(APIError):
            await both.call("wait", "r1")
        assert len(bars) == 2 and bars[-1].closed
        with pytest.raises(APIError):  # ... and the call's wins over it
            await both.call("wait", "r1", progress=False)
        assert len(bars) == 2
    finally:
        await both.close()


async def test_a_workflow_registers_once_per_change(kind: str) -> None:
    from lattice import task

    @task(inputs=["x"], outputs=["y"])
    def double(params: dict[str, Any]) -> dict[str, Any]:
        return {"y": params["x"] * 2}

    ids = iter(["w1", "w2"])
    head = FakeHead({"POST /api/v1/workflows": lambda seen: {"workflow_id": next(ids)},
                     "POST /api/v1/workflows/w1/runs": {"run_id": "r1"},
                     "POST /api/v1/workflows/w2/runs": {"run_id": "r2"},
                     "GET /api/v1/runs/r2/results": results(True)})
    both = Both(kind, head, progress=False)
    try:
        workflow = both.client.create_workflow("wf")
        workflow.add_task(double, inputs={"x": 1})
        assert await both.workflow_call(workflow, "run") == "r1"
        assert await both.workflow_call(workflow, "run", inputs={"double": {"x": 5}}) == "r1"
        workflow.add_task(double, inputs={"x": 2})
        assert await both.workflow_call(workflow, "run", priority=2, tags={"k": "v"}) == "r2"
        assert await both.workflow_call(workflow, "get_results", "r2", progress=False) == {"y": 2}
    finally:
        await both.close()
    assert head.paths() == ["POST /api/v1/workflows", "POST /api/v1/workflows/w1/runs",
                            "POST /api/v1/workflows/w1/runs", "POST /api/v1/workflows",
                            "POST /api/v1/workflows/w2/runs", "GET /api/v1/runs/r2/results"]
    assert head.seen[2].body["inputs"] == {"double": {"x": {"encoding": "json", "value": 5}}}
    assert head.seen[4].body == {"priority": 2, "tags": {"k": "v"}}


def test_discovery_and_exact_configs(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    (tmp_path / "token").write_text("from-file\n")
    (tmp_path / "head.json").write_text('{"url": "http://found:9/"}')
    monkeypatch.setenv("LATTICE_HOME", str(tmp_path))
    monkeypatch.delenv("LATTICE_URL", raising=False)
    monkeypatch.delenv("LATTICE_TOKEN", raising=False)
    found = ClientConfig.discover(None, None, 5.0)
    assert (found.url, found.token) == ("http://found:9", "from-file")
    monkeypatch.setenv("LATTICE_TOKEN", "from-env")
    assert ClientConfig.discover("http://x/", None, 5.0).token == "from-env"
    exact = ClientConfig("http://x", None, 5.0)  # what a worker is handed: nothing discovered
    assert exact.token is None and "authorization" not in exact.headers


def test_head_http_serves_the_checkpointer_and_the_cli() -> None:
    seen: list[Seen] = []
    head = FakeHead({"GET /api/v1/cluster/join": {"ray_address": "a:1", "ray_token": None, "ray_version": "x"}},
                    seen)
    with HeadHTTP(ClientConfig("http://head.test", "tok", 1.0), transport=httpx.MockTransport(head)) as http:
        from lattice.client import endpoints

        assert http.send(endpoints.cluster_join())["ray_address"] == "a:1"
        assert http.request("GET", "/api/v1/cluster/join")["ray_version"] == "x"
    assert seen[0].headers["authorization"] == "Bearer tok"
    assert base.RESULT_POLL_S == 30.0
