"""Starts and stops real heads for tests and benchmarks: a subprocess each, stopped by its PID."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lattice.utils.net import free_port

_PR_SET_PDEATHSIG = 1


def _term_when_the_starter_dies(starter: int) -> None:
    """Runs in the head's process before exec: SIGTERM it when the process that started it dies, so a test run
    or benchmark killed outright (where no finalizer runs) leaves no head behind; the head stops its own Ray
    on SIGTERM. Linux ties this to the starting *thread*, hence only for heads started on the main thread."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != starter:  # the starter died before the signal was armed
        os._exit(1)


@dataclass
class HeadProcess:
    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    #: the head's working directory and extra environment (e.g. a head started in a user's $HOME)
    cwd: Path | None = None
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text().strip()

    @property
    def log_path(self) -> Path:
        return self.data_dir / "test-head.log"

    def start(self, timeout: float = 120.0) -> HeadProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "lattice.cli.main", "start", "--head", "--block", "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--object-store-mb", "256", *self.extra_args]
        with open(self.log_path, "ab") as log:
            env = {**os.environ, **self.env} if self.env else None
            starter = os.getpid()
            on_main = threading.current_thread() is threading.main_thread() and sys.platform == "linux"
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, cwd=self.cwd, env=env,
                                         preexec_fn=(lambda: _term_when_the_starter_dies(starter)) if on_main
                                         else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"head exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"head did not start in {timeout} s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> float:
        """SIGTERM the head (it stops its own Ray); returns the seconds it took. Kills leftovers by group."""
        if self.proc is None:
            return 0.0
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        took = time.monotonic() - started
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything left in the head's own group
        except ProcessLookupError:
            pass
        self.proc = None
        return took
