"""Tenants on a real 2-core head with real Ray: isolation, roles, revocation, quotas and fair share.

Each tenant is a named key made with the head's admin token; every check goes over real HTTP (and a
real WebSocket) the way a user's client would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from headproc import HeadProcess
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from lattice import LatticeClient, task
from lattice.client import endpoints


@task(outputs=["t"])
def nap(params):
    start = time.time()
    time.sleep(0.1)
    return {"t": (start, time.time())}


@task(outputs=["t"])
def work(params):
    start = time.time()
    time.sleep(0.3)
    return {"t": (start, time.time())}


@task(outputs=["t"])
def long_work(params):
    start = time.time()
    time.sleep(1.5)
    return {"t": (start, time.time())}


@task(outputs=["t"])
def forever(params):
    time.sleep(60)
    return {"t": 0}


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadProcess]:
    proc = HeadProcess(tmp_path_factory.mktemp("tenants"), extra_args=["--num-cpus", "2"]).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def admin(head: HeadProcess) -> Iterator[LatticeClient]:
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        yield client


def make_key(admin: LatticeClient, name: str, role: str = "submit", weight: float = 1.0, **quota: Any) -> str:
    return admin._send(endpoints.create_key(name, role, weight, quota))["key"]


def as_tenant(head: HeadProcess, key: str) -> LatticeClient:
    return LatticeClient(head.url, token=key, progress=False)


def fan_out(client: LatticeClient, fn: Any, n: int, name: str = "fan"):
    wf = client.create_workflow(name)
    for i in range(n):
        wf.add_task(fn, name=f"t{i}")
    return wf


def intervals(client: LatticeClient, run_id: str) -> list[tuple[float, float]]:
    return [(t["started_at"], t["finished_at"]) for t in client.get_run(run_id)["tasks"]]


def max_overlap(spans: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


def run_queue(client: LatticeClient, run_id: str) -> dict[str, Any] | None:
    for tenant in client.queues()["tenants"]:
        for run in tenant["runs"]:
            if run["run_id"] == run_id:
                return run
    return None


# --- isolation and roles --------------------------------------------------------------------------------


def test_every_route_answers_404_for_another_tenant_s_run(head: HeadProcess, admin: LatticeClient):
    alice, bob = make_key(admin, "alice"), make_key(admin, "bob")
    with as_tenant(head, alice) as a:
        wf = fan_out(a, nap, 1, "alices")
        run_id = wf.run()
        wf.get_results(run_id, timeout=60)
        workflow_id = wf.register()
        a._send(endpoints.Call("POST", "/api/v1/checkpoints", json={
            "thread_id": "secret-thread", "checkpoint_id": "c1", "checkpoint": {"type": "json", "data": "e30="},
            "metadata": {"type": "json", "data": "e30="}}))
    api = f"{head.url}/api/v1"
    routes = [("GET", f"/runs/{run_id}"), ("GET", f"/runs/{run_id}/tasks"), ("GET", f"/runs/{run_id}/results"),
              ("GET", f"/runs/{run_id}/events"), ("GET", f"/runs/{run_id}/logs"),
              ("POST", f"/runs/{run_id}/events"), ("POST", f"/runs/{run_id}/cancel"),
              ("GET", f"/workflows/{workflow_id}"), ("POST", f"/workflows/{workflow_id}/runs")]
    with httpx.Client(headers={"authorization": f"Bearer {bob}"}, timeout=30) as http:
        for method, path in routes:
            answer = http.request(method, api + path, json={} if method == "POST" else None)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json()["error"]["type"] == "not_found"
        assert run_id not in {r["run_id"] for r in http.get(f"{api}/runs").json()["runs"]}
        assert http.get(f"{api}/checkpoints").json()["checkpoints"] == []
        assert http.get(f"{api}/checkpoints", params={"thread_id": "secret-thread"}).json()["checkpoints"] == []
        assert http.get(f"{api}/cluster/join").status_code == 403  # Ray's token would bypass every tenant
        assert http.get(f"{api}/keys").status_code == 403
    with pytest.raises(ConnectionClosed) as closed:
        with connect(f"ws://127.0.0.1:{head.port}/api/v1/runs/{run_id}/events/ws?token={bob}") as ws:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4404
    # the owner and the admin still see it all
    with as_tenant(head, alice) as a:
        assert a.get_run(run_id)["state"] == "succeeded"
        [saved] = a._send(endpoints.Call("GET", "/api/v1/checkpoints"))["checkpoints"]
        assert saved["thread_id"] == "secret-thread"
    assert admin.get_run(run_id)["state"] == "succeeded"


def test_a_read_key_cannot_submit(head: HeadProcess, admin: LatticeClient):
    reader = make_key(admin, "reader", role="read")
    with as_tenant(head, reader) as r:
        wf = fan_out(r, nap, 1, "nope")
        with pytest.raises(Exception) as refused:
            wf.run()
        assert getattr(refused.value, "status", None) == 403
        assert r.list_runs() == []  # but it may read (its own, which is nothing)
        assert r.nodes()


def test_a_revoked_key_is_refused_at_once_also_on_an_open_websocket(head: HeadProcess, admin: LatticeClient):
    key = make_key(admin, "shortlived")
    with as_tenant(head, key) as c:
        wf = fan_out(c, forever, 1, "long")
        run_id = wf.run()
        closed: dict[str, Any] = {}

        def follow() -> None:
            try:
                with connect(f"ws://127.0.0.1:{head.port}/api/v1/runs/{run_id}/events/ws?token={key}") as ws:
                    closed["first"] = ws.recv(timeout=10)
                    while True:
                        ws.recv(timeout=30)
            except ConnectionClosed as exc:
                closed["code"], closed["at"] = exc.rcvd.code if exc.rcvd else None, time.time()

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        deadline = time.time() + 10
        while "first" not in closed and time.time() < deadline:
            time.sleep(0.05)
        assert "first" in closed, "the WebSocket never delivered the run's first event"
        revoked_at = time.time()
        admin._send(endpoints.revoke_key("shortlived"))
        reader.join(10)
        assert closed.get("code") == 4401 and closed["at"] - revoked_at < 5
        with pytest.raises(Exception) as refused:
            c.get_run(run_id)
        assert getattr(refused.value, "status", None) == 401
    admin.cancel(run_id)
    listed = {k["policy"]["name"]: k for k in admin._send(endpoints.list_keys())}
    assert listed["shortlived"]["revoked_at"] is not None and "key" not in listed["shortlived"]


# --- quotas ---------------------------------------------------------------------------------------------


def test_a_cpu_quota_holds_even_alone_on_the_cluster(head: HeadProcess, admin: LatticeClient):
    key = make_key(admin, "onecore", max_cpu=1)
    with as_tenant(head, key) as c:
        wf = fan_out(c, work, 6, "capped")
        run_id = wf.run()
        seen_reason = None
        deadline = time.time() + 120
        while time.time() < deadline and c.get_run(run_id)["state"] == "running":
            queue = run_queue(c, run_id)
            if queue and queue["waiting"]:
                seen_reason = seen_reason or (queue["waiting"], queue["waiting_detail"])
            time.sleep(0.1)
        wf.get_results(run_id, timeout=60)
        assert max_overlap(intervals(c, run_id)) == 1
        assert seen_reason is not None and seen_reason[0] == "quota" and "max_cpu" in seen_reason[1]
        waits = [e for e in c._send(endpoints.Call("GET", f"/api/v1/runs/{run_id}/events"))["events"]
                 if e["type"] == "run_waiting"]
        assert waits and waits[0]["data"]["reason"] == "quota"


def test_max_running_runs_makes_the_third_run_wait_visibly(head: HeadProcess, admin: LatticeClient):
    key = make_key(admin, "tworuns", max_running_runs=2)
    with as_tenant(head, key) as c:
        wf = fan_out(c, long_work, 1, "slow")
        first, second = wf.run(), wf.run()
        time.sleep(0.3)
        third = wf.run()
        time.sleep(0.5)
        queue = run_queue(c, third)
        assert queue is not None and not queue["admitted"]
        assert queue["waiting"] == "quota" and "max_running_runs" in queue["waiting_detail"]
        for run_id in (first, second, third):
            wf.get_results(run_id, timeout=60)
        [(started, _)] = intervals(c, third)
        ends = sorted(end for run_id in (first, second) for _, end in intervals(c, run_id))
        assert started >= ends[0] - 0.05, "the third run started before one of the first two ended"
        events = c._send(endpoints.Call("GET", f"/api/v1/runs/{third}/events"))["events"]
        assert any(e["type"] == "run_waiting" and "max_running_runs" in e["data"]["detail"] for e in events)


# --- fair share between tenants -------------------------------------------------------------------------


def test_two_tenants_share_the_cores(head: HeadProcess, admin: LatticeClient):
    """Tenant A floods 200 tasks, B submits 20: while both have work, B gets about half the cores."""
    a_key, b_key = make_key(admin, "flooder"), make_key(admin, "modest")
    with as_tenant(head, a_key) as a, as_tenant(head, b_key) as b:
        flood = fan_out(a, nap, 200, "flood")
        small = fan_out(b, nap, 20, "modest")
        flood.register()
        small.register()
        a_run = flood.run()
        time.sleep(0.5)
        b_run = small.run()
        small.get_results(b_run, timeout=120)
        flood.get_results(a_run, timeout=300)
        a_spans, b_spans = intervals(a, a_run), intervals(b, b_run)
    start = min(s for s, _ in b_spans)
    end = max(e for _, e in b_spans)
    assert end < max(e for _, e in a_spans), "the flood should outlast the small tenant's run"

    def busy(spans: list[tuple[float, float]]) -> float:
        return sum(max(0.0, min(e, end) - max(s, start)) for s, e in spans)

    share = busy(b_spans) / (busy(a_spans) + busy(b_spans))
    assert 0.3 <= share <= 0.7, f"tenant B held {share:.0%} of the busy core time while both had work"


# --- the CLI against the real head ----------------------------------------------------------------------


def test_lattice_keys_and_status_against_the_head(head: HeadProcess, admin: LatticeClient):
    from click.testing import CliRunner

    import lattice.cli.main as cli_main

    runner = CliRunner()
    where = ["--url", head.url, "--token", head.token]
    made = runner.invoke(cli_main.cli, ["keys", "create", "cli-user", "--role", "read", "--max-cpu", "2",
                                        "--max-running-runs", "1", "--weight", "3", *where])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("lk_")
    with as_tenant(head, secret) as c:
        assert c.list_runs() == []
    listed = runner.invoke(cli_main.cli, ["keys", "list", "--json", *where])
    [row] = [r for r in json.loads(listed.stdout) if r["policy"]["name"] == "cli-user"]
    assert row["policy"]["role"] == "read" and row["policy"]["weight"] == 3
    assert row["policy"]["quota"]["max_cpu"] == 2 and row["policy"]["quota"]["max_running_runs"] == 1
    again = runner.invoke(cli_main.cli, ["keys", "create", "cli-user", *where])
    assert again.exit_code == 1 and "exists" in again.output and "Traceback" not in again.output
    refused = runner.invoke(cli_main.cli, ["keys", "list", "--url", head.url, "--token", secret])
    assert refused.exit_code == 1 and "not an admin key" in refused.output
    assert runner.invoke(cli_main.cli, ["keys", "revoke", "cli-user", *where]).exit_code == 0
    status = runner.invoke(cli_main.cli, ["status", "--json", *where])
    assert status.exit_code == 0, status.output
    queues = json.loads(status.stdout)["queues"]
    assert queues["scheduling"] == "fair" and any(t["tenant"] == "cli-user" for t in queues["tenants"])
    table = runner.invoke(cli_main.cli, ["status", *where])
    assert table.exit_code == 0 and "fair scheduling" in table.output
