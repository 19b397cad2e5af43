"""The API's edges against a real head: bounded integers, idempotent run submission, the OpenAPI
document's security, ``/docs`` without a CDN, the version header, and the event stream of a finished run."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

import lattice
from lattice import APIError, LatticeClient

BIG = "10000000000000000001"  # past int64: was a 500 OverflowError from SQLite


@pytest.fixture
def http(head):
    with httpx.Client(base_url=head.url, headers={"authorization": f"Bearer {head.token}"}, timeout=30) as c:
        yield c


def echo_workflow(http: httpx.Client) -> str:
    spec = {"format": "lattice.workflow/v1", "name": "edges",
            "tasks": [{"name": "a", "builtin": "echo", "inputs": {"x": {"value": 1}}, "outputs": ["result"]}]}
    created = http.post("/api/v1/workflows", json=spec)
    assert created.status_code == 201, created.text
    return created.json()["workflow_id"]


def finished_run(http: httpx.Client) -> str:
    run_id = http.post(f"/api/v1/workflows/{echo_workflow(http)}/runs", json={}).json()["run_id"]
    assert http.get(f"/api/v1/runs/{run_id}/results", params={"wait": 30}).json()["done"]
    return run_id


def field_of_422(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    return response.json()["error"]["field"]


# --- integers -------------------------------------------------------------------------------------------

def test_huge_integers_are_422_naming_the_field(http):
    run_id = finished_run(http)
    assert field_of_422(http.get("/api/v1/runs", params={"offset": BIG})) == "offset"
    assert field_of_422(http.get(f"/api/v1/runs/{run_id}/events", params={"after": BIG})) == "after"
    assert http.get("/api/v1/runs", params={"offset": str(2**63 - 1)}).json()["runs"] == []
    assert http.get(f"/api/v1/runs/{run_id}/events", params={"after": str(2**63 - 1)}).json()["events"] == []
    write = {"thread_id": "t", "checkpoint_id": "c", "task_id": "k",
             "writes": [{"idx": int(BIG), "channel": "ch", "value": {"type": "json", "data": ""}}]}
    assert field_of_422(http.post("/api/v1/checkpoints/writes", json=write)) == "writes[0].idx"
    task = {"name": "a", "builtin": "noop", "resources": {"memory": int(BIG)}}
    assert field_of_422(http.post("/api/v1/workflows", json={"tasks": [task]})) == "tasks[0].resources.memory"


# --- idempotent run submission --------------------------------------------------------------------------

def test_a_repeated_idempotency_key_returns_the_first_run(http):
    workflow_id = echo_workflow(http)
    url = f"/api/v1/workflows/{workflow_id}/runs"
    first = http.post(url, json={"tags": {"k": "v"}}, headers={"Idempotency-Key": "key-1"})
    again = http.post(url, json={"tags": {"k": "v"}}, headers={"Idempotency-Key": "key-1"})
    other = http.post(url, json={"tags": {"k": "v"}}, headers={"Idempotency-Key": "key-2"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["run_id"] == first.json()["run_id"] != other.json()["run_id"]
    assert again.headers["idempotent-replayed"] == "true"
    listed = http.get("/api/v1/runs", params={"limit": 1000}).json()["runs"]
    runs = [r for r in listed if r["workflow_id"] == workflow_id]
    assert len(runs) == 2
    reused = http.post(url, json={"tags": {"k": "other"}}, headers={"Idempotency-Key": "key-1"})
    assert reused.status_code == 422 and reused.json()["error"]["type"] == "idempotency_key_reused"
    assert field_of_422(http.post(url, json={}, headers={"Idempotency-Key": "has space"})) == "Idempotency-Key"


def test_the_sdk_sends_a_key_and_the_head_honours_it(head):
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        with httpx.Client(base_url=head.url, headers={"authorization": f"Bearer {head.token}"}) as http:
            workflow_id = echo_workflow(http)
        first = client.start_run(workflow_id, idempotency_key="sdk-key")
        assert client.start_run(workflow_id, idempotency_key="sdk-key") == first
        assert client.start_run(workflow_id) != first  # no key given: a fresh one, a new run
        assert client.get_results(first) == {"result": {"x": 1}}


# --- version ---------------------------------------------------------------------------------------------

def test_every_answer_names_the_head_version(http):
    assert http.get("/health").headers["x-lattice-version"] == lattice.__version__
    assert http.get("/health").json()["version"] == lattice.__version__
    assert http.get("/api/v1/runs/nope").headers["x-lattice-version"] == lattice.__version__


# --- OpenAPI and /docs -----------------------------------------------------------------------------------

def test_openapi_declares_bearer_and_marks_public_routes(head):
    document = httpx.get(f"{head.url}/openapi.json", timeout=30).json()  # no token needed
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "token",
        "description": document["components"]["securitySchemes"]["bearer"]["description"]}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            expected = None if path == "/health" else [{"bearer": []}]
            assert operation.get("security") == expected, (method, path)
    assert "/health, /docs and /openapi.json do not" in document["info"]["description"].replace("`", "")
    assert httpx.get(f"{head.url}/docs", timeout=30).status_code == 200
    assert httpx.get(f"{head.url}/metrics", timeout=30).status_code == 401


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        url = values.get("src") if tag == "script" else values.get("href") if tag == "link" else None
        if url:
            self.urls.append(url)


def test_docs_page_loads_everything_from_the_head(head):
    page = httpx.get(f"{head.url}/docs", timeout=30)
    parser = _Assets()
    parser.feed(page.text)
    assert len(parser.urls) == 3  # the bundle, the stylesheet, the icon
    origin = urlsplit(head.url)
    for url in parser.urls:
        absolute = urlsplit(urljoin(page.url.__str__(), url))
        assert (absolute.scheme, absolute.netloc) == (origin.scheme, origin.netloc), url
        asset = httpx.get(absolute.geturl(), timeout=30)
        assert asset.status_code == 200 and len(asset.content) > 100, url
    bundle = httpx.get(urljoin(head.url, next(u for u in parser.urls if u.endswith(".js"))), timeout=30).text
    major = max(int(v) for v in re.findall(r'"(5)\.\d+\.\d+"', bundle))  # Swagger UI 5: reads OpenAPI 3.1
    assert major == 5
    assert not re.search(r"https?://(?!127\.0\.0\.1)[^\s\"']+\.(js|css)\b", page.text)
    assert '"validatorUrl": null' in page.text


# --- the event stream of a finished run ------------------------------------------------------------------

def _ws(head, run_id: str, after: str) -> str:
    return f"{head.url.replace('http', 'ws', 1)}/api/v1/runs/{run_id}/events/ws?after={after}"


def test_a_finished_runs_stream_is_its_replay_then_a_normal_close(head, http):
    run_id = finished_run(http)
    events = http.get(f"/api/v1/runs/{run_id}/events").json()["events"]
    last = events[-1]["seq"]
    auth = {"authorization": f"Bearer {head.token}"}
    for after, expected in ((0, [e["seq"] for e in events]), (last - 1, [last]), (last, []), (last + 50, [])):
        with connect(_ws(head, run_id, str(after)), additional_headers=auth, open_timeout=10) as ws:
            got = [json.loads(m)["seq"] for m in ws]  # ends: the head closed the stream
            assert got == expected and ws.close_code == 1000, after
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        assert list(client.stream(run_id, after=last)) == []
        assert [e["seq"] for e in client.stream(run_id, after=last - 1)] == [last]


def test_a_huge_after_is_refused_with_4422(head, http):
    run_id = finished_run(http)
    auth = {"authorization": f"Bearer {head.token}"}
    with connect(_ws(head, run_id, BIG), additional_headers=auth, open_timeout=10) as ws:
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=10)
        assert ws.close_code == 4422
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        with pytest.raises(APIError) as info:
            list(client.stream(run_id, after=int(BIG)))
        assert (info.value.status, info.value.field) == (422, "after")
