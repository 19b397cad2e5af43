"""What runs inside a task on a worker: the standard-library sender and the LangGraph stream writer.

Both go to a real HTTP server on loopback (``local_head``), because the sender opens its own
connections; they must ask exactly what the httpx clients would, with the token they were handed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from lattice import APIError, HeadUnavailableError, NotFoundError
from lattice.client import endpoints
from lattice.client.base import ClientConfig
from lattice.client.worker_http import WorkerHTTP
from lattice.wire.context import TaskContext, task_context
from tests.unit.client.fakes import LocalHead


def test_the_sender_makes_the_cores_requests(local_head: LocalHead) -> None:
    local_head.routes["GET /api/v1/runs"] = {"runs": [{"run_id": "r1"}]}
    local_head.routes["POST /api/v1/runs/r1/events"] = (201, {"seq": 4, "type": "custom"})
    local_head.routes["GET /api/v1/runs/r1/tasks"] = []
    http = WorkerHTTP(ClientConfig(local_head.url, "tok", 5.0))
    assert http.send(endpoints.list_runs("running", 1000)) == [{"run_id": "r1"}]
    assert http.send(endpoints.post_event("r1", {"a": 1}, task="t")) == {"seq": 4, "type": "custom"}
    from lattice.wire.restricted_pickle import PickleTrust

    assert http.send(endpoints.task_results("r1", PickleTrust())) == {}
    first, second, third = local_head.seen
    assert (first.method, first.path, first.params) == ("GET", "/api/v1/runs", {"limit": "1000", "state": "running"})
    assert (second.method, second.body) == ("POST", {"task": "t", "data": {"a": 1}})
    assert third.params == {"include_outputs": "true"}  # as httpx writes a bool
    assert all(s.headers["authorization"] == "Bearer tok" for s in local_head.seen)


def test_the_sender_raises_the_cores_typed_errors(local_head: LocalHead) -> None:
    local_head.routes["POST /api/v1/runs/r1/events"] = (409, {"error": {"type": "conflict", "message": "done"}})
    http = WorkerHTTP(ClientConfig(local_head.url, None, 5.0))
    with pytest.raises(NotFoundError):
        http.send(endpoints.get_run("nope"))
    with pytest.raises(APIError) as info:
        http.send(endpoints.post_event("r1", {}))
    assert (info.value.status, info.value.type) == (409, "conflict")
    assert "authorization" not in local_head.seen[0].headers
    closed = WorkerHTTP(ClientConfig("http://127.0.0.1:9", None, 2.0))  # nothing listens on port 9
    with pytest.raises(HeadUnavailableError):
        closed.send(endpoints.health())


def test_the_stream_writer_posts_to_its_own_run(local_head: LocalHead, monkeypatch: pytest.MonkeyPatch) -> None:
    from lattice.client.langgraph.remote import RemoteStreamWriter, decode_chunk

    monkeypatch.setenv("LATTICE_TOKEN", "the-workers-own")  # never sent: the writer uses the token it was given
    local_head.routes["POST /api/v1/runs/r7/events"] = (201, {"seq": 1})
    writer = RemoteStreamWriter(local_head.url + "/", None, "call-1", "node")
    with task_context(TaskContext("r7", "node", "a1")):
        writer({"progress": 0.5})
        writer({"set": {1, 2}})  # not JSON: travels pickled
    posted = [seen.body for seen in local_head.seen]
    assert posted[0] == {"task": "node", "data": {"langgraph_custom": {"progress": 0.5}}}
    assert decode_chunk(posted[1]["data"], None, "node") == (True, {"set": {1, 2}})
    assert all("authorization" not in seen.headers for seen in local_head.seen)


def test_the_stream_writer_finds_its_run_by_the_call_tag(local_head: LocalHead) -> None:
    from lattice.client.langgraph.remote import RemoteStreamWriter

    local_head.routes["GET /api/v1/runs"] = {"runs": [{"run_id": "other", "tags": {"call": "x"}},
                                                      {"run_id": "mine", "tags": {"call": "call-2"}}]}
    local_head.routes["POST /api/v1/runs/mine/events"] = (201, {"seq": 1})
    RemoteStreamWriter(local_head.url, "tok", "call-2", "node")("chunk")
    assert [f"{s.method} {s.path}" for s in local_head.seen] == ["GET /api/v1/runs", "POST /api/v1/runs/mine/events"]
    assert local_head.seen[0].params == {"limit": "1000", "state": "running"}


def test_a_worker_importing_the_remote_side_loads_no_client_stack() -> None:
    """The node's task is ``lattice.client.langgraph.remote.execute_node``: unpickling it must stay cheap."""
    code = ("import sys, json, lattice.client.langgraph.remote, lattice.client.worker_http; "
            "print(json.dumps(sorted(m for m in ('httpx', 'rich', 'websockets', 'lattice.client.client', "
            "'lattice.client.aio', 'lattice.client.langgraph.checkpointer') if m in sys.modules)))")
    loaded: Any = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                            check=True).stdout)
    assert loaded == []
