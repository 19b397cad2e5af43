"""Big runs on a real head and Ray: a run's results come back in pages and the SDK puts them together
whole; a head SIGKILLed while a big run's tasks are still being made ready (its id already answered)
resumes the run on restart and every task runs."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx

from lattice import LatticeClient
from lattice.core.store import Store
from tests.headproc import HeadProcess


def _spec(name: str, n: int) -> dict[str, Any]:
    """``n`` independent no-ops: every one is a sink, each with an output called ``result``."""
    return {"format": "lattice.workflow/v1", "name": name,
            "tasks": [{"name": f"l{i}", "builtin": "noop", "outputs": ["result"], "resources": {"cpu": 0}}
                      for i in range(n)]}


def _http(head: HeadProcess) -> httpx.Client:
    return httpx.Client(base_url=f"{head.url}/api/v1", headers={"Authorization": f"Bearer {head.token}"},
                        timeout=120)


def test_a_big_runs_results_come_back_paged_and_complete(head: HeadProcess, client: LatticeClient) -> None:
    n = 2_500
    workflow_id = client.submit_workflow(_spec("paged-results", n))
    run_id = client.start_run(workflow_id)
    outputs = client.get_results(run_id, timeout=600)  # the SDK asks 1,000 sinks a page
    assert sorted(outputs) == sorted(f"l{i}.result" for i in range(n))  # shared name: task.output, every page
    assert set(outputs.values()) == {None}
    with _http(head) as http:
        whole = http.get(f"/runs/{run_id}/results").json()  # no limit: one answer, as before paging
        pages, after = [], 0
        while after is not None:
            page = http.get(f"/runs/{run_id}/results", params={"limit": 1000, "after": after}).json()
            assert page["sinks"] == n and page["done"] is True
            pages.append(page)
            after = page["next_after"]
        assert [len(p["outputs"]) for p in pages] == [1000, 1000, 500]
        assert [p["next_after"] for p in pages] == [1000, 2000, None]
        merged = {k: v for p in pages for k, v in p["outputs"].items()}
        assert merged == whole["outputs"] and whole["next_after"] is None
        bad = http.get(f"/runs/{run_id}/results", params={"limit": 0})
        assert bad.status_code == 422 and "limit" in bad.text


def test_a_head_killed_while_a_big_run_starts_resumes_it_on_restart(tmp_path: Path) -> None:
    n = 20_000
    data_dir = tmp_path / "head"
    head = HeadProcess(data_dir, extra_args=["--num-cpus", "2"]).start()
    restarted: HeadProcess | None = None
    try:
        with _http(head) as http:
            workflow_id = http.post("/workflows", json=_spec("killed-while-starting", n)).json()["workflow_id"]
            answer = http.post(f"/workflows/{workflow_id}/runs", json={})
            assert answer.status_code == 201, answer.text
            run_id = answer.json()["run_id"]
        assert head.proc is not None
        os.kill(head.proc.pid, signal.SIGKILL)  # at once: its roots are still being made ready, a slice a turn
        head.proc.wait(10)
        head.proc = None

        store = Store(f"sqlite:///{data_dir / 'lattice.db'}", auto_upgrade=False)
        try:
            stored = store.get_tasks(run_id)
        finally:
            store.close()
        assert len(stored) == n  # every task row was in the run's first commit
        never_started = sum(1 for t in stored if t["state"] == "pending" and not t["attempt"])
        assert never_started > 0, "the kill came after the whole start; nothing here tests resuming mid-way"

        restarted = HeadProcess(data_dir, port=head.port, extra_args=["--num-cpus", "2"]).start()
        with LatticeClient(restarted.url, token=restarted.token, progress=False, timeout=120) as client:
            outputs = client.get_results(run_id, timeout=900)
            assert len(outputs) == n
            run = client.get_run(run_id)
        assert run["state"] == "succeeded"
        assert {t["state"] for t in run["tasks"]} == {"succeeded"}
        store = Store(f"sqlite:///{data_dir / 'lattice.db'}", auto_upgrade=False)
        try:
            types = [e["type"] for e in store.get_events(run_id, 0, 10**7)]
        finally:
            store.close()
        assert types.count("run_started") == 1 and types.count("run_resumed") == 1
    finally:
        if restarted is not None:
            restarted.stop()
        if head.proc is not None:
            head.stop()
