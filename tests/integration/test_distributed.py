"""A real multi-node Ray cluster on this machine: a head on 127.0.0.2 and two workers started with
``lattice start --worker`` on 127.0.0.3 and 127.0.0.4 (``--node-ip``), so nodes are told apart as on real
machines. One cluster for the module (Ray nodes are heavy on a small machine); the faults run in order:
workers join with their labels and resources; a cpu=0 task's os._exit fails no other run; a node
drained from the head takes no new tasks, and its worker stops its Ray once idle, so it leaves; a frozen
(partitioned) node's tasks re-run elsewhere and its late results are discarded; a SIGKILLed node's tasks
run elsewhere without using retries; ``lattice stop --worker`` on a worker's own machine drains and leaves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lattice import LatticeClient, ResourceUnavailable, task
from lattice.utils.procs import ProcessIdentity, group_exists, group_is_ours
from tests.headproc import HeadProcess

LATTICE = [sys.executable, "-m", "lattice.cli.main"]


class LoopbackHead(HeadProcess):
    @property
    def url(self) -> str:
        return f"http://127.0.0.2:{self.port}"


@dataclass
class Worker:
    data_dir: Path
    ip: str
    joined: str

    @property
    def pgid(self) -> int:
        return int(json.loads((self.data_dir / "worker.json").read_text())["pid"])


@dataclass
class Cluster:
    head: LoopbackHead
    workers: dict[str, Worker]
    env: dict[str, str]

    def client(self) -> LatticeClient:
        return LatticeClient(self.head.url, token=self.head.token, progress=False, timeout=30)

    def nodes(self) -> list[dict]:
        return httpx.get(f"{self.head.url}/api/v1/cluster/nodes", timeout=10,
                         headers={"Authorization": f"Bearer {self.head.token}"}).json()["nodes"]

    def node_at(self, ip: str) -> dict:
        found = [n for n in self.nodes() if n["address"] == ip]
        assert len(found) == 1, found
        return found[0]

    def events(self, run_id: str) -> list[dict]:
        return httpx.get(f"{self.head.url}/api/v1/runs/{run_id}/events", timeout=10,
                         headers={"Authorization": f"Bearer {self.head.token}"}).json()["events"]


def _join(head: LoopbackHead, data_dir: Path, ip: str, env: dict[str, str], *extra: str) -> Worker:
    out = subprocess.run([*LATTICE, "start", "--worker", "--addr", head.url.removeprefix("http://"),
                          "--token", head.token, "--data-dir", str(data_dir), "--node-ip", ip,
                          "--object-store-mb", "128", *extra], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    return Worker(data_dir, ip, out.stderr + out.stdout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "LATTICE_HOME": str(root / "nohome")}
    head = LoopbackHead(root / "head", extra_args=["--host", "127.0.0.2", "--num-cpus", "1"]).start()
    workers: dict[str, Worker] = {}
    try:
        workers["a"] = _join(head, root / "wa", "127.0.0.3", env, "--num-cpus", "2", "--labels", "zone=a",
                             "--resources", '{"my_res": 1}')
        workers["b"] = _join(head, root / "wb", "127.0.0.4", env, "--num-cpus", "2", "--labels", "zone=b")
        yield Cluster(head, workers, env)
    finally:
        for worker in workers.values():
            try:
                record = json.loads((worker.data_dir / "worker.json").read_text())
            except (OSError, ValueError):
                continue
            pgid = int(record["pid"])
            if group_is_ours(pgid, record.get("create_time")):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if "watcher_pid" in record and ProcessIdentity(record["watcher_pid"],
                                                           record["watcher_create_time"]).alive():
                os.kill(record["watcher_pid"], signal.SIGTERM)  # it would end by itself once its Ray is gone
        head.stop()


@task(inputs=["s"], outputs=["node"], cpu=1, retries=0)
def hold(params):
    import time

    import ray

    time.sleep(params["s"])
    return {"node": ray.get_runtime_context().get_node_id()}


@task(inputs=["s"], outputs=["node"], cpu=1, retries=0, node_labels={"zone": "b"})
def hold_on_b(params):
    import time

    import ray

    time.sleep(params["s"])
    return {"node": ray.get_runtime_context().get_node_id()}


@task(outputs=["x"], cpu=0, retries=0, node_labels={"zone": "a"})
def crash(params):
    import os
    import time

    time.sleep(1.0)
    os._exit(1)


@task(outputs=["x"], cpu=0, retries=0, node_labels={"zone": "a"})
def nap(params):
    import time

    time.sleep(4.0)
    return {"x": 1}


@task(outputs=["x"], cpu=0, retries=0, node_labels={"zone": "c"})
def in_zone_c(params):
    return {"x": 1}


def test_workers_join_with_their_labels_and_resources(cluster: Cluster) -> None:
    for worker in cluster.workers.values():
        assert "schedulable after" in worker.joined, worker.joined
    a, b = cluster.node_at("127.0.0.3"), cluster.node_at("127.0.0.4")
    assert a["state"] == b["state"] == "alive"
    assert a["labels"]["zone"] == "a" and b["labels"]["zone"] == "b"
    assert a["total"]["cpu"] == 2 and b["total"]["cpu"] == 2
    status = subprocess.run([*LATTICE, "status", "--url", cluster.head.url, "--token", cluster.head.token, "--json"],
                            env=cluster.env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "127.0.0.3" in status.stdout and '"state": "alive"' in status.stdout
    with cluster.client() as client:  # a label no node has: fails at once, naming it and the labels there are
        workflow = client.create_workflow("zone-c")
        workflow.add_task(in_zone_c)
        with pytest.raises(ResourceUnavailable, match=r"no node has label zone=c \(labels in the cluster: zone=a, "
                                                      r"zone=b"):
            workflow.get_results(workflow.run(), timeout=60)


def test_one_tasks_os_exit_in_the_shared_executor_fails_no_other_run(cluster: Cluster) -> None:
    with cluster.client() as client:
        innocent = client.create_workflow()
        innocent.add_task(nap, name="nap")
        innocent_id = innocent.run()
        time.sleep(0.5)
        guilty = client.create_workflow()
        guilty.add_task(crash, name="crash")
        guilty_id = guilty.run()
        from lattice.errors import TaskKilled

        with pytest.raises(TaskKilled) as raised:
            guilty.get_results(guilty_id, timeout=120)
        assert raised.value.error.kind == "worker_died"
        assert innocent.get_results(innocent_id, timeout=120)["x"] == 1
    lost = [e for e in cluster.events(innocent_id) if e["type"] == "task_retrying" and e["data"].get("lost")]
    assert lost, "both ran in node a's shared executor (zone=a): the innocent is re-run isolated, not failed"


def test_a_node_drained_from_the_head_takes_no_new_tasks_and_its_worker_stops_its_ray(cluster: Cluster) -> None:
    """``lattice drain`` is said to the head (from anywhere): the worker's watch notices its node is
    draining, waits until nothing runs there, then stops its own Ray node; the node shows ``left``."""
    b = cluster.workers["b"]
    record = json.loads((b.data_dir / "worker.json").read_text())
    ray_group, watcher = record["pid"], ProcessIdentity(record["watcher_pid"], record["watcher_create_time"])
    assert watcher.alive(), "a plain `lattice start --worker` leaves a watch behind it"
    b_id = cluster.node_at("127.0.0.4")["node_id"]
    with cluster.client() as client:
        busy = client.create_workflow()
        busy.add_task(hold_on_b, name="busy", inputs={"s": 20.0})
        busy_id = busy.run()
        deadline = time.monotonic() + 90
        while not any(e["type"] == "task_started" for e in cluster.events(busy_id)) and time.monotonic() < deadline:
            time.sleep(0.2)
        drained = subprocess.run([*LATTICE, "drain", "127.0.0.4", "--url", cluster.head.url, "--token",
                                  cluster.head.token], env=cluster.env, capture_output=True, text=True, timeout=60)
        assert drained.returncode == 0, drained.stderr
        assert cluster.node_at("127.0.0.4")["state"] == "draining"
        wf = client.create_workflow()
        for i in range(4):
            wf.add_task(hold, name=f"h{i}", inputs={"s": 0.5})
        run_id = wf.run()
        wf.get_results(run_id, timeout=120)
        assert b_id not in {t.outputs["node"] for t in wf.get_task_results(run_id).values()}
        assert cluster.node_at("127.0.0.4")["state"] == "draining", "its task still runs: the node stays"
        assert group_exists(ray_group)
        assert busy.get_results(busy_id, timeout=120)["node"] == b_id  # it finished where it ran
    deadline = time.monotonic() + 60
    while cluster.node_at("127.0.0.4")["state"] != "left" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.node_at("127.0.0.4")["state"] == "left"
    deadline = time.monotonic() + 30
    while (group_exists(ray_group) or watcher.alive()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_exists(ray_group), "the worker's Ray node was stopped by its watch"
    assert not watcher.alive() and not (b.data_dir / "worker.json").exists()
    assert "drained and idle" in (b.data_dir / "node-watch.log").read_text()


def test_a_partitioned_nodes_tasks_run_elsewhere_and_its_stale_results_are_discarded(cluster: Cluster,
                                                                                       tmp_path: Path) -> None:
    # b has left; a third worker joins for this test only, then is frozen (SIGSTOP) past Ray's health checks
    c = _join(cluster.head, tmp_path / "wc", "127.0.0.5", cluster.env, "--num-cpus", "2")
    cluster.workers["c"] = c
    c_id = cluster.node_at("127.0.0.5")["node_id"]
    try:
        with cluster.client() as client:
            wf = client.create_workflow()
            for i in range(6):
                wf.add_task(hold, name=f"p{i}", inputs={"s": 3.0})
            run_id = wf.run()
            deadline = time.monotonic() + 90
            while not any(e["type"] == "task_started" and e["data"].get("node_id") == c_id
                          for e in cluster.events(run_id)) and time.monotonic() < deadline:
                time.sleep(0.2)
            os.killpg(c.pgid, signal.SIGSTOP)
            try:
                deadline = time.monotonic() + 60
                while not any(e["type"] == "node_lost" for e in cluster.events(run_id)) and \
                        time.monotonic() < deadline:
                    time.sleep(0.5)
            finally:
                os.killpg(c.pgid, signal.SIGCONT)  # it comes back: its stale attempts' results must not count
            wf.get_results(run_id, timeout=300)
            results = wf.get_task_results(run_id)
        events = cluster.events(run_id)
        lost = [e for e in events if e["type"] == "node_lost"]
        assert lost and lost[0]["data"]["node_id"] == c_id
        moved = set(lost[0]["data"]["tasks"])
        assert moved and all(results[t].outputs["node"] != c_id for t in moved)  # the new attempt's result
        succeeded = [e["task"] for e in events if e["type"] == "task_succeeded"]
        assert sorted(succeeded) == sorted(set(succeeded)) and len(succeeded) == 6  # never applied twice
    finally:
        try:
            os.killpg(c.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_killed_nodes_tasks_run_elsewhere_without_using_retries(cluster: Cluster) -> None:
    # b has left: a (2 cores) and the head's node (1 core) remain; kill a while it runs tasks
    a_id = cluster.node_at("127.0.0.3")["node_id"]
    with cluster.client() as client:
        wf = client.create_workflow()
        for i in range(20):
            wf.add_task(hold, name=f"t{i:02d}", inputs={"s": 2.0})
        run_id = wf.run()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            started = [e for e in cluster.events(run_id) if e["type"] == "task_started"]
            if any(e["data"].get("node_id") == a_id for e in started) and \
                    any(e["type"] == "task_succeeded" for e in cluster.events(run_id)):
                break
            time.sleep(0.3)
        done_before = {e["task"] for e in cluster.events(run_id) if e["type"] == "task_succeeded"}
        killed_at = time.monotonic()
        os.killpg(cluster.workers["a"].pgid, signal.SIGKILL)
        while cluster.node_at("127.0.0.3")["state"] != "dead" and time.monotonic() < killed_at + 60:
            time.sleep(0.2)
        dead_after = time.monotonic() - killed_at
        assert cluster.node_at("127.0.0.3")["state"] == "dead"
        assert dead_after < 30, f"the node was marked dead only after {dead_after:.1f} s"
        wf.get_results(run_id, timeout=300)  # retries=0: only a node loss that is not charged lets it succeed
        shown = {t["name"]: t for t in client.get_run(run_id)["tasks"]}
    events = cluster.events(run_id)
    lost = [e for e in events if e["type"] == "node_lost"]
    assert lost and lost[0]["data"]["node_id"] == a_id and lost[0]["data"]["address"] == "127.0.0.3"
    assert lost[0]["data"]["tasks"]
    # the API shows what each task lost, apart from its retries
    assert all(shown[t]["node_losses"] >= 1 for t in lost[0]["data"]["tasks"]), shown
    assert sum(t["node_losses"] for t in shown.values()) >= len(lost[0]["data"]["tasks"])
    succeeded = [e["task"] for e in events if e["type"] == "task_succeeded"]
    assert sorted(succeeded) == sorted(set(succeeded)) and len(succeeded) == 20  # none ran twice to success
    started_again = [e["task"] for e in events if e["type"] == "task_started"]
    assert not {t for t in done_before if started_again.count(t) > 1}, "a finished task ran again"
    print(f"node marked dead {dead_after:.1f} s after SIGKILL")


def test_a_worker_stopped_on_its_own_machine_drains_and_leaves(cluster: Cluster, tmp_path: Path) -> None:
    d = _join(cluster.head, tmp_path / "wd", "127.0.0.6", cluster.env, "--num-cpus", "1")
    cluster.workers["d"] = d
    record = json.loads((d.data_dir / "worker.json").read_text())
    watcher = ProcessIdentity(record["watcher_pid"], record["watcher_create_time"])
    stopped = subprocess.run([*LATTICE, "stop", "--worker", "--data-dir", str(d.data_dir)],
                             env=cluster.env, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert "draining node" in stopped.stdout + stopped.stderr, stopped.stdout + stopped.stderr
    deadline = time.monotonic() + 60
    while cluster.node_at("127.0.0.6")["state"] != "left" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.node_at("127.0.0.6")["state"] == "left"
    assert not group_exists(record["pid"]) and not (d.data_dir / "worker.json").exists()
    deadline = time.monotonic() + 10
    while watcher.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not watcher.alive(), "stopping the worker stops its watch too"


def test_a_blocking_worker_drained_from_the_head_stops_its_ray_and_exits(cluster: Cluster, tmp_path: Path) -> None:
    """``lattice start --worker --block`` watches its node in the foreground: drained, it stops its Ray
    node and returns (exit 0), leaving nothing behind."""
    data_dir = tmp_path / "we"
    args = [*LATTICE, "start", "--worker", "--block", "--addr", cluster.head.url.removeprefix("http://"),
            "--token", cluster.head.token, "--data-dir", str(data_dir), "--node-ip", "127.0.0.7",
            "--object-store-mb", "128", "--num-cpus", "1"]
    log = tmp_path / "worker-block.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(args, env=cluster.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    ray_group = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            node = next((n for n in cluster.nodes() if n["address"] == "127.0.0.7" and n["state"] == "alive"),
                        None)
            if node is not None and (data_dir / "worker.json").exists():
                break
            time.sleep(0.5)
        assert proc.poll() is None, log.read_text()
        record = json.loads((data_dir / "worker.json").read_text())
        ray_group = int(record["pid"])
        assert "watcher_pid" not in record, "with --block the foreground process watches, no detached watch"
        drained = subprocess.run([*LATTICE, "drain", "127.0.0.7", "--url", cluster.head.url, "--token",
                                  cluster.head.token], env=cluster.env, capture_output=True, text=True, timeout=60)
        assert drained.returncode == 0, drained.stderr
        assert proc.wait(90) == 0, log.read_text()
        assert "was drained and is idle" in log.read_text()
        assert cluster.node_at("127.0.0.7")["state"] in ("left", "dead")
        assert not group_exists(ray_group) and not (data_dir / "worker.json").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if ray_group is not None and group_exists(ray_group):
            os.killpg(ray_group, signal.SIGKILL)
