"""Distributed benchmark: what crossing Ray nodes costs, and how fast Lattice reacts to nodes and heads.

All nodes run on this machine, each a separate Ray node on its own loopback address (head 127.0.0.2,
workers 127.0.0.3, 127.0.0.4 through ``lattice start --worker --node-ip``), with the same total cores:

  (a) throughput of a FANOUT-task fan-out of no-ops with 1, 2 and 3 Ray nodes (3 cores in all); the
      1-node cluster is the baseline the others are a ratio of
  (b) time for a new worker to become schedulable (``lattice start --worker`` until the head lists it alive)
  (c) time from a worker's SIGKILL to the head marking it dead, to the run's ``node_lost`` event, and to
      the first of its tasks running elsewhere (the first ``task_started`` of a moved task)
  (d) time from a head restart (SIGKILL, then start on the same data dir) to its answering and to the
      first resumed task
  (e) load: THREADS client threads x 10 workflows x 10 tasks at once: throughput, p50/p99 submit-to-result

Each is repeated REPEATS times; the tables show medians (and the spread). Every wait is bounded, and
every process the benchmark starts (heads, their embedded Ray, workers' Ray nodes) is stopped by its PID or
process group in a ``finally`` -- also on Ctrl-C, SIGTERM, SIGHUP and errors. Never ``ray stop``: that
would kill every Ray on the machine. Only a SIGKILL of the benchmark itself can leak what it started.

Writes docs/benchmarks/distributed.json and distributed.md.
Usage: python bench/bench_distributed.py [--fanout 5000] [--threads 20] [--repeats 3]
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from headproc import HeadProcess  # noqa: E402

from lattice import LatticeClient, task  # noqa: E402
from lattice.utils.procs import group_is_ours  # noqa: E402

LATTICE = [sys.executable, "-m", "lattice.cli.main"]
#: no single wait in the benchmark may take longer than this
WAIT_S = 180.0


class LoopbackHead(HeadProcess):
    @property
    def url(self) -> str:
        return f"http://127.0.0.2:{self.port}"


@task(outputs=["result"])
def noop(params):
    return {"result": None}


@task(inputs=["s"], outputs=["result"])
def hold(params):
    import time

    time.sleep(params["s"])
    return {"result": None}


@task(inputs=["i"], outputs=["v"], cpu=0)
def step(params):
    return {"v": params["i"]}


@dataclass
class Reaper:
    """Everything the benchmark started, so that one ``finally`` stops all of it.

    Heads are stopped by their PID (SIGTERM, then their group is SIGKILLed); the Ray groups that heads
    and workers record (``head.json``'s ``ray_pgid``, ``worker.json``'s ``pid``) are remembered as soon as
    they exist -- a SIGKILLed head's Ray must not leak if its successor never comes up -- and killed at
    the end only while ``group_is_ours`` still says the group is the one recorded (a reused number is left).
    """

    heads: list[HeadProcess] = field(default_factory=list)
    worker_dirs: list[Path] = field(default_factory=list)
    ray_groups: dict[int, float | None] = field(default_factory=dict)

    def head(self, data_dir: Path, cpus: int, port: int | None = None) -> LoopbackHead:
        head = LoopbackHead(data_dir, extra_args=["--host", "127.0.0.2", "--num-cpus", str(cpus)])
        if port is not None:
            head.port = port
        self.heads.append(head)
        head.start(timeout=WAIT_S)
        self.note_head_ray(head)
        return head

    def note_head_ray(self, head: HeadProcess) -> None:
        info = _read_json(head.data_dir / "head.json")
        if isinstance(info.get("ray_pgid"), int):
            self.ray_groups[info["ray_pgid"]] = info.get("ray_create_time")

    def join(self, head: LoopbackHead, data_dir: Path, ip: str, cpus: int) -> float:
        """Start a worker; seconds until ``lattice start --worker`` saw the head list it alive."""
        self.worker_dirs.append(data_dir)
        started = time.monotonic()
        try:
            out = subprocess.run([*LATTICE, "start", "--worker", "--addr", head.url, "--token", head.token,
                                  "--data-dir", str(data_dir), "--node-ip", ip, "--num-cpus", str(cpus),
                                  "--object-store-mb", "128"], capture_output=True, text=True, timeout=WAIT_S)
        finally:
            self.note_worker_ray(data_dir)
        if out.returncode != 0:
            raise RuntimeError(f"worker {ip} did not join: {out.stdout}{out.stderr}")
        return time.monotonic() - started

    def note_worker_ray(self, data_dir: Path) -> None:
        info = _read_json(data_dir / "worker.json")
        if isinstance(info.get("pid"), int):
            self.ray_groups[info["pid"]] = info.get("create_time")

    def worker_group(self, data_dir: Path) -> int:
        return int(_read_json(data_dir / "worker.json")["pid"])

    def stop_head(self, head: HeadProcess) -> None:
        self.note_head_ray(head)
        head.stop()
        if head in self.heads:
            self.heads.remove(head)

    def stop_all(self) -> None:
        for data_dir in self.worker_dirs:
            self.note_worker_ray(data_dir)
        for head in list(self.heads):
            try:
                self.stop_head(head)
            except Exception as exc:  # noqa: BLE001 -- go on stopping the rest, say what failed
                print(f"stopping the head in {head.data_dir} failed: {exc}", file=sys.stderr)
        for pgid, created in self.ray_groups.items():
            if group_is_ours(pgid, created):
                _kill_group(pgid)
        self.ray_groups.clear()
        self.worker_dirs.clear()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_S, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; give up loudly after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting {timeout:.0f} s for {what}")
        time.sleep(every)


def _auth(head: HeadProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {head.token}"}


def events(head: HeadProcess, run_id: str) -> list[dict[str, Any]]:
    return httpx.get(f"{head.url}/api/v1/runs/{run_id}/events", params={"limit": 10000}, timeout=30,
                     headers=_auth(head)).json()["events"]


def nodes(head: HeadProcess) -> list[dict[str, Any]]:
    return httpx.get(f"{head.url}/api/v1/cluster/nodes", timeout=10, headers=_auth(head)).json()["nodes"]


def node_at(head: HeadProcess, ip: str) -> dict[str, Any] | None:
    """The newest node the head lists at ``ip`` (a left or dead one stays listed beside a new one)."""
    found = [n for n in nodes(head) if n["address"] == ip]
    alive = [n for n in found if n["state"] == "alive"]
    return (alive or found or [None])[-1]


def fanout(reaper: Reaper, root: Path, n_nodes: int, n: int, repeats: int) -> list[float]:
    """Tasks/s of an ``n``-task fan-out on one cluster of ``n_nodes`` nodes, ``repeats`` times after a warm-up."""
    cores = {1: [3], 2: [1, 2], 3: [1, 1, 1]}[n_nodes]
    base = root / f"fan{n_nodes}"
    head = reaper.head(base / "head", cores[0])
    try:
        for i, c in enumerate(cores[1:]):
            reaper.join(head, base / f"w{i}", f"127.0.0.{3 + i}", c)
        rates = []
        with LatticeClient(head.url, token=head.token, progress=False, timeout=60) as client:
            for r in range(repeats + 1):
                wf = client.create_workflow(f"fan{n_nodes}-{r}")
                for i in range(n if r else 200):  # round 0: a short warm-up (Ray's worker pool, imports)
                    wf.add_task(noop, name=f"t{i}")
                wf.register()
                started = time.monotonic()
                wf.get_results(wf.run(), timeout=900)
                if r:
                    rates.append(n / (time.monotonic() - started))
                    print(f"fan-out {n_nodes} node(s), round {r}: {rates[-1]:.0f} tasks/s", flush=True)
        return rates
    finally:
        reaper.stop_all()


def node_death(reaper: Reaper, head: LoopbackHead, root: Path, r: int) -> dict[str, float]:
    """Join a worker, kill it while it runs tasks, time the head's reactions.

    The head has 3 cores and the worker 2, and 3 tasks run: placement (most free CPU first) puts at least
    one on the worker and leaves a free core on the head for each task that moves, so the time measured is
    the reaction to the death, not a wait in the queue.
    """
    out = {"worker_schedulable_s": reaper.join(head, root / f"w{r}", "127.0.0.3", 2)}
    worker_dir = root / f"w{r}"
    node = node_at(head, "127.0.0.3")
    assert node is not None and node["state"] == "alive", node
    node_id = node["node_id"]
    with LatticeClient(head.url, token=head.token, progress=False, timeout=60) as client:
        wf = client.create_workflow(f"death{r}")
        for i in range(3):
            wf.add_task(hold, name=f"h{i}", inputs={"s": 20.0})
        run_id = wf.run()
        wait_for("a task on the worker", lambda: any(
            e["type"] == "task_started" and e["data"].get("node_id") == node_id for e in events(head, run_id)))
        killed = time.monotonic()
        _kill_group(reaper.worker_group(worker_dir))
        dead_at: float | None = None

        def moved_started() -> list[dict[str, Any]]:
            nonlocal dead_at
            if dead_at is None and any(n["node_id"] == node_id and n["state"] == "dead" for n in nodes(head)):
                dead_at = time.monotonic()
            evs = events(head, run_id)
            lost = [e for e in evs if e["type"] == "node_lost"]
            if not lost:
                return []
            moved = set(lost[0]["data"]["tasks"])
            return [e for e in evs if e["type"] == "task_started" and e["task"] in moved and e["seq"] > lost[0]["seq"]]

        # event ts are wall-clock (the head's); the kill is measured on this clock: convert once
        wall_minus_mono = time.time() - time.monotonic()
        again = wait_for("the killed node's tasks to run elsewhere", moved_started)
        evs = events(head, run_id)
        lost = next(e for e in evs if e["type"] == "node_lost")
        out["node_death_to_node_lost_event_s"] = lost["ts"] - wall_minus_mono - killed
        out["node_death_to_task_running_elsewhere_s"] = min(e["ts"] for e in again) - wall_minus_mono - killed
        if dead_at is None:
            wait_for("the node to show dead", lambda: any(n["node_id"] == node_id and n["state"] == "dead"
                                                           for n in nodes(head)))
            dead_at = time.monotonic()
        out["node_death_to_marked_dead_s"] = dead_at - killed
        wf.get_results(run_id, timeout=WAIT_S)
    return out


def head_restart(reaper: Reaper, head: LoopbackHead, r: int) -> tuple[LoopbackHead, dict[str, float]]:
    """SIGKILL the head's server in a run, start it again on its data dir; time answering and the first resumed task."""
    with LatticeClient(head.url, token=head.token, progress=False, timeout=60) as client:
        wf = client.create_workflow(f"restart{r}")
        for i in range(4):
            wf.add_task(hold, name=f"r{i}", inputs={"s": 3.0})
        run_id = wf.run()
        wait_for("the run to start", lambda: any(e["type"] == "task_started" for e in events(head, run_id)))
    reaper.note_head_ray(head)  # the killed head's Ray: stopped at the end even if no successor adopts it
    assert head.proc is not None
    os.kill(head.proc.pid, signal.SIGKILL)
    head.proc.wait(30)
    head.proc = None
    reaper.heads.remove(head)
    restart_wall, restart = time.time(), time.monotonic()
    head = reaper.head(head.data_dir, 3, port=head.port)
    out = {"head_restart_to_answering_s": time.monotonic() - restart}

    def first_resumed() -> float | None:
        evs = events(head, run_id)
        resumed = [e for e in evs if e["type"] == "run_resumed"]
        started = [e for e in evs if e["type"] == "task_started" and resumed and e["seq"] > resumed[0]["seq"]]
        return started[0]["ts"] if started else None

    out["head_restart_to_first_resumed_task_s"] = wait_for("the first resumed task", first_resumed) - restart_wall
    with LatticeClient(head.url, token=head.token, progress=False, timeout=60) as client:
        client.get_results(run_id, timeout=WAIT_S)
    return head, out


def faults(reaper: Reaper, root: Path, repeats: int) -> list[dict[str, float]]:
    head = reaper.head(root / "faults" / "head", 3)
    rounds: list[dict[str, float]] = []
    try:
        for r in range(repeats):
            measured = node_death(reaper, head, root / "faults", r)
            head, restarted = head_restart(reaper, head, r)
            rounds.append({**measured, **restarted})
            print(f"faults, round {r + 1}: {rounds[-1]}", flush=True)
        return rounds
    finally:
        reaper.stop_all()


def load(reaper: Reaper, root: Path, threads: int, repeats: int) -> list[dict[str, float]]:
    head = reaper.head(root / "load" / "head", 2)
    rounds: list[dict[str, float]] = []
    try:
        for r in range(repeats):
            latencies: list[float] = []
            errors: list[BaseException] = []
            lock = threading.Lock()

            def client_thread(n: int, r: int = r, latencies: list[float] = latencies,
                              errors: list[BaseException] = errors, lock: threading.Lock = lock) -> None:
                try:
                    with LatticeClient(head.url, token=head.token, progress=False, timeout=120) as client:
                        mine = []
                        for w in range(10):
                            wf = client.create_workflow(f"load-{r}-{n}-{w}")
                            for i in range(10):
                                wf.add_task(step, name=f"s{i}", inputs={"i": i})
                            mine.append((wf, time.monotonic(), wf.run()))
                        for wf, submitted, run_id in mine:
                            wf.get_results(run_id, timeout=WAIT_S)
                            with lock:
                                latencies.append(time.monotonic() - submitted)
                except BaseException as exc:  # noqa: BLE001 -- reported by the main thread
                    with lock:
                        errors.append(exc)

            workers = [threading.Thread(target=client_thread, args=(n,), daemon=True) for n in range(threads)]
            started = time.monotonic()
            for t in workers:
                t.start()
            deadline = started + 2 * WAIT_S
            for t in workers:
                t.join(max(0.0, deadline - time.monotonic()))
            took = time.monotonic() - started
            if errors or any(t.is_alive() for t in workers):
                raise RuntimeError(f"load round {r + 1}: {len(errors)} client threads failed "
                                   f"({errors[:1]!r}), {sum(t.is_alive() for t in workers)} still waiting")
            latencies.sort()
            rounds.append({"runs": len(latencies), "tasks_per_s": len(latencies) * 10 / took,
                           "p50_submit_to_result_s": statistics.median(latencies),
                           "p99_submit_to_result_s": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]})
            print(f"load, round {r + 1}: {rounds[-1]}", flush=True)
        return rounds
    finally:
        reaper.stop_all()


@contextmanager
def signals_unwind() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the ``finally`` blocks stop what was started."""
    def unwind(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, unwind) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


def write(results: dict[str, Any], args: argparse.Namespace) -> str:
    out = ROOT / "docs" / "benchmarks"
    (out / "distributed.json").write_text(json.dumps(results, indent=2) + "\n")
    fan, flt, ld = results["fanout_tasks_per_s"], results["faults"], results["load"]
    base = fan["1"]["median"]

    def row(label: str, s: dict[str, float], digits: int = 2) -> str:
        return f"| {label} | {s['median']:.{digits}f} | {s['min']:.{digits}f} to {s['max']:.{digits}f} |"

    md = [
        "# Distributed benchmark", "",
        f"`python bench/bench_distributed.py --fanout {args.fanout} --threads {args.threads} --repeats "
        f"{args.repeats}` on {results['machine']}, {results['date']}. Every Ray node runs on this one machine "
        "(its own loopback address: head 127.0.0.2, workers 127.0.0.3 and .4), so the numbers show the cost "
        "of crossing Ray nodes and Lattice's reaction times, not a network's. The machine was shared with "
        "other work (its load average is in the JSON): compare numbers only within this run. Medians of "
        f"{args.repeats} rounds, with the range.", "",
        f"## Fan-out of {args.fanout} no-op tasks, 3 cores in all", "",
        "Same 3 cores split over 1, 2 or 3 Ray nodes (3; 1+2; 1+1+1); the 1-node cluster is the baseline.", "",
        "| Ray nodes | tasks/s (median) | range | vs 1 node |", "|---|---|---|---|",
        *(f"| {n} | {fan[n]['median']:.0f} | {fan[n]['min']:.0f} to {fan[n]['max']:.0f} | "
          f"{fan[n]['median'] / base:.2f}x |" for n in ("1", "2", "3")), "",
        "## Reaction times (seconds)", "",
        "A worker (2 cores) joins a head (3 cores) and is SIGKILLed (its whole process group) while it runs "
        "tasks of a 3-task run; the head's server is then SIGKILLed in a run and started again on its data dir "
        "(it adopts its predecessor's Ray).", "",
        "| what | median | range |", "|---|---|---|",
        row("`lattice start --worker` until schedulable", flt["worker_schedulable_s"]),
        row("node SIGKILL → node shows `dead`", flt["node_death_to_marked_dead_s"]),
        row("node SIGKILL → run's `node_lost` event", flt["node_death_to_node_lost_event_s"]),
        row("node SIGKILL → its task running elsewhere", flt["node_death_to_task_running_elsewhere_s"]),
        row("head SIGKILL + restart → head answers", flt["head_restart_to_answering_s"]),
        row("head SIGKILL + restart → first resumed task starts", flt["head_restart_to_first_resumed_task_s"]),
        "",
        "The head marks a node `dead` and writes the run's `node_lost` event in the same step; the `dead` time "
        "reads later because the benchmark polls the node list between event reads. The first resumed task "
        "can start before the head answers HTTP: a head resumes its unfinished runs before it binds its port.",
        "",
        f"## Load: {args.threads} client threads x 10 workflows x 10 tasks at once (one head, 2 cores)", "",
        "| what | median | range |", "|---|---|---|",
        row("tasks/s", ld["tasks_per_s"], 0),
        row("p50 submit-to-result (s)", ld["p50_submit_to_result_s"]),
        row("p99 submit-to-result (s)", ld["p99_submit_to_result_s"]),
        "",
    ]
    text = "\n".join(md)
    (out / "distributed.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--fanout", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rewrite", action="store_true",
                        help="only write distributed.md again from distributed.json (no measuring)")
    args = parser.parse_args()
    if args.rewrite:
        stored = json.loads((ROOT / "docs" / "benchmarks" / "distributed.json").read_text())
        for key in ("fanout", "threads", "repeats"):
            setattr(args, key, stored[key])
        print(write(stored, args))
        return
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other work, loaded)",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average_at_start": os.getloadavg(),
        "fanout": args.fanout, "threads": args.threads, "repeats": args.repeats}
    reaper = Reaper()
    with signals_unwind(), tempfile.TemporaryDirectory(prefix="lattice-bench-dist-") as tmp:
        root = Path(tmp)
        try:
            fan = {str(n): fanout(reaper, root, n, args.fanout, args.repeats) for n in (1, 2, 3)}
            results["fanout_tasks_per_s"] = {n: summary(v) for n, v in fan.items()}
            fault_rounds = faults(reaper, root, args.repeats)
            results["faults"] = {k: summary([r[k] for r in fault_rounds]) for k in fault_rounds[0]}
            load_rounds = load(reaper, root, args.threads, args.repeats)
            results["load"] = {k: summary([r[k] for r in load_rounds]) for k in load_rounds[0]}
            results["raw"] = {"fanout": fan, "faults": fault_rounds, "load": load_rounds}
            results["load_average_at_end"] = os.getloadavg()
        finally:
            reaper.stop_all()
    print(write(results, args))


if __name__ == "__main__":
    main()
