"""``lattice start --worker``, ``lattice drain`` and ``lattice stop --worker``: a machine joins a head's
cluster, says what it offers, and leaves it cleanly.

A worker asks the head's join route (with the head's token) for the Ray address and Ray's token, starts a
Ray node in a process group of its own with its CPUs, GPUs, memory, custom resources and labels, and waits
until the head lists it as alive: only then is it *schedulable*, and the command says how long that took.
The head learns everything else from Ray (it looks every second) and probes GPUs through NVML on the node.
Leaving: the head stops placing tasks there (``drain``), what runs there finishes (or, after ``--timeout``,
moves elsewhere without using its retries), then the worker's Ray stops and the node is ``left``. A drain
said to the head (``lattice drain NODE`` from anywhere) is noticed by the worker's watch
(:mod:`lattice.cli.nodewatch`), which stops the node's Ray once nothing runs there.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from lattice.cli import nodewatch
from lattice.cli.target import HeadNotRunning, read_json
from lattice.utils.procs import ProcessIdentity, group_is_ours, recorded_identity

WORKER_INFO_FILE = "worker.json"
#: the head's token a worker was started with, so that stopping it can drain its node first
HEAD_TOKEN_FILE = "head_token"
#: how long ``lattice start --worker`` waits for the head to list the new node as alive
#: default of ``--join-timeout``: Ray's raylet start plus the head's next node refresh take 5-35 s on a loaded
#: 2-core machine; 60 s was once missed there at load average 36
SCHEDULABLE_TIMEOUT_S = 120.0


def parse_labels(value: str | None) -> dict[str, str]:
    """``k=v,k2=v2`` -> a dict; a bad pair is a usage error naming the flag."""
    labels: dict[str, str] = {}
    for pair in (value or "").split(","):
        if not pair.strip():
            continue
        key, sep, val = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not key=value (e.g. --labels zone=a,disk=ssd)",
                                     param_hint="--labels")
        labels[key.strip()] = val.strip()
    return labels


def parse_resources(value: str | None) -> dict[str, float]:
    """``{"my_res": 2}`` -> a dict of custom resources; CPU/GPU/memory have flags of their own."""
    if not value:
        return {}
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc} (e.g. --resources '{{\"my_res\": 1}}')",
                                 param_hint="--resources") from None
    if not isinstance(data, dict) or not all(isinstance(v, int | float) and v >= 0 for v in data.values()):
        raise click.BadParameter("must be a JSON object of names to non-negative numbers", param_hint="--resources")
    reserved = {k for k in data if k.upper() in ("CPU", "GPU", "MEMORY", "OBJECT_STORE_MEMORY")}
    if reserved:
        raise click.BadParameter(f"{sorted(reserved)}: use --num-cpus, --num-gpus, --memory", param_hint="--resources")
    return {str(k): float(v) for k, v in data.items()}


def _head(url: str, token: str | None, data_dir: Path) -> Any:
    from lattice.client.base import ClientConfig, discover_token
    from lattice.client.transport import HeadHTTP

    return HeadHTTP(ClientConfig(url, discover_token(token, data_dir), timeout=10.0))


def _call(method: str, path: str, body: Any = None) -> Any:
    from lattice.client.endpoints import API, Call

    return Call(method, f"{API}{path}", json=body)


def join_info(url: str, token: str | None, data_dir: Path) -> dict[str, Any]:
    """What this machine needs to join the head's Ray cluster, asked with the head's token."""
    from lattice.errors import APIError, AuthenticationError, HeadUnavailableError

    try:
        with _head(url, token, data_dir) as head:
            return head.send(_call("GET", "/cluster/join"))
    except HeadUnavailableError as exc:
        raise HeadNotRunning(f"cannot reach the head at {url}: {exc.__cause__ or exc}") from exc
    except AuthenticationError as exc:
        raise click.ClickException("the head refused the token; pass --token or set LATTICE_TOKEN") from exc
    except APIError as exc:
        raise click.ClickException(f"the head refused to let this machine join: {exc}") from exc


def _nodes(url: str, token: str | None, data_dir: Path) -> list[dict[str, Any]]:
    """The head's node list, once (raises the SDK's errors; each poll decides what a failure means)."""
    with _head(url, token, data_dir) as head:
        return head.send(_call("GET", "/cluster/nodes"))["nodes"]


def wait_schedulable(url: str, token: str | None, data_dir: Path, ip: str, timeout: float) -> dict[str, Any] | None:
    """Poll the head's node list until a live node at ``ip`` shows (or ``timeout``); the node, or None."""
    from lattice.errors import LatticeError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            nodes = _nodes(url, token, data_dir)
        except LatticeError:
            nodes = []
        for node in nodes:
            if node["address"] == ip and node.get("state", "alive") == "alive":
                return node
        time.sleep(0.2)
    return None


def start_worker(url: str, token: str | None, data_dir: Path, num_cpus: float | None, num_gpus: float | None,
                 object_store_mb: int, node_ip: str | None, block: bool, memory_mb: int | None = None,
                 resources: dict[str, float] | None = None, labels: dict[str, str] | None = None,
                 echo: Any = click.echo, join_timeout_s: float = SCHEDULABLE_TIMEOUT_S) -> None:
    from lattice.executor.ray_process import RayProcess
    from lattice.executor.ray_process import node_ip as detect_ip

    existing = read_json(data_dir / WORKER_INFO_FILE)
    identity = recorded_identity(existing) if existing else None
    if identity is not None and identity.alive():
        raise click.ClickException(f"a worker already runs for {data_dir} (pid {identity.pid}); "
                                   "stop it with 'lattice stop --worker --data-dir ...' or use another --data-dir")
    join = join_info(url, token, data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if token:  # kept (0600) so that `lattice stop --worker` can drain this node on the head
        _save_token(data_dir / HEAD_TOKEN_FILE, token)
    ip = node_ip or detect_ip()
    started = time.monotonic()
    proc = RayProcess(data_dir, "ray-worker.log")
    proc.start_worker(join["ray_address"], join["ray_token"] or "", num_cpus, num_gpus, object_store_mb, ip,
                      memory_mb=memory_mb, resources=resources, labels=labels)
    assert proc.pgid is not None
    info = {"pid": proc.pgid, "create_time": ProcessIdentity.of(proc.pgid).create_time, "head": url,
            "ray_address": join["ray_address"], "node_ip": ip, "started_at": time.time()}
    (data_dir / WORKER_INFO_FILE).write_text(json.dumps(info, indent=2))
    node = wait_schedulable(url, token, data_dir, ip, join_timeout_s)
    if node is None:
        proc.stop()
        (data_dir / WORKER_INFO_FILE).unlink(missing_ok=True)
        raise click.ClickException(f"the head did not list a live node at {ip} within {join_timeout_s:g} s "
                                   f"(--join-timeout); see {proc.log_path}")
    info["node_id"] = node["node_id"]
    (data_dir / WORKER_INFO_FILE).write_text(json.dumps(info, indent=2))  # what the watch reads: write it first
    if not block:  # nothing of ours stays in the foreground: a detached watch leaves when the head drains us
        watcher = nodewatch.spawn(data_dir)
        info["watcher_pid"], info["watcher_create_time"] = watcher.pid, watcher.create_time
        (data_dir / WORKER_INFO_FILE).write_text(json.dumps(info, indent=2))
    echo(f"worker joined {join['ray_address']} as node {node['node_id'][:12]} ({ip}), schedulable after "
         f"{time.monotonic() - started:.1f} s (Ray pid {proc.pgid}); it leaves once drained (lattice drain) and "
         f"idle; stop: lattice stop --worker --data-dir {data_dir}")
    if block:
        try:
            assert proc.proc is not None
            ray_proc = proc.proc
            ended = nodewatch.watch(node["node_id"], nodewatch.head_nodes(url, token, data_dir),
                                    lambda: ray_proc.poll() is None, proc.stop)
            if ended == "drained":
                echo(f"node {node['node_id'][:12]} was drained and is idle: its Ray stopped, the node has left")
        except KeyboardInterrupt:
            pass
        finally:
            proc.stop()
            (data_dir / WORKER_INFO_FILE).unlink(missing_ok=True)


def _save_token(path: Path, token: str) -> None:
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)


def _saved_token(data_dir: Path) -> str | None:
    try:
        return (data_dir / HEAD_TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def drain_node(url: str, token: str | None, data_dir: Path, node: str, timeout: float | None) -> dict[str, Any]:
    """Ask the head to drain ``node`` (an id, a unique prefix, or an IP); the node as the head shows it."""
    from lattice.errors import APIError, HeadUnavailableError

    try:
        with _head(url, token, data_dir) as head:
            return head.send(_call("POST", f"/cluster/nodes/{node}/drain", {"timeout_s": timeout}))
    except HeadUnavailableError as exc:
        raise HeadNotRunning(f"cannot reach the head at {url}: {exc.__cause__ or exc}") from exc
    except APIError as exc:
        raise click.ClickException(str(exc)) from exc


def wait_idle(url: str, token: str | None, data_dir: Path, node_id: str, timeout: float) -> bool:
    """Wait until the head shows no task running on the node (or it is gone); False after ``timeout``."""
    from lattice.errors import LatticeError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            nodes = _nodes(url, token, data_dir)
        except LatticeError:
            return False
        mine = [n for n in nodes if n["node_id"] == node_id]
        if not mine or mine[0]["running_tasks"] == 0 or not mine[0]["alive"]:
            return True
        time.sleep(0.5)
    return False


def stop_worker(data_dir: Path, token: str | None, timeout: float | None, echo: Any = click.echo) -> bool:
    """Drain this machine's node on its head, wait for its tasks (at most ``timeout`` s, then they move
    elsewhere), then stop its Ray. Returns whether a worker was stopped."""
    from lattice.executor.ray_process import kill_process_group

    info = read_json(data_dir / WORKER_INFO_FILE)
    if not info:
        return False
    identity = recorded_identity(info)
    if identity is None or not group_is_ours(identity.pid, identity.create_time):
        echo(f"the worker recorded in {data_dir / WORKER_INFO_FILE} (pid {info.get('pid')}) is not running or "
             "cannot be verified; nothing was signalled, cleaning up its record")
        (data_dir / WORKER_INFO_FILE).unlink(missing_ok=True)
        return False
    node_id, url = info.get("node_id"), info.get("head")
    token = token or _saved_token(data_dir)
    if node_id and url:
        try:
            drain_node(url, token, data_dir, node_id, timeout)
            echo(f"draining node {node_id[:12]} ({info.get('node_ip')}): no new tasks; waiting for running ones")
            if not wait_idle(url, token, data_dir, node_id, (timeout if timeout is not None else 3600) + 5):
                echo("tasks still run there; stopping anyway (they run again elsewhere)")
        except (click.ClickException, HeadNotRunning) as exc:
            echo(f"could not drain on the head ({exc}); stopping the node (its tasks run again elsewhere)")
    kill_process_group(identity.pid, timeout=15)
    _stop_watcher(info)
    (data_dir / WORKER_INFO_FILE).unlink(missing_ok=True)
    return True


def _stop_watcher(info: dict[str, Any]) -> None:
    """SIGTERM the worker's detached watch (it would end by itself within a second of its Ray; this is
    sooner), only while the recorded pid is still that process."""
    import os
    import signal

    watcher = recorded_identity(info, "watcher_pid", "watcher_create_time")
    if watcher is not None and watcher.alive():
        try:
            os.kill(watcher.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


__all__ = ["drain_node", "join_info", "parse_labels", "parse_resources", "start_worker", "stop_worker"]
