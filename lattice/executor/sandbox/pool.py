"""A warm pool of launchers: fresh-per-task child processes spawned ahead of time.

Starting a Python interpreter and importing cloudpickle and Lattice costs ~60 ms of CPU here; a
no-op task must not pay it. Launchers are forked by a pre-imported zygote (``zygote.py``, ~2 ms),
and the pool keeps a few of them ready, already moved into their cgroups (~10 ms, a kernel RCU
grace period) and waiting on their stdin; each runs exactly one task and exits (nothing of one task
can leak into the next), and a background thread makes a replacement. Thread-safe: the worker's I/O executor
calls :func:`take` from many threads at once; when the pool is empty the caller spawns its own.

The zygote is started with a scrubbed environment (only what the interpreter needs to find its
modules), its own session and ``/`` as working directory; a launcher holds no file descriptor of the
worker except its five pipes.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import select
import signal
import sys
import threading
from collections import deque
from dataclasses import dataclass

from lattice.executor.sandbox.cgroups import TaskCgroup
from lattice.executor.sandbox.paths import child_python_path
from lattice.executor.sandbox.zygote import Zygote

log = logging.getLogger(__name__)

ENV_POOL_SIZE = "LATTICE_SANDBOX_POOL_SIZE"


def launcher_env() -> dict[str, str]:
    """The launcher's environment: no secret of the worker; the task gets its own env later.

    ``PYTHONPATH`` is only where ``lattice`` comes from, never the worker's ``sys.path`` (see paths.py).
    """
    return {
        "PATH": os.pathsep.join(
            [os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        ),
        "PYTHONPATH": child_python_path(),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
        "HOME": "/nonexistent",
    }


@dataclass
class Launcher:
    """One warm child: its PID (and pidfd, safe against PID reuse) and the worker's ends of its pipes."""

    pid: int
    pidfd: int
    stdin_fd: int
    stdout_fd: int
    stderr_fd: int
    result_fd: int
    #: 4 bytes with the launcher's exit code when it ends; EOF without them: it was killed
    status_fd: int
    #: the task's cgroups, joined at spawn: moving a process between v1 groups takes ~10 ms
    cgroup: TaskCgroup

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def discard(self) -> None:
        """Kill it (if still there), close the worker's ends, remove its cgroups."""
        self.kill()
        for fd in (self.pidfd, self.stdin_fd, self.stdout_fd, self.stderr_fd, self.result_fd, self.status_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.cgroup.remove()

    def alive(self) -> bool:
        ready, _, _ = select.select([self.pidfd], [], [], 0)
        return not ready


_zygote: Zygote | None = None
_zygote_pid = 0
_zygote_lock = threading.Lock()


def _get_zygote() -> Zygote:
    global _zygote, _zygote_pid
    with _zygote_lock:
        if _zygote is None or _zygote_pid != os.getpid():
            _zygote, _zygote_pid = Zygote(launcher_env()), os.getpid()
        return _zygote


def spawn() -> Launcher:
    """A new launcher, forked by the zygote, already in its own (limitless) cgroups."""
    pipes = [os.pipe() for _ in range(5)]  # stdin, stdout, stderr, result, status
    theirs = [pipes[0][0]] + [w for _, w in pipes[1:]]
    ours = [pipes[0][1]] + [r for r, _ in pipes[1:]]
    try:
        pid = _get_zygote().fork(theirs)
        pidfd = os.pidfd_open(pid)
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    cgroup = TaskCgroup()
    try:
        cgroup.add(pid)
    except OSError as exc:
        log.warning("cannot move a sandbox launcher into its cgroup: %s", exc)
    return Launcher(pid, pidfd, *ours, cgroup)


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
                if launcher.alive():
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


class Reaper:
    """Finishes used launchers off the task's path: closing pipes and removing cgroups can take tens of
    milliseconds (a killed process leaves its group lazily), which the caller need not wait for. The
    processes are already dead when a launcher gets here (the caller killed its cgroups)."""

    def __init__(self) -> None:
        self._queue: deque[Launcher] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, launcher: Launcher) -> None:
        with self._cond:
            if self._thread is None or self._pid != os.getpid():
                self._thread = threading.Thread(target=self._run, name="lattice-sandbox-reaper", daemon=True)
                self._pid = os.getpid()
                self._thread.start()
            self._queue.append(launcher)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                launcher = self._queue.popleft()
            launcher.discard()

    def drain(self) -> None:
        """Finish everything queued now, in this thread (at exit)."""
        while True:
            with self._cond:
                if not self._queue:
                    return
                launcher = self._queue.popleft()
            launcher.discard()


reaper = Reaper()

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
    reaper.drain()
    if _zygote is not None and _zygote_pid == os.getpid():
        _zygote.close()


atexit.register(shutdown_pool)

__all__ = ["Launcher", "LauncherPool", "Reaper", "get_pool", "launcher_env", "reaper", "shutdown_pool", "spawn"]
