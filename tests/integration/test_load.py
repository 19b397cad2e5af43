"""Load: 20 client threads x 10 workflows x 10 tasks at once against one real head. Every run completes,
no event is lost (sequence numbers contiguous per run, starting at 1) and the head's memory stays bounded
(generous: the machine is shared; the numbers belong to bench/bench_distributed.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import psutil

from lattice import LatticeClient, task
from tests.headproc import HeadProcess

THREADS, WORKFLOWS, TASKS = 20, 10, 10
#: the head's resident memory may grow by at most this much over the load (it was ~100-200 MB in practice)
MAX_GROWTH_MB = 1500


@task(inputs=["i"], outputs=["v"], cpu=0)
def step(params):
    return {"v": params["i"]}


def test_twenty_threads_of_workflows_all_complete_with_contiguous_events(tmp_path: Path) -> None:
    head = HeadProcess(tmp_path / "head", extra_args=["--num-cpus", "2"]).start()
    try:
        assert head.proc is not None
        proc = psutil.Process(head.proc.pid)
        rss_before = proc.memory_info().rss
        run_ids: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def client_thread(n: int) -> None:
            try:
                with LatticeClient(head.url, token=head.token, progress=False, timeout=120) as client:
                    mine = []
                    for w in range(WORKFLOWS):
                        wf = client.create_workflow(name=f"load-{n}-{w}")
                        for i in range(TASKS):
                            wf.add_task(step, name=f"s{i}", inputs={"i": i})
                        mine.append((wf, wf.run()))
                    for wf, run_id in mine:
                        wf.get_results(run_id, timeout=600)
                    with lock:
                        run_ids.extend(run_id for _, run_id in mine)
            except BaseException as exc:  # noqa: BLE001 - reported below with the thread's number
                errors.append(exc)

        threads = [threading.Thread(target=client_thread, args=(n,)) for n in range(THREADS)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(900)
        took = time.monotonic() - started
        assert not errors, errors[:3]
        assert len(run_ids) == THREADS * WORKFLOWS
        auth = {"Authorization": f"Bearer {head.token}"}
        for run_id in run_ids:
            row = httpx.get(f"{head.url}/api/v1/runs/{run_id}", headers=auth, timeout=30).json()
            assert row["state"] == "succeeded", row
            seqs = [e["seq"] for e in httpx.get(f"{head.url}/api/v1/runs/{run_id}/events", headers=auth,
                                                timeout=30).json()["events"]]
            assert seqs == list(range(1, len(seqs) + 1)), run_id
        growth_mb = (proc.memory_info().rss - rss_before) / 1e6
        assert growth_mb < MAX_GROWTH_MB, f"the head grew by {growth_mb:.0f} MB"
        print(f"{THREADS * WORKFLOWS * TASKS} tasks in {took:.1f} s; head grew {growth_mb:.0f} MB")
    finally:
        head.stop()
