"""Each endpoint's one description: the request it makes and how its answer is read."""

from __future__ import annotations

import argparse
import base64
from typing import Any

import cloudpickle
import pytest

from lattice import UntrustedOutputError
from lattice.client import endpoints
from lattice.client.base import ClientConfig
from lattice.client.decoding import TaskResult
from lattice.wire.restricted_pickle import PickleTrust


def request(call: endpoints.Call[Any]) -> tuple[str, str, Any, Any]:
    return call.method, call.path, call.params, call.json


def test_run_endpoints() -> None:
    assert request(endpoints.get_run("r1")) == ("GET", "/api/v1/runs/r1", None, None)
    assert request(endpoints.cancel("r1")) == ("POST", "/api/v1/runs/r1/cancel", None, None)
    assert request(endpoints.results("r1", 30.0)) == ("GET", "/api/v1/runs/r1/results",
                                                      {"wait": 30.0, "limit": 1000, "after": 0}, None)
    assert request(endpoints.list_runs()) == ("GET", "/api/v1/runs", {"limit": 50}, None)
    assert endpoints.list_runs("running", 5).params == {"limit": 5, "state": "running"}
    assert endpoints.get_logs("r1").params == {}
    assert endpoints.get_logs("r1", "t").params == {"task": "t"}
    assert request(endpoints.get_events("r1", 7)) == ("GET", "/api/v1/runs/r1/events", {"after": 7}, None)
    assert request(endpoints.post_event("r1", {"x": 1}, task="t")) == (
        "POST", "/api/v1/runs/r1/events", None, {"task": "t", "data": {"x": 1}})
    assert endpoints.event_stream("r1", 3) == "/api/v1/runs/r1/events/ws?after=3"
    assert ClientConfig("https://h:1", None, 1.0).ws_url("/x") == "wss://h:1/x"


def test_answers_are_read_from_their_field() -> None:
    assert endpoints.submit_workflow({"format": "f"}).parse({"workflow_id": "w1", "name": "n"}) == "w1"
    assert endpoints.start_run("w1").parse({"run_id": "r1", "state": "pending"}) == "r1"
    assert endpoints.list_runs().parse({"runs": [{"run_id": "r1"}]}) == [{"run_id": "r1"}]
    assert endpoints.get_logs("r1").parse({"run_id": "r1", "attempts": [1]}) == [1]
    assert endpoints.get_events("r1").parse({"run_id": "r1", "events": [2], "last_seq": 2}) == [2]
    assert endpoints.nodes().parse({"nodes": [3]}) == [3]
    assert endpoints.list_checkpoints({}).parse({"checkpoints": [4]}) == [4]
    body = {"status": "ok"}
    for call in (endpoints.health(), endpoints.resources(), endpoints.get_run("r"), endpoints.cancel("r")):
        assert call.parse(body) is body


def test_start_run_encodes_per_run_inputs_like_literals() -> None:
    call = endpoints.start_run("w1", priority=3, tags={"a": "b"}, inputs={"t": {"x": 1, "y": {1, 2}}})
    assert call.method == "POST" and call.path == "/api/v1/workflows/w1/runs"
    assert call.json["priority"] == 3 and call.json["tags"] == {"a": "b"}
    assert call.json["inputs"]["t"]["x"] == {"encoding": "json", "value": 1}
    assert call.json["inputs"]["t"]["y"]["encoding"] == "pickle"
    assert endpoints.start_run("w1").json == {"priority": 0, "tags": {}}


def test_task_results_decode_under_the_given_trust() -> None:
    sandboxed = {"encoding": "sandboxed-pickle", "data": base64.b64encode(cloudpickle.dumps(argparse.Namespace(a=1)))
                 .decode()}
    items = [{"name": "t", "state": "succeeded", "outputs": {"ns": sandboxed}}]
    call = endpoints.task_results("r1", PickleTrust())
    assert call.params == {"include_outputs": True} and call.path == "/api/v1/runs/r1/tasks"
    with pytest.raises(UntrustedOutputError):
        call.parse(items)
    trusted = endpoints.task_results("r1", PickleTrust.of([argparse.Namespace])).parse(items)
    assert trusted == {"t": TaskResult(name="t", state="succeeded", outputs={"ns": argparse.Namespace(a=1)})}


def test_checkpoint_and_cluster_endpoints() -> None:
    assert request(endpoints.put_checkpoint({"a": 1})) == ("POST", "/api/v1/checkpoints", None, {"a": 1})
    assert request(endpoints.put_writes({"b": 2})) == ("POST", "/api/v1/checkpoints/writes", None, {"b": 2})
    assert request(endpoints.delete_thread("th")) == ("DELETE", "/api/v1/checkpoints", {"thread_id": "th"}, None)
    assert request(endpoints.cluster_join()) == ("GET", "/api/v1/cluster/join", None, None)
    assert request(endpoints.health()) == ("GET", "/health", None, None)
