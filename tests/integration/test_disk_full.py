"""The store refuses writes: its SQLite file lives on a small tmpfs that the test fills (root only).

The head answers 503 with a JSON error naming the store (never a 500 calling it a bug), loses nothing it
had committed, and recovers by itself when space returns: a run in flight during the outage finishes, its
owed writes committed in order; new runs start again."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from lattice import LatticeClient, task
from tests.headproc import HeadProcess

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@task(outputs=["x"], cpu=1)
def slow(params):
    import time

    time.sleep(6.0)
    return {"x": 7}


def _fill(mount: Path) -> Path:
    filler = mount / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)  # until ENOSPC
    return filler


def test_a_full_disk_answers_503_and_the_head_recovers_by_itself(tmp_path: Path) -> None:
    mount = tmp_path / "store"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    head: HeadProcess | None = None
    try:
        head = HeadProcess(tmp_path / "head", extra_args=["--num-cpus", "1", "--store-url",
                                                          f"sqlite:///{mount}/lattice.db"]).start()
        auth = {"Authorization": f"Bearer {head.token}"}
        with LatticeClient(head.url, token=head.token, progress=False) as client:
            wf = client.create_workflow()
            wf.add_task(slow, name="slow")
            workflow_id = wf.register()
            in_flight = wf.run()
            time.sleep(1.0)
            filler = _fill(mount)
            refused = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the next run the store cannot take
                answer = httpx.post(f"{head.url}/api/v1/workflows/{workflow_id}/runs", json={}, headers=auth,
                                    timeout=30)
                if answer.status_code == 503:
                    refused = answer
                    break
                assert answer.status_code == 201, answer.text
                time.sleep(0.2)
            assert refused is not None, "the store never refused a write on a full tmpfs"
            body = refused.json()["error"]
            assert body["type"] == "store_unavailable" and "bug" not in (body.get("hint") or "")
            assert httpx.get(f"{head.url}/api/v1/runs/{in_flight}", headers=auth, timeout=10).status_code == 200
            filler.unlink()  # space returns: the head commits what it owes, by itself
            assert wf.get_results(in_flight, timeout=120)["x"] == 7
            after = client.create_workflow()
            after.add_task(slow, name="slow")
            run_id = after.run()
            assert after.get_results(run_id, timeout=120)["x"] == 7
    finally:
        if head is not None:
            head.stop()
        subprocess.run(["umount", "-l", str(mount)], check=False)
