"""Fixtures for the sandbox tests: a private Docker engine, and the probes' context.

``private_dockerd()`` starts ``dockerd`` on a private socket with ``--bridge=none --iptables=false``
(works on these machines without touching the host's network), builds the task image and stops the
engine by PID afterwards. Use from pytest with::

    from tests.integration.sandbox_fixtures import docker_engine, probe_context  # noqa: F401

``docker_engine`` (session scope) yields the engine URL (``unix:///.../docker.sock``) or skips with
the reason where no engine can be started. ``DOCKER_HOST`` set by the caller is used as it is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox_probes import MARKER_DIR


def _ping(url: str) -> str | None:
    try:
        import docker

        docker.DockerClient(base_url=url, timeout=5).ping()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"


def _die_with_parent() -> None:
    """In the forked dockerd: SIGTERM when the test process dies, even if it is killed."""
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def private_dockerd(timeout_s: float = 30.0) -> Iterator[str]:
    """Start a private dockerd, yield its URL, stop it by PID. Raises RuntimeError with the reason."""
    binary = shutil.which("dockerd")
    if binary is None:
        raise RuntimeError("dockerd is not installed (run .ci/setup-sandbox.sh: apt docker.io)")
    if os.geteuid() != 0:
        raise RuntimeError("starting a private dockerd needs root")
    root = tempfile.mkdtemp(prefix="lattice-dockerd-")
    sock = os.path.join(root, "docker.sock")
    url = f"unix://{sock}"
    log = open(os.path.join(root, "dockerd.log"), "wb")
    cmd = [
        binary,
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "-H",
        url,
        "--data-root",
        os.path.join(root, "data"),
        "--exec-root",
        os.path.join(root, "exec"),
        "--pidfile",
        os.path.join(root, "dockerd.pid"),
    ]
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent
    )
    try:
        deadline = time.monotonic() + timeout_s
        error: str | None = "not started"
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.exists(sock) and (error := _ping(url)) is None:
                break
            time.sleep(0.2)
        if error is not None:
            log.flush()
            tail = open(os.path.join(root, "dockerd.log"), "rb").read()[-1500:].decode(errors="replace")
            raise RuntimeError(f"dockerd did not come up ({error}); log tail:\n{tail}")
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        subprocess.run(["umount", "-R", os.path.join(root, "data")], capture_output=True, check=False)
        subprocess.run(["umount", "-R", os.path.join(root, "exec")], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[str]:
    """URL of a Docker engine with the task image built; skips with the reason if none can run."""
    from lattice.executor.sandbox.docker_image import build_image

    existing = os.environ.get("DOCKER_HOST")
    if existing:
        if (error := _ping(existing)) is not None:
            pytest.skip(f"DOCKER_HOST={existing} does not answer: {error}")
        build_image(host=existing)
        yield existing
        return
    try:
        with private_dockerd() as url:
            build_image(host=url)
            yield url
    except RuntimeError as exc:
        pytest.skip(f"no Docker engine can be started here: {exc}")


class ProbeContext:
    """A loopback listener, a decoy process to kill, a secret-holding stand-in for the worker..."""

    def __init__(self) -> None:
        self.secret = f"lattice-secret-{uuid.uuid4().hex}"
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        self.decoy = subprocess.Popen(["sleep", "600"])
        self.holder = subprocess.Popen(["sleep", "600"], env={"LATTICE_PLANTED_SECRET": self.secret})
        self.outside_dir = tempfile.mkdtemp(prefix="lattice-outside-")
        # host unix sockets a task must not reach: a datagram one (think /dev/log) and a stream one
        self.dgram_path = os.path.join(self.outside_dir, "dgram.sock")
        self.dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.dgram.bind(self.dgram_path)
        self.received: list[bytes] = []
        threading.Thread(target=self._receive, daemon=True).start()
        self.stream_path = os.path.join(self.outside_dir, "stream.sock")
        self.stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.stream.bind(self.stream_path)
        self.stream.listen(8)
        shutil.rmtree(MARKER_DIR, ignore_errors=True)  # records of earlier sessions must not count
        os.makedirs(MARKER_DIR, exist_ok=True)

    def _receive(self) -> None:
        while True:
            try:
                self.received.append(self.dgram.recv(4096))
            except OSError:
                return

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with contextlib.suppress(OSError):
                conn.sendall(b"hello")
            conn.close()

    def params(self, level: str) -> dict[str, Any]:
        marker = f"{1000 + uuid.uuid4().int % 9000}.{uuid.uuid4().int % 10**6:06d}"
        ctx = {
            "port": self.server.getsockname()[1],
            "decoy_pid": self.decoy.pid,
            "outside_dir": self.outside_dir,
            "home": os.path.expanduser("~"),
            "secret": self.secret,
            "marker": marker,
            "parent_pid": self.holder.pid,
            "dgram_path": self.dgram_path,
            "stream_path": self.stream_path,
            "marker_dir": MARKER_DIR,
        }
        return {"ctx": ctx, "level": level}

    def close(self) -> None:
        self.server.close()
        self.dgram.close()
        self.stream.close()
        for proc in (self.decoy, self.holder):
            proc.kill()
            proc.wait()
        shutil.rmtree(self.outside_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def probe_context() -> Iterator[ProbeContext]:
    ctx = ProbeContext()
    yield ctx
    ctx.close()


def processes_with(marker: str) -> list[int]:
    """Host PIDs whose command line contains ``marker`` (to prove a daemon is gone)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if marker.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                found.append(int(pid))
    return found
