"""Starts and stops the Ray processes a head (or a worker node) owns, by process group.

``ray stop`` would kill every Ray process on the machine, including other heads' clusters, so each
Lattice process starts Ray with ``ray start --block`` in a session of its own and later ends exactly
that process group. Ray's token auth is on: the token lives in the data dir and is handed to joining
worker nodes by the head.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lattice.utils.net import free_port, wait_for_port
from lattice.utils.tokens import load_or_create_token

RAY_START_TIMEOUT_S = 60.0
#: how fast Ray's GCS declares a node dead that stopped answering (Ray's defaults take about 30 s): a check
#: every second, each given 2 s, five failures in a row. A SIGKILLed node (connection refused) is dead in
#: about 5 s, a frozen one (SIGSTOP, a partition) in about 10 s; a node too loaded to answer health checks
#: for 10 s is treated as lost and its tasks run elsewhere.
HEALTH_CHECK_CONFIG = {"health_check_period_ms": 1000, "health_check_timeout_ms": 2000,
                       "health_check_failure_threshold": 5}


def ray_env(token: str) -> dict[str, str]:
    """The environment every Ray process of one cluster shares (Ray 2.60 token auth)."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}


def apply_ray_env(token: str) -> None:
    """Set this process's Ray auth; Ray reads it when it is first imported, so re-read it if it was."""
    os.environ.update(ray_env(token))
    if "ray._raylet" in sys.modules:
        try:
            from ray._raylet import AuthenticationTokenLoader, Config

            Config.initialize("")
            AuthenticationTokenLoader.instance().reset_cache()
        except (ImportError, AttributeError):  # another Ray version: the environment must come first
            pass


def user_ray_token() -> str | None:
    """The token of a Ray cluster the user started (``--ray-address``), found where Ray's own CLI looks.

    Ray 2.60's ``ray start --head`` turns token auth on and writes ``~/.ray/auth_token``, but a driver
    that connects to an explicit address never looks for it, so the head would be refused. The order is
    Ray's: ``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH`` names, ``~/.ray/auth_token``. A token sent
    to a cluster without auth is ignored there; ``RAY_AUTH_MODE=disabled`` set by the user means none.
    """
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return None
    if token := os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return token
    for path in (os.environ.get("RAY_AUTH_TOKEN_PATH"), str(Path.home() / ".ray" / "auth_token")):
        if path and Path(path).is_file():
            token = Path(path).read_text().strip()
            if token:
                return token
    return None


def ray_temp_dir(data_dir: Path) -> Path:
    """A short, private temp dir per data dir (Ray's socket paths must stay under ~107 bytes)."""
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:10]
    return Path("/tmp") / f"lattice-ray-{digest}"


def ray_version() -> str:
    import ray

    return str(ray.__version__)


def node_ip() -> str:
    from ray._private.services import get_node_ip_address

    return get_node_ip_address()


class RayProcess:
    """One ``ray start --block`` process group (a head node or a worker node)."""

    def __init__(self, data_dir: Path, log_name: str) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / "logs" / log_name
        self.proc: subprocess.Popen[bytes] | None = None
        self.address: str | None = None

    @property
    def token(self) -> str:
        return load_or_create_token(self.data_dir / "ray_token")

    def start_head(self, num_cpus: float | None, num_gpus: float | None, object_store_mb: int) -> str:
        port = free_port()
        args = [
            "--head", f"--port={port}",
            f"--object-store-memory={object_store_mb * 1024 * 1024}", "--include-dashboard=false",
            "--disable-usage-stats", f"--system-config={json.dumps(HEALTH_CHECK_CONFIG)}",
        ]
        if num_cpus is not None:
            args.append(f"--num-cpus={num_cpus:g}")
        if num_gpus is not None:
            args.append(f"--num-gpus={num_gpus:g}")
        ip = node_ip()
        self._spawn(args, self.token)
        if not wait_for_port(ip, port, RAY_START_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"Ray did not start within {RAY_START_TIMEOUT_S:.0f} s; see {self.log_path}")
        self.address = f"{ip}:{port}"
        return self.address

    def start_worker(self, address: str, token: str, num_cpus: float | None, num_gpus: float | None,
                     object_store_mb: int, node_ip_address: str | None = None, memory_mb: int | None = None,
                     resources: dict[str, float] | None = None, labels: dict[str, str] | None = None) -> None:
        args = [f"--address={address}", f"--object-store-memory={object_store_mb * 1024 * 1024}",
                "--disable-usage-stats"]
        if memory_mb is not None:
            args.append(f"--memory={memory_mb * 1024 * 1024}")
        if resources:
            args.append(f"--resources={json.dumps(resources)}")
        if labels:
            args.append("--labels=" + ",".join(f"{k}={v}" for k, v in labels.items()))
        if num_cpus is not None:
            args.append(f"--num-cpus={num_cpus:g}")
        if num_gpus is not None:
            args.append(f"--num-gpus={num_gpus:g}")
        if node_ip_address:
            args.append(f"--node-ip-address={node_ip_address}")
        self._spawn(args, token)
        self.address = address

    def _spawn(self, args: list[str], token: str) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        temp_dir = ray_temp_dir(self.data_dir)
        # Ray's own CLI module, run by this interpreter: works without the `ray` script on PATH
        # (a --target install, a venv that is not activated).
        ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
        env = {**os.environ, **ray_env(token)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*ray_cli, "start", "--block", f"--temp-dir={temp_dir}", *args],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        time.sleep(0.2)
        if self.proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {self.proc.returncode}; see {self.log_path}")

    def adopt(self, pgid: int, address: str, timeout: float = 10.0) -> bool:
        """Take over a Ray head a crashed head of this data dir left running (``pgid``, at ``address``), so it
        is stopped with this one instead of leaking; False (and nothing adopted) when it does not answer."""
        host, _, port = address.rpartition(":")
        if not port.isdigit() or not wait_for_port(host, int(port), timeout):
            return False
        self._adopted = pgid
        self.address = address
        return True

    @property
    def pgid(self) -> int | None:
        if self.proc is not None:
            return self.proc.pid
        return getattr(self, "_adopted", None)

    def stop(self, timeout: float = 3.0) -> None:
        adopted = getattr(self, "_adopted", None)
        if adopted is not None:
            kill_process_group(adopted, timeout)
            self._adopted = None
        if self.proc is None:
            return
        kill_process_group(self.proc.pid, timeout)
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None


def kill_process_group(pgid: int, timeout: float = 15.0) -> None:
    """SIGTERM a process group, then SIGKILL what is left after ``timeout`` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        _reap(pgid)
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
