"""A fork server for launchers: one pre-imported process that forks a fresh launcher per request.

Starting an interpreter and importing Lattice costs ~60 ms of CPU here, which on 2 cores caps a
pool of exec'd launchers at ~20 tasks/s. The zygote imports everything once and then only forks
(~2 ms). It never runs task code, so each launcher it forks is as clean as a freshly exec'd one,
and each launcher still runs exactly one task (the multiprocessing "forkserver" idea).

The worker talks to it over a unix socketpair: a request carries the launcher's five pipe ends
(stdin, stdout, stderr, result, status) as SCM_RIGHTS; the answer is the launcher's PID. The
zygote reaps its children; a launcher reports how its task ended on the status pipe (4 bytes), and
its silence there (EOF) means it was killed itself. The zygote exits when the worker's end of the
socket closes.
"""

from __future__ import annotations

import array
import contextlib
import gc
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

_PID = struct.Struct("!i")
NFDS = 5


def serve(sock_fd: int) -> int:
    """Zygote main loop (in the zygote process)."""
    from lattice.executor.sandbox import child

    signal.signal(signal.SIGCHLD, lambda *_: _reap())
    sock = socket.socket(fileno=sock_fd)
    names = child.seccomp_filter.syscall_numbers()  # find_library forks ldconfig: once, here
    for network in (False, True):  # every task inherits the compiled filters (~2 ms each to build)
        with contextlib.suppress(Exception):  # without libseccomp a seccomp task fails closed later
            child.seccomp_filter.compiled(network)
    with contextlib.suppress(Exception):
        child.privileges.last_cap()
    with contextlib.suppress(OSError):  # ~4 ms of listing, opening and stat'ing per launcher otherwise
        child.landlock.warm()
    # what the zygote holds now is what every fork starts with: the collector of a launcher or a task
    # must not walk (and so copy-on-write) it, nor the zygote's own collector touch it between forks
    gc.collect()
    gc.freeze()
    while True:
        try:
            msg, fds = _recv_fds(sock)
        except (EOFError, OSError):
            return 0
        if not msg:
            return 0
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            sock.close()
            os._exit(child.launcher_from_fds(fds, names))
        for fd in fds:
            os.close(fd)
        sock.sendall(_PID.pack(pid))


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _recv_fds(sock: socket.socket) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    msg, ancdata, _, _ = sock.recvmsg(16, socket.CMSG_SPACE(NFDS * fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return msg, list(fds)


class Zygote:
    """The worker's handle on its zygote (started lazily, restarted if it died). Thread-safe."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "lattice.executor.sandbox.child", "--zygote", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=self._env,
                cwd="/",
            )
        finally:
            theirs.close()
        self._sock = ours

    def fork(self, fds: list[int]) -> int:
        """Ask for a launcher wired to ``fds`` (stdin, stdout, stderr, result, status); its PID."""
        with self._lock:
            for attempt in range(2):
                if self._proc is None or self._proc.poll() is not None:
                    self.close_locked()
                    self._start()
                assert self._sock is not None
                try:
                    self._sock.sendmsg([b"F"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
                    data = b""
                    while len(data) < _PID.size:
                        chunk = self._sock.recv(_PID.size - len(data))
                        if not chunk:
                            raise EOFError("zygote closed its socket")
                        data += chunk
                    return _PID.unpack(data)[0]
                except (OSError, EOFError):
                    self.close_locked()
                    if attempt:
                        raise
        raise RuntimeError("unreachable")

    def close_locked(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.kill()
            with contextlib.suppress(Exception):
                self._proc.wait(timeout=5)
            self._proc = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()


__all__ = ["Zygote", "serve"]
