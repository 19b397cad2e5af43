"""Restarts, shutdown and the CLI: durable runs, fast SIGTERM, stop only what this head started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import psutil
import pytest

from lattice import LatticeClient, task
from lattice.utils.net import free_port


@task(inputs=["x"], outputs=["y"])
def square(params):
    return {"y": params["x"] ** 2}


@task(outputs=["x"], cpu=0)
def slow(params):
    time.sleep(120)
    return {"x": 1}


def test_restart_keeps_finished_runs_results_and_events(head_factory, tmp_path):
    data_dir = tmp_path / "durable"
    first = head_factory(data_dir=data_dir, extra_args=["--num-cpus", "1"])
    with LatticeClient(first.url, token=first.token, progress=False) as client:
        wf = client.create_workflow()
        wf.add_task(square, inputs={"x": 7})
        run_id = wf.run()
        assert wf.get_results(run_id) == {"y": 49}
        events = client.get_events(run_id)
    first.stop()

    second = head_factory(data_dir=data_dir, extra_args=["--num-cpus", "1"])
    with LatticeClient(second.url, token=second.token, progress=False) as client:
        assert client.get_results(run_id) == {"y": 49}
        assert client.get_run(run_id)["state"] == "succeeded"
        assert client.get_events(run_id) == events
        assert client.get_task_results(run_id)["square"].outputs == {"y": 49}


def test_sigterm_stops_the_head_quickly_while_a_client_waits(head_factory, tmp_path):
    head = head_factory(data_dir=tmp_path / "sig", extra_args=["--num-cpus", "1"])
    ray_pids = _ray_pids(head)
    assert ray_pids
    # a short deadline: the client rides out an unavailable head for unavailable_timeout s, then raises
    client = LatticeClient(head.url, token=head.token, progress=False, unavailable_timeout=2)
    wf = client.create_workflow()
    wf.add_task(slow)
    run_id = wf.run()
    outcome: list[BaseException | None] = []

    def wait() -> None:
        try:
            client.get_results(run_id, timeout=60)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the head going away is the expected outcome
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1)
    took = head.stop()
    waiter.join(60)
    assert took < 60, f"the head took {took:.1f} s to stop"  # a hang guard; what "quickly" means is below
    # the waiting long-poll was answered 503 at once: uvicorn did not have to cancel it at its deadline
    assert "graceful shutdown exceeded" not in head.log_path.read_text()
    assert outcome and outcome[0] is not None  # the waiting client got an error, not a hang
    time.sleep(1)
    assert not [p for p in ray_pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


def test_cli_start_status_stop_two_heads_side_by_side(tmp_path, head):
    env = {**os.environ, "LATTICE_HOME": str(tmp_path / "home")}
    lattice = [sys.executable, "-m", "lattice.cli.main"]
    dirs = [tmp_path / "a", tmp_path / "b"]
    ports = [free_port(), free_port()]
    try:
        for data_dir, port in zip(dirs, ports, strict=True):
            out = subprocess.run([*lattice, "start", "--head", "--port", str(port), "--data-dir", str(data_dir),
                                  "--num-cpus", "1", "--object-store-mb", "128"],
                                 env=env, capture_output=True, text=True, timeout=180)
            assert out.returncode == 0, out.stderr
            assert f"http://127.0.0.1:{port}" in out.stderr and str(data_dir / "token") in out.stderr
        infos = [json.loads((d / "head.json").read_text()) for d in dirs]
        status = subprocess.run([*lattice, "status", "--data-dir", str(dirs[0]), "--json"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["resources"]["cpu"] == 1

        stop = subprocess.run([*lattice, "stop", "--data-dir", str(dirs[0])], env=env, capture_output=True,
                              text=True, timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert not _running(infos[0]["pid"]) and not _group_alive(infos[0]["ray_pgid"])
        assert _running(infos[1]["pid"]) and _group_alive(infos[1]["ray_pgid"])  # the other head is untouched
        with LatticeClient(head.url, token=head.token, progress=False) as client:  # so is the test head
            assert client.health()["status"] == "ok"
    finally:
        for data_dir in dirs:
            subprocess.run([*lattice, "stop", "--data-dir", str(data_dir)], env=env, capture_output=True, timeout=60)
    assert not _running(infos[1]["pid"]) and not _group_alive(infos[1]["ray_pgid"])


def _ray_pids(head) -> list[int]:
    info = json.loads((head.data_dir / "head.json").read_text())
    return [p.pid for p in psutil.process_iter() if _pgid(p.pid) == info["ray_pgid"]]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _running(pid: int) -> bool:
    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def _group_alive(pgid: int) -> bool:
    return any(_pgid(p.pid) == pgid and _running(p.pid) for p in psutil.process_iter())


pytestmark = pytest.mark.timeout(400)
