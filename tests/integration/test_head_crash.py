"""A head SIGKILLed (its server process only) in the middle of a fan-out/fan-in run, started again on the
same data dir: it adopts the embedded Ray the killed head left running (never a second one, never a leak),
the run succeeds, tasks that had finished are not run again, the fan-in runs exactly once and attempt ids
stay unique. The client here polls over plain HTTP (the SDK's own retrying is tested with it elsewhere)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx

from lattice import LatticeClient, task
from lattice.utils.procs import group_exists
from tests.headproc import HeadProcess


def _get(head: HeadProcess, path: str) -> dict:
    return httpx.get(f"{head.url}/api/v1{path}", headers={"Authorization": f"Bearer {head.token}"},
                     timeout=10).json()


def test_a_killed_head_is_restarted_and_the_run_continues_without_leaking_ray(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()

    @task(inputs=["i"], outputs=["v"], cpu=1, retries=0)
    def leaf(params):
        import time

        time.sleep(0.5 if params["i"] < 3 else 6.0)
        with open(f"{marks}/leaf-{params['i']}", "a") as fh:
            fh.write("x")
        return {"v": params["i"]}

    @task(inputs=[f"v{i}" for i in range(6)], outputs=["total"], cpu=0)
    def fan_in(params):
        with open(f"{marks}/fan_in", "a") as fh:
            fh.write("x")
        return {"total": sum(params[f"v{i}"] for i in range(6))}

    data_dir = tmp_path / "head"
    head = HeadProcess(data_dir, extra_args=["--num-cpus", "2"]).start()
    restarted: HeadProcess | None = None
    try:
        with LatticeClient(head.url, token=head.token, progress=False) as client:
            wf = client.create_workflow()
            leaves = [wf.add_task(leaf, name=f"leaf{i}", inputs={"i": i}) for i in range(6)]
            wf.add_task(fan_in, name="fan_in", inputs={f"v{i}": leaves[i].outputs["v"] for i in range(6)})
            run_id = wf.run()
        deadline = time.monotonic() + 120
        while len(list(marks.glob("leaf-*"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        done_before = {p.name for p in marks.glob("leaf-*")}
        assert len(done_before) >= 3
        time.sleep(1.0)  # let the head commit what finished
        info = json.loads((data_dir / "head.json").read_text())
        ray_pgid = info["ray_pgid"]
        assert head.proc is not None
        os.kill(head.proc.pid, signal.SIGKILL)  # the server process only: its Ray survives
        head.proc.wait(10)
        head.proc = None
        assert group_exists(ray_pgid), "the killed head's Ray is expected to survive its head"

        restarted = HeadProcess(data_dir, port=head.port, extra_args=["--num-cpus", "2"]).start()
        assert json.loads((data_dir / "head.json").read_text())["ray_pgid"] == ray_pgid  # adopted, not a second
        deadline = time.monotonic() + 180
        row = _get(restarted, f"/runs/{run_id}")
        while row.get("state") not in ("succeeded", "failed") and time.monotonic() < deadline:
            time.sleep(0.5)
            row = _get(restarted, f"/runs/{run_id}")
        assert row["state"] == "succeeded", row
        # what was in flight when the head died counts as a node loss (not a retry: retries=0), shown per task
        losses = {t["name"]: t["node_losses"] for t in _get(restarted, f"/runs/{run_id}")["tasks"]}
        assert all(losses[f"leaf{n.removeprefix('leaf-')}"] == 0 for n in done_before), losses
        assert sum(losses.values()) >= 1, losses
        for name in done_before:  # finished before the kill: their outputs came from the store
            assert (marks / name).read_text() == "x", name
        assert (marks / "fan_in").read_text() == "x"  # the fan-in ran exactly once
        events = _get(restarted, f"/runs/{run_id}/events")["events"]
        assert any(e["type"] == "run_resumed" for e in events)
        started = [e["data"]["attempt_id"] for e in events if e["type"] == "task_started"]
        assert len(started) == len(set(started)), "attempt ids stay unique across the restart"
    finally:
        for h in (restarted, head):
            if h is not None:
                h.stop()
    deadline = time.monotonic() + 30
    while group_exists(ray_pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_exists(ray_pgid), "the adopted Ray was stopped with the head that adopted it"
