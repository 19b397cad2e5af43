"""Bring your own Ray: ``lattice start --head --ray-address ADDRESS`` runs tasks on a Ray cluster the user
started, and stopping the head leaves that cluster running (it never stops what it did not start). The Ray
here is started by the test on a loopback port with its own temp dir and killed by its PID at the end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lattice import LatticeClient, task
from lattice.utils.net import free_port, wait_for_port
from lattice.utils.procs import group_exists
from tests.headproc import HeadProcess


@task(outputs=["node"], cpu=1)
def where(params):
    import ray

    return {"node": ray.get_runtime_context().get_node_id()}


@pytest.mark.parametrize("auth", ["token", "none"])
def test_the_head_uses_an_existing_ray_and_never_stops_it(tmp_path: Path, auth: str) -> None:
    port = free_port()
    temp = Path("/tmp") / f"lattice-own-ray-{os.getpid()}"
    # The user's Ray as `ray start --head` makes it, in a HOME of the test's own (not the machine's): with
    # token auth when ~/.ray/auth_token exists (`ray get-auth-token --generate`), where the head must find
    # it by itself; without auth when it does not.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir()
    if auth == "token":
        subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "get-auth-token", "--generate"], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        assert (tmp_path / "home" / ".ray" / "auth_token").is_file()
    ray = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                            f"--port={port}", "--node-ip-address=127.0.0.1", f"--temp-dir={temp}", "--num-cpus=1",
                            "--include-dashboard=false", "--disable-usage-stats", "--object-store-memory=100000000"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    head: HeadProcess | None = None
    try:
        assert wait_for_port("127.0.0.1", port, 90), "the user's Ray did not start"
        head = HeadProcess(tmp_path / "head", extra_args=["--ray-address", f"127.0.0.1:{port}"], env=env).start()
        with LatticeClient(head.url, token=head.token, progress=False) as client:
            wf = client.create_workflow()
            wf.add_task(where, name="where")
            run_id = wf.run()
            assert wf.get_results(run_id, timeout=120)["node"]
            assert len(client.nodes()) == 1  # the user's one-node cluster, no embedded Ray besides it
        head.stop()
        head = None
        time.sleep(1.0)
        assert ray.poll() is None and group_exists(ray.pid), "the head stopped a Ray it did not start"
        assert wait_for_port("127.0.0.1", port, 5)
    finally:
        if head is not None:
            head.stop()
        try:
            os.killpg(ray.pid, signal.SIGKILL)  # by PID, never `ray stop`
        except ProcessLookupError:
            pass
        ray.wait(10)
        shutil.rmtree(temp, ignore_errors=True)
