"""Distributed benchmark: what crossing Ray nodes costs, and how fast Lattice reacts to nodes and heads.

All nodes run on this machine, each a separate Ray node on its own loopback address (head 127.0.0.2,
workers 127.0.0.3, 127.0.0.4 through ``lattice start --worker --node-ip``), with the same total cores:

  (a) throughput of a FANOUT-task fan-out of no-ops with 1, 2 and 3 Ray nodes (3 cores in all)
  (b) time for a new worker to become schedulable (``lattice start --worker`` until the head lists it alive)
  (c) time from a worker's SIGKILL to its tasks running elsewhere (the first ``task_started`` of a moved task)
  (d) time from a head restart (SIGKILL, then start on the same data dir) to the first resumed task
  (e) load: THREADS client threads x 10 workflows x 10 tasks at once: throughput, p99 submit-to-result

Writes docs/benchmarks/distributed.json and distributed.md.
Usage: python bench/bench_distributed.py [--fanout 5000] [--threads 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from headproc import HeadProcess  # noqa: E402

from lattice import LatticeClient, task  # noqa: E402

LATTICE = [sys.executable, "-m", "lattice.cli.main"]


class LoopbackHead(HeadProcess):
    @property
    def url(self) -> str:
        return f"http://127.0.0.2:{self.port}"


@task(outputs=["result"])
def noop(params):
    return {"result": None}


@task(outputs=["result"])
def hold(params):
    import time

    time.sleep(3.0)
    return {"result": None}


@task(inputs=["i"], outputs=["v"], cpu=0)
def step(params):
    return {"v": params["i"]}


def start_head(root: Path, cpus: int, data: str = "head") -> LoopbackHead:
    return LoopbackHead(root / data, extra_args=["--host", "127.0.0.2", "--num-cpus", str(cpus)]).start()


def join(head: LoopbackHead, root: Path, ip: str, cpus: int) -> tuple[float, int]:
    """Start a worker; (seconds until the head lists it alive, its Ray process group)."""
    started = time.monotonic()
    out = subprocess.run([*LATTICE, "start", "--worker", "--addr", head.url, "--token", head.token,
                          "--data-dir", str(root / ip), "--node-ip", ip, "--num-cpus", str(cpus),
                          "--object-store-mb", "128"], capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    took = time.monotonic() - started
    return took, int(json.loads((root / ip / "worker.json").read_text())["pid"])


def waited(deadline: float, what: str) -> None:
    """Sleep a little, or give up loudly: a benchmark must never spin forever."""
    if time.monotonic() > deadline:
        raise RuntimeError(f"gave up waiting for {what}")
    time.sleep(0.1)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def events(head: HeadProcess, run_id: str) -> list[dict[str, Any]]:
    return httpx.get(f"{head.url}/api/v1/runs/{run_id}/events", params={"limit": 10000}, timeout=30,
                     headers={"Authorization": f"Bearer {head.token}"}).json()["events"]


def fanout_throughput(root: Path, nodes: int, n: int) -> float:
    cores = {1: [3], 2: [1, 2], 3: [1, 1, 1]}[nodes]
    head = start_head(root / f"fan{nodes}", cores[0])
    groups: list[int] = []
    try:
        for i, c in enumerate(cores[1:]):
            groups.append(join(head, root / f"fan{nodes}", f"127.0.0.{3 + i}", c)[1])
        with LatticeClient(head.url, token=head.token, progress=False) as client:
            wf = client.create_workflow(f"fan{nodes}")
            for i in range(n):
                wf.add_task(noop, name=f"t{i}")
            wf.register()
            started = time.monotonic()
            wf.get_results(wf.run(), timeout=1800)
            return n / (time.monotonic() - started)
    finally:
        for g in groups:
            kill_group(g)
        head.stop()


def node_death_and_head_restart(root: Path) -> dict[str, float]:
    head = start_head(root / "faults", 1)
    groups: list[int] = []
    out: dict[str, float] = {}
    try:
        out["schedulable_s"], pgid = join(head, root / "faults", "127.0.0.3", 2)
        groups.append(pgid)
        a_id = next(n for n in httpx.get(f"{head.url}/api/v1/cluster/nodes", timeout=10, headers={
            "Authorization": f"Bearer {head.token}"}).json()["nodes"] if n["address"] == "127.0.0.3")["node_id"]
        with LatticeClient(head.url, token=head.token, progress=False) as client:
            wf = client.create_workflow("faults")
            for i in range(6):
                wf.add_task(hold, name=f"h{i}")
            run_id = wf.run()
            deadline = time.monotonic() + 120
            while not any(e["type"] == "task_started" and e["data"].get("node_id") == a_id
                          for e in events(head, run_id)):
                waited(deadline, "a task on the worker")
            killed = time.time()
            kill_group(pgid)
            deadline = time.monotonic() + 120
            while True:
                evs = events(head, run_id)
                lost = [e for e in evs if e["type"] == "node_lost"]
                if lost:
                    moved = set(lost[0]["data"]["tasks"])
                    again = [e for e in evs if e["type"] == "task_started" and e["task"] in moved
                             and e["ts"] > lost[0]["ts"]]
                    if again:
                        out["node_death_to_task_elsewhere_s"] = min(e["ts"] for e in again) - killed
                        out["node_death_to_node_lost_s"] = lost[0]["ts"] - killed
                        break
                waited(deadline, "the killed node's tasks to run elsewhere")
            wf.get_results(run_id, timeout=300)
            # head restart in the middle of a run
            wf2 = client.create_workflow("restart")
            for i in range(4):
                wf2.add_task(hold, name=f"r{i}")
            run2 = wf2.run()
            deadline = time.monotonic() + 120
            while not any(e["type"] == "task_started" for e in events(head, run2)):
                waited(deadline, "the run to start")
        assert head.proc is not None
        os.kill(head.proc.pid, signal.SIGKILL)
        head.proc.wait(10)
        head.proc = None
        restart = time.time()
        head = LoopbackHead(root / "faults" / "head", port=head.port,
                            extra_args=["--host", "127.0.0.2", "--num-cpus", "1"]).start()
        out["head_restart_to_answering_s"] = time.time() - restart
        deadline = time.monotonic() + 120
        while True:
            evs = events(head, run2)
            resumed = [e for e in evs if e["type"] == "run_resumed"]
            started = [e for e in evs if e["type"] == "task_started" and resumed and e["seq"] > resumed[0]["seq"]]
            if started:
                out["head_restart_to_first_resumed_task_s"] = started[0]["ts"] - restart
                break
            waited(deadline, "the first resumed task")
    finally:
        for g in groups:
            kill_group(g)
        head.stop()
    return out


def load(root: Path, threads: int) -> dict[str, float]:
    head = start_head(root / "load", 2)
    latencies: list[float] = []
    lock = threading.Lock()
    try:
        def client_thread(n: int) -> None:
            with LatticeClient(head.url, token=head.token, progress=False, timeout=120) as client:
                mine = []
                for w in range(10):
                    wf = client.create_workflow(f"load-{n}-{w}")
                    for i in range(10):
                        wf.add_task(step, name=f"s{i}", inputs={"i": i})
                    mine.append((wf, time.monotonic(), wf.run()))
                for wf, submitted, run_id in mine:
                    wf.get_results(run_id, timeout=900)
                    with lock:
                        latencies.append(time.monotonic() - submitted)

        workers = [threading.Thread(target=client_thread, args=(n,)) for n in range(threads)]
        started = time.monotonic()
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        took = time.monotonic() - started
        latencies.sort()
        return {"runs": len(latencies), "tasks_per_s": len(latencies) * 10 / took,
                "p50_submit_to_result_s": statistics.median(latencies),
                "p99_submit_to_result_s": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}
    finally:
        head.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fanout", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=20)
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores (shared, loaded)",
                               "fanout": args.fanout, "threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="lattice-bench-dist-") as tmp:
        root = Path(tmp)
        results["fanout_tasks_per_s"] = {str(n): round(fanout_throughput(root, n, args.fanout), 1) for n in (1, 2, 3)}
        results["faults"] = {k: round(v, 2) for k, v in node_death_and_head_restart(root).items()}
        results["load"] = {k: round(v, 3) for k, v in load(root, args.threads).items()}
    out = ROOT / "docs" / "benchmarks"
    (out / "distributed.json").write_text(json.dumps(results, indent=2) + "\n")
    fan = results["fanout_tasks_per_s"]
    faults, ld = results["faults"], results["load"]
    md = [
        "# Distributed benchmark", "",
        f"`python bench/bench_distributed.py --fanout {args.fanout} --threads {args.threads}` on {results['machine']}."
        " Every Ray node runs on this one machine (its own loopback address), so the numbers show the cost of"
        " crossing Ray nodes and the reaction times, not a network's. The machine was shared with other work.", "",
        f"## Fan-out of {args.fanout} no-op tasks, 3 cores in all", "",
        "| Ray nodes | tasks/s |", "|---|---|",
        *(f"| {n} | {fan[n]} |" for n in ("1", "2", "3")), "",
        "## Reaction times", "", "| what | seconds |", "|---|---|",
        *(f"| {k.replace('_s', '').replace('_', ' ')} | {v} |" for k, v in faults.items()), "",
        f"## Load: {args.threads} client threads x 10 workflows x 10 tasks", "",
        "| runs | tasks/s | p50 submit-to-result (s) | p99 submit-to-result (s) |", "|---|---|---|---|",
        f"| {ld['runs']:.0f} | {ld['tasks_per_s']} | {ld['p50_submit_to_result_s']} | {ld['p99_submit_to_result_s']} |",
        "",
    ]
    (out / "distributed.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
