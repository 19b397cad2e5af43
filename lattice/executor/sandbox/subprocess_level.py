"""Levels ``subprocess`` and ``seccomp``: run one task in a warm launcher and watch it to the end.

The calling thread (one of the worker's I/O threads) sends the task frame, then runs one
``selectors`` loop over the child's stdout, stderr and result pipe until the task has ended or its
deadline passes. Output is drained continuously into bounded tail buffers (a task that prints 1 GB
costs the worker a pipe copy, never memory), the result frame is bounded by ``max_result_bytes``,
and at the deadline every process in the task's cgroups is killed, daemons included.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

from lattice.errors import ErrorKind
from lattice.executor import livelog
from lattice.executor.sandbox import cgroups
from lattice.executor.sandbox.config import SandboxConfig
from lattice.executor.sandbox.outcome import SandboxOutcome, TailBuffer, sandbox_error, with_stderr_tail
from lattice.executor.sandbox.pool import Launcher, get_pool, reaper
from lattice.executor.sandbox.protocol import ProtocolError, pack_task, parse_result

CHUNK = 1 << 20
EXIT_GRACE_S = 0.5
RESULT_HEADER_ALLOWANCE = 8 * 1024 * 1024


def task_env(workdir: str, env: dict[str, str] | None) -> dict[str, str]:
    """The whole environment of a task: a minimal base plus exactly what the caller passes."""
    base = {
        "PATH": os.pathsep.join(
            [os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        ),
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
    }
    return {**base, **(env or {})}


def task_header(config: SandboxConfig, workdir: str, outputs: list[str], env: dict[str, str] | None) -> dict:
    return {
        "level": str(config.level),
        "network": config.network,
        "workdir": workdir,
        "env": task_env(workdir, env),
        "outputs": list(outputs),
        "max_result_bytes": config.max_result_bytes,
        "workdir_mb": config.max_workdir_mb,
        "shm_mb": min(config.shm_size_mb, config.max_memory_mb or config.shm_size_mb),
        "limits": {
            "memory_mb": config.max_memory_mb,
            "cpu_s": config.max_cpu_seconds,
            "fsize_mb": config.max_file_size_mb,
            "nofile": config.max_open_files,
        },
        "extra_read": list(config.extra_read_paths),
        "extra_write": list(config.extra_write_paths),
        "pool_socket": config.pool_socket if not config.network else None,
    }


class _Run:
    """The watch over one launcher: pipes, buffers, deadline and the cgroups to kill."""

    def __init__(self, launcher: Launcher, config: SandboxConfig, cgroup: cgroups.TaskCgroup | None) -> None:
        self.launcher = launcher
        self.config = config
        self.cgroup = cgroup
        live = livelog.current()  # this thread's attempt, when its output streams live
        self.stdout = TailBuffer(config.output_limit_bytes, live.sink("stdout") if live else None)
        self.stderr = TailBuffer(config.output_limit_bytes, live.sink("stderr") if live else None)
        self.result = bytearray()
        self.result_too_large = False
        self.timed_out = False
        self.exit_code: int | None = None

    def kill(self) -> None:
        if self.cgroup is not None and self.cgroup.tracked:
            self.cgroup.kill_all()
        self.launcher.kill()

    def watch(self, frame: bytes, deadline: float | None) -> None:
        launcher = self.launcher
        sel = selectors.DefaultSelector()
        status = bytearray()
        readers: dict[int, Any] = {
            launcher.stdout_fd: self.stdout,
            launcher.stderr_fd: self.stderr,
            launcher.result_fd: self.result,
            launcher.status_fd: status,
        }
        for fd in readers:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        os.set_blocking(launcher.stdin_fd, False)
        sel.register(launcher.stdin_fd, selectors.EVENT_WRITE)
        pending = memoryview(frame)
        result_cap = self.config.max_result_bytes + RESULT_HEADER_ALLOWANCE
        exited_at: float | None = None
        try:
            while readers:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    self.timed_out = True
                    self.kill()
                    break
                if exited_at is None and launcher.status_fd not in readers:
                    exited_at = now
                if exited_at is not None and now - exited_at > EXIT_GRACE_S:
                    self.kill()  # something outside a PID namespace still holds the pipes
                    break
                timeout = 0.05 if exited_at is not None else 0.5
                if deadline is not None:
                    timeout = max(0.0, min(timeout, deadline - now))
                for key, _ in sel.select(timeout):
                    fd = key.fd
                    if fd == launcher.stdin_fd:
                        try:
                            pending = pending[os.write(fd, pending[:CHUNK]) :]
                        except BrokenPipeError:
                            pending = pending[:0]
                        if not pending:
                            sel.unregister(fd)  # stdin stays open: its EOF tells the launcher we died
                        continue
                    try:
                        data = os.read(fd, CHUNK)
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(fd)
                        del readers[fd]
                    elif fd == launcher.result_fd and len(self.result) + len(data) > result_cap:
                        self.result_too_large = True
                        self.kill()
                        return
                    elif isinstance(readers[fd], bytearray):
                        readers[fd] += data
                    else:
                        readers[fd].write(data)
        finally:
            sel.close()
            # 4 bytes: the launcher's own exit code; none: the launcher itself was killed
            self.exit_code = int.from_bytes(status[:4], "big") if len(status) >= 4 else None


def execute_in_child(
    fn_blob: bytes,
    inputs: dict[str, tuple[str, bytes]],
    outputs: list[str],
    config: SandboxConfig,
    env: dict[str, str] | None = None,
) -> SandboxOutcome:
    """Run one task at level subprocess or seccomp (see the module docstring).

    ``fn_blob`` and ``inputs`` stay encoded: only the child decodes them, inside the sandbox.
    """
    started = time.monotonic()
    deadline = started + config.timeout if config.timeout else None
    workdir = tempfile.mkdtemp(prefix="lattice-task-")
    os.chmod(workdir, 0o700)
    launcher = get_pool().take()
    cgroup = launcher.cgroup
    run = _Run(launcher, config, cgroup)
    try:
        cgroup.set_limits(config.max_memory_mb, config.max_processes, config.max_cpus)
        frame = pack_task(task_header(config, workdir, outputs, env), fn_blob, inputs)
        run.watch(frame, deadline)
        run.kill()  # the task has ended: nothing of it may stay
        result = _conclude(run, outputs)
        info = {
            "pid_limit_hit": cgroup.pids_limit_hit(),
            "memory_peak_bytes": cgroup.memory_peak_bytes(),
            "cgroups": sorted(cgroup.paths),
        }
    finally:
        run.kill()  # synchronous: every process of the task is gone when this returns
        reaper.submit(launcher)  # its pipes and cgroups: off the task's path
        shutil.rmtree(workdir, ignore_errors=True)  # empty on the host (the task's was a tmpfs of its own)
    stdout, stderr = run.stdout.text(), run.stderr.text()
    result.error = with_stderr_tail(result.error, stderr)
    return SandboxOutcome(result, stdout, stderr, time.monotonic() - started, info)


def _conclude(run: _Run, outputs: list[str]) -> Any:
    from lattice.executor.invoke import InvocationResult

    config, stderr = run.config, run.stderr.text()
    if run.timed_out:
        message = f"the task ran past its timeout of {config.timeout:g} s and was killed with all its processes"
        return InvocationResult(error=sandbox_error(ErrorKind.TIMEOUT, message, stderr, {"limit": "timeout"}))
    if run.result_too_large:
        message = f"the task's result exceeds the limit of {config.max_result_bytes} bytes"
        return InvocationResult(error=sandbox_error(ErrorKind.OUTPUT_TOO_LARGE, message, stderr))
    if run.result:
        try:
            return parse_result(bytes(run.result), outputs)
        except (ProtocolError, ValueError, TypeError) as exc:
            message = f"the task's process sent a malformed result ({exc})"
            return InvocationResult(error=sandbox_error(ErrorKind.SANDBOX_VIOLATION, message, stderr))
    code = run.exit_code
    cgroup = run.cgroup
    memory = f"{config.max_memory_mb} MB" if config.max_memory_mb else "the machine's memory"
    if cgroup is not None and cgroup.oom_kills() > 0:
        message = f"the task used more than its memory limit of {memory} and was killed"
        return InvocationResult(error=sandbox_error(ErrorKind.MEMORY_EXCEEDED, message, stderr))
    if code is not None and code > 128:
        sig = code - 128
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGXCPU:
            message = f"the task used more than its CPU time limit of {config.max_cpu_seconds} s"
            return InvocationResult(error=sandbox_error(ErrorKind.TIMEOUT, message, stderr, {"limit": "cpu"}))
        if sig == signal.SIGKILL and cgroup is not None and cgroup.memory_failcnt() > 0:
            message = f"the task hit its memory limit of {memory} and was killed"
            return InvocationResult(error=sandbox_error(ErrorKind.MEMORY_EXCEEDED, message, stderr))
        if sig == signal.SIGSYS:
            message = "the task made a system call the sandbox forbids and was killed"
            return InvocationResult(error=sandbox_error(ErrorKind.SANDBOX_VIOLATION, message, stderr))
        message = f"the task's process was killed by {name} before it returned a result"
        return InvocationResult(error=sandbox_error(ErrorKind.KILLED, message, stderr, {"signal": name}))
    if code is None:
        message = "the task's launcher process was killed before the task returned a result"
        return InvocationResult(error=sandbox_error(ErrorKind.KILLED, message, stderr))
    message = f"the task's process exited with code {code} before it returned a result"
    return InvocationResult(error=sandbox_error(ErrorKind.KILLED, message, stderr, {"exit_code": code}))


__all__ = ["execute_in_child", "task_env", "task_header"]
