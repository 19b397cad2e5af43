"""A second node joining through the CLI, and a run that survives its head being restarted."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from lattice import LatticeClient, task


@task(outputs=["node"], cpu=1)
def where(params):
    import time

    import ray

    time.sleep(1.0)
    return {"node": ray.get_runtime_context().get_node_id()}


def test_worker_node_joins_and_takes_tasks(head_factory, tmp_path):
    head = head_factory(extra_args=["--num-cpus", "1"])
    lattice = [sys.executable, "-m", "lattice.cli.main"]
    worker_dir = tmp_path / "worker"
    env = {**os.environ, "LATTICE_HOME": str(tmp_path / "nohome")}
    joined = subprocess.run([*lattice, "start", "--worker", "--addr", head.url, "--token", head.token,
                             "--data-dir", str(worker_dir), "--num-cpus", "1", "--node-ip", "127.0.0.2",
                             "--object-store-mb", "128"], env=env, capture_output=True, text=True, timeout=120)
    assert joined.returncode == 0, joined.stderr
    try:
        with LatticeClient(head.url, token=head.token, progress=False) as client:
            deadline = time.monotonic() + 60
            while len([n for n in client.nodes() if n["alive"]]) < 2 and time.monotonic() < deadline:
                time.sleep(1)
            nodes = [n for n in client.nodes() if n["alive"]]
            assert len(nodes) == 2, nodes
            assert client.resources()["cpu"] == 2
            wf = client.create_workflow()
            for i in range(4):
                wf.add_task(where, name=f"w{i}")
            run_id = wf.run()
            wf.get_results(run_id, timeout=120)
            used = {t.outputs["node"] for t in wf.get_task_results(run_id).values()}
            assert used == {n["node_id"] for n in nodes}
            assert {t.node_id for t in wf.get_task_results(run_id).values()} == used
    finally:
        stopped = subprocess.run([*lattice, "stop", "--data-dir", str(worker_dir)], env=env, capture_output=True,
                                 text=True, timeout=60)
    assert stopped.returncode == 0 and "stopped" in stopped.stderr


def test_unfinished_run_resumes_after_a_restart(head_factory, tmp_path):
    marker = tmp_path / "first-ran"

    @task(outputs=["x"])
    def first(params):
        with open(marker, "a") as fh:
            fh.write("x")
        return {"x": 20}

    @task(inputs=["x"], outputs=["y"], cpu=0)
    def second(params):
        import time

        time.sleep(4)
        return {"y": params["x"] + 1}

    data_dir = tmp_path / "resume"
    head = head_factory(data_dir=data_dir, extra_args=["--num-cpus", "1"])
    with LatticeClient(head.url, token=head.token, progress=False) as client:
        wf = client.create_workflow()
        a = wf.add_task(first)
        wf.add_task(second, inputs={"x": a.outputs["x"]})
        run_id = wf.run()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = {t["name"]: t["state"] for t in client.get_run(run_id)["tasks"]}
            if states["second"] == "running":
                break
            time.sleep(0.1)
        assert states == {"first": "succeeded", "second": "running"}
    head.stop()

    again = head_factory(data_dir=data_dir, extra_args=["--num-cpus", "1"])
    with LatticeClient(again.url, token=again.token, progress=False) as client:
        assert client.get_results(run_id, timeout=60) == {"y": 21}
        tasks = client.get_task_results(run_id)
        assert tasks["first"].attempt == 1 and tasks["second"].attempt == 2
        assert marker.read_text() == "x"  # the finished task was not run again
        assert "run_resumed" in [e["type"] for e in client.get_events(run_id)]


pytestmark = pytest.mark.timeout(300)
