"""A warm pool of launchers: fresh-per-task child processes spawned ahead of time.

Starting a Python interpreter and importing cloudpickle and Lattice costs ~60 ms of CPU here; a
no-op task must not pay it. The pool keeps a few launchers that have already started and imported
and now wait on their stdin; each runs exactly one task and exits (nothing of one task can leak into
the next), and a background thread spawns a replacement. Thread-safe: the worker's I/O executor
calls :func:`take` from many threads at once; when the pool is empty the caller spawns its own.

Launchers are spawned with a scrubbed environment (only what the interpreter needs to find its
modules), their own session, ``/`` as working directory, and no file descriptor of the worker
except their three pipes and the result pipe.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass

from lattice.executor.sandbox.cgroups import TaskCgroup

log = logging.getLogger(__name__)

ENV_POOL_SIZE = "LATTICE_SANDBOX_POOL_SIZE"


def launcher_env() -> dict[str, str]:
    """The launcher's environment: no secret of the worker; the task gets its own env later."""
    paths = [p for p in sys.path if p and os.path.isabs(p) and os.path.isdir(p)]
    return {
        "PATH": os.pathsep.join(
            [os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        ),
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
        "HOME": "/nonexistent",
    }


@dataclass
class Launcher:
    """One warm child: its process and the read end of the pipe its task writes the result to."""

    process: subprocess.Popen[bytes]
    result_fd: int
    #: the task's cgroups, joined at spawn: moving a process between v1 groups takes ~10 ms
    cgroup: TaskCgroup

    @property
    def pid(self) -> int:
        return self.process.pid

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(OSError):
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        with contextlib.suppress(OSError):
            os.close(self.result_fd)
        self.cgroup.remove()


def spawn() -> Launcher:
    read_fd, write_fd = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "lattice.executor.sandbox.child", str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(write_fd,),
            start_new_session=True,
            env=launcher_env(),
            cwd="/",
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    cgroup = TaskCgroup()
    try:
        cgroup.add(process.pid)
    except OSError as exc:
        log.warning("cannot move a sandbox launcher into its cgroup: %s", exc)
    return Launcher(process, read_fd, cgroup)


class LauncherPool:
    """Keeps ``size`` launchers warm; :meth:`take` hands one out and triggers a refill."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: deque[Launcher] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._refill, name="lattice-sandbox-pool", daemon=True)
        self._thread.start()

    def take(self) -> Launcher:
        with self._cond:
            while self._idle:
                launcher = self._idle.popleft()
                self._cond.notify_all()
                if launcher.process.poll() is None:
                    return launcher
                launcher.discard()
        return spawn()

    def _refill(self) -> None:
        while True:
            with self._cond:
                while not self._closed and len(self._idle) >= self.size:
                    self._cond.wait()
                if self._closed:
                    return
            try:
                launcher = spawn()
            except OSError as exc:
                log.warning("cannot spawn a sandbox launcher: %s", exc)
                with self._cond:
                    self._cond.wait(1.0)
                continue
            with self._cond:
                if self._closed:
                    launcher.discard()
                    return
                self._idle.append(launcher)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = list(self._idle), deque()
            self._cond.notify_all()
        for launcher in idle:
            launcher.discard()


_pool: LauncherPool | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def default_size() -> int:
    try:
        return max(0, int(os.environ[ENV_POOL_SIZE]))
    except (KeyError, ValueError):
        return max(2, min(8, os.cpu_count() or 2))


def get_pool() -> LauncherPool:
    """This process's pool (a forked process gets a new one, never its parent's launchers)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = LauncherPool(default_size())
            _pool_pid = os.getpid()
        return _pool


def shutdown_pool() -> None:
    """Stop the refill thread and kill the idle launchers (also run at interpreter exit)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None and _pool_pid == os.getpid():
        pool.close()


atexit.register(shutdown_pool)

__all__ = ["Launcher", "LauncherPool", "get_pool", "launcher_env", "shutdown_pool", "spawn"]
