"""Every bad request gets a fitting status and a JSON error body naming the field."""

from __future__ import annotations

import httpx
import pytest

from lattice import AuthenticationError, LatticeClient, NotFoundError


@pytest.fixture
def http(head):
    with httpx.Client(base_url=head.url, headers={"authorization": f"Bearer {head.token}"}, timeout=30) as c:
        yield c


def spec(*tasks):
    return {"format": "lattice.workflow/v1", "name": "t", "tasks": list(tasks)}


def echo(name, inputs=None, outputs=("result",)):
    return {"name": name, "builtin": "echo", "inputs": inputs or {}, "outputs": list(outputs)}


def error_of(response, status):
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["type"] and body["message"]
    return body


def test_builtin_workflow_over_plain_http(http):
    created = http.post("/api/v1/workflows", json=spec(
        echo("a", {"x": {"value": 1}}),
        echo("b", {"up": {"task": "a", "output": "result"}}),
    ))
    assert created.status_code == 201
    workflow_id = created.json()["workflow_id"]
    run = http.post(f"/api/v1/workflows/{workflow_id}/runs", json={"tags": {"who": "test"}}).json()
    results = http.get(f"/api/v1/runs/{run['run_id']}/results", params={"wait": 30}).json()
    assert results["state"] == "succeeded"
    assert results["outputs"] == {"result": {"encoding": "json", "value": {"up": {"x": 1}}, "task": "b"}}
    assert http.get(f"/api/v1/runs/{run['run_id']}").json()["tags"] == {"who": "test"}


def test_unknown_ids_are_404(http):
    assert error_of(http.get("/api/v1/runs/nope"), 404)["field"] == "run_id"
    assert error_of(http.post("/api/v1/workflows/nope/runs", json={}), 404)["field"] == "workflow_id"
    error_of(http.get("/api/v1/runs/nope/results"), 404)
    error_of(http.post("/api/v1/runs/nope/cancel"), 404)


def test_malformed_spec_is_422_naming_the_field(http):
    body = error_of(http.post("/api/v1/workflows", json={"tasks": [{"name": "a", "builtin": "echo",
                                                                        "resources": {"cpu": -1}}]}), 422)
    assert body["field"] == "tasks[0].resources.cpu"
    body = error_of(http.post("/api/v1/workflows", json={"tasks": []}), 422)
    assert body["field"] == "tasks"
    body = error_of(http.post("/api/v1/workflows", json=spec({"name": "a"})), 422)
    assert "exactly one of 'code', 'code_ref' or 'builtin'" in body["message"]
    error_of(http.post("/api/v1/workflows", content=b"{not json", headers={"content-type": "application/json"}),
             422)


def test_missing_reference_and_cycle_are_422(http):
    body = error_of(http.post("/api/v1/workflows", json=spec(echo("a", {"x": {"task": "ghost", "output": "r"}}))),
                    422)
    assert body["field"] == "tasks[0].inputs.x.task" and "ghost" in body["message"]
    body = error_of(http.post("/api/v1/workflows", json=spec(
        echo("a"), echo("b", {"x": {"task": "a", "output": "nope"}}))), 422)
    assert body["field"] == "tasks[1].inputs.x.output"
    body = error_of(http.post("/api/v1/workflows", json=spec(
        echo("a", {"x": {"task": "b", "output": "result"}}), echo("b", {"x": {"task": "a", "output": "result"}}))),
        422)
    assert body["type"] == "invalid_workflow" and "cycle" in body["message"] and "a -> b" in body["message"]


def test_oversized_body_is_413(http):
    big = "x" * (65 * 1024 * 1024)
    body = error_of(http.post("/api/v1/workflows", json=spec(echo("a", {"x": {"value": big}}))), 413)
    assert body["type"] == "payload_too_large"


def test_auth_is_required(head):
    assert httpx.get(f"{head.url}/health").status_code == 200
    for headers in ({}, {"authorization": "Bearer wrong"}):
        response = httpx.get(f"{head.url}/api/v1/runs", headers=headers)
        assert error_of(response, 401)["field"] == "Authorization"
    assert httpx.get(f"{head.url}/metrics").status_code == 401
    with LatticeClient(head.url, token="wrong", progress=False) as bad:
        with pytest.raises(AuthenticationError):
            bad.list_runs()
    with LatticeClient(head.url, token=head.token, progress=False) as good:
        with pytest.raises(NotFoundError):
            good.get_run("missing")


def test_weaker_sandbox_than_minimum_is_refused(head_factory):
    strict = head_factory(extra_args=["--num-cpus", "1", "--sandbox", "subprocess"])
    with httpx.Client(base_url=strict.url, headers={"authorization": f"Bearer {strict.token}"}) as http:
        task = {**echo("a"), "sandbox": "none"}
        body = error_of(http.post("/api/v1/workflows", json=spec(task)), 422)
        assert body["field"] == "tasks[0].sandbox" and "minimum" in body["message"]


def test_metrics_and_cluster_routes(http):
    text = http.get("/metrics").text
    assert "lattice_runs" in text and "lattice_cluster_cpus " in text
    nodes = http.get("/api/v1/cluster/nodes").json()["nodes"]
    assert nodes and nodes[0]["total"]["cpu"] == 2
    assert http.get("/api/v1/cluster/resources").json()["nodes"] == 1
    assert "paths" in http.get("/openapi.json").json()
