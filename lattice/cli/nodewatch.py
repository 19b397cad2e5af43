"""A worker's watch over its own node: once the head drains it and nothing runs there, stop its Ray.

``lattice drain NODE`` (or ``POST /api/v1/cluster/nodes/{node}/drain``) is said to the head, not to the
machine: the head stops placing tasks there, but only the machine can stop its own Ray node, and until it
does the node shows ``draining`` for good. So the worker watches: ``lattice start --worker --block`` in its
own foreground loop, a plain ``lattice start --worker`` in a small detached process it starts for this
(``python -m lattice.cli.nodewatch DATA_DIR``, recorded in ``worker.json``). Every second it asks the
head for its node; when the node is ``draining`` with no task reserved on it, it stops the Ray process group
the worker started (SIGTERM, then SIGKILL; by its recorded pid and start time, nothing else) and the head
then shows the node ``left``. A head that does not answer changes nothing (a head restarts; a node is never
stopped because its head is away), and the watch ends by itself once the Ray node is gone.

Polling, not a push from the head: the head never opens connections to workers (they may sit behind NAT or
a firewall that only lets them reach the head), and a poll survives a head restart with no state to rebuild.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from lattice.utils.procs import ProcessIdentity, group_is_ours, recorded_identity

#: how often the watch asks the head about its node
POLL_S = 1.0
WATCH_LOG = "node-watch.log"

Ended = Literal["drained", "gone", "stopped"]


def drained_and_idle(node: dict[str, Any] | None) -> bool:
    """The head drains the node and has nothing reserved on it: its Ray can stop."""
    return node is not None and node.get("state") == "draining" and node.get("running_tasks", 0) == 0


def watch(node_id: str, fetch_nodes: Callable[[], list[dict[str, Any]] | None], ray_alive: Callable[[], bool],
          stop_ray: Callable[[], None], stop: threading.Event | None = None, poll_s: float = POLL_S) -> Ended:
    """Until the node is drained and idle (then ``stop_ray``: "drained"), its Ray ends by itself ("gone"),
    or ``stop`` is set ("stopped"). ``fetch_nodes`` answers None when the head cannot be asked."""
    stop = stop or threading.Event()
    while not stop.is_set():
        if not ray_alive():
            return "gone"
        nodes = fetch_nodes()
        if nodes is not None and drained_and_idle(next((n for n in nodes if n["node_id"] == node_id), None)):
            stop_ray()
            return "drained"
        stop.wait(poll_s)
    return "stopped"


def head_nodes(url: str, token: str | None, data_dir: Path) -> Callable[[], list[dict[str, Any]] | None]:
    """The head's node list for the watch, or None when the head does not answer (or refuses) now."""
    from lattice.cli.worker import _nodes
    from lattice.errors import LatticeError

    def fetch() -> list[dict[str, Any]] | None:
        try:
            return _nodes(url, token, data_dir)
        except LatticeError:
            return None

    return fetch


def spawn(data_dir: Path) -> ProcessIdentity:
    """Start the detached watch for the worker of ``data_dir`` (its own session, so a Ctrl-C or the
    end of the ``lattice start`` terminal does not stop it); its identity, for ``worker.json``."""
    import subprocess

    with open(data_dir / WATCH_LOG, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "lattice.cli.nodewatch", str(data_dir)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return ProcessIdentity.of(proc.pid)


def main(data_dir: Path) -> int:
    """The detached watch: the worker's record says which node, which head and which Ray group."""
    from lattice.cli.target import read_json
    from lattice.cli.worker import WORKER_INFO_FILE, _saved_token
    from lattice.executor.ray_process import kill_process_group

    info = read_json(data_dir / WORKER_INFO_FILE)
    ray = recorded_identity(info) if info else None
    if not info or ray is None or not info.get("node_id") or not info.get("head"):
        print(f"{data_dir / WORKER_INFO_FILE} names no joined node; nothing to watch", flush=True)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ended = watch(str(info["node_id"]), head_nodes(str(info["head"]), _saved_token(data_dir), data_dir),
                  lambda: group_is_ours(ray.pid, ray.create_time),
                  lambda: kill_process_group(ray.pid, timeout=15), stop)
    if ended != "stopped":
        forget_worker(data_dir, ray.pid)
    print(f"{time.strftime('%H:%M:%S')} node {str(info['node_id'])[:12]}: {ended}"
          + ("; drained and idle, its Ray stopped" if ended == "drained" else ""), flush=True)
    return 0


def forget_worker(data_dir: Path, ray_pgid: int) -> None:
    """Remove ``worker.json`` if it still records this Ray group (a new worker may have replaced it)."""
    from lattice.cli.worker import WORKER_INFO_FILE

    path = data_dir / WORKER_INFO_FILE
    try:
        if json.loads(path.read_text()).get("pid") == ray_pgid:
            path.unlink(missing_ok=True)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
