"""The sandbox child: a warm launcher that forks exactly one task, and the task's own setup.

Process tree at levels subprocess and seccomp::

    Ray worker ── zygote (pre-imported fork server; never runs task code)
                   └── launcher (forked ahead of time, moved into the task's cgroups, own session;
                       wired to the worker by five pipes: task in; stdout, stderr, result, status out)
                        └── task: PID 1 of a new PID namespace, own session, scrubbed env, rlimits,
                            own mounts (/proc, read-only /sys, private /dev/shm and workdir tmpfs),
                            no capabilities, [seccomp: net namespace, Landlock, seccomp filter],
                            then (only then) its function and inputs are unpickled and invoke()d

The launcher waits (warm) on its stdin for one task frame, forks the task and reports how it ended
on the status pipe (``128 + signal`` when the task was killed). It kills the task if the worker goes
away (EOF on stdin). The task writes its result frame to an inherited pipe and exits; the end of
PID 1 makes the kernel kill whatever it left behind in its namespace.

At level docker the same task setup runs as ``python -m lattice.executor.sandbox.child --oneshot
IN OUT`` inside the container, reading the task from a file and writing the result to one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import selectors
import signal
import sys
from typing import Any

import cloudpickle

from lattice.executor.invoke import InvocationResult, invoke
from lattice.executor.sandbox import landlock, levels, loopback, namespaces, privileges, seccomp_filter
from lattice.executor.sandbox.protocol import decode_inputs, pack_result, read_frame
from lattice.executor.sandbox.spans import recording
from lattice.executor.sandbox.violations import CallRecorder, classify, internal_error
from lattice.wire.ports import SANDBOX_POOL_PORT

PR_SET_PDEATHSIG = 1
_status_fd = -1  # the launcher's report pipe; closed in the task so that it cannot forge a report
MAX_TASK_FRAME = 1 << 40
_libc = ctypes.CDLL(None, use_errno=True)


def apply_rlimits(limits: dict[str, Any]) -> None:
    """Per-process limits; a value already lower (set by an outer sandbox) is kept."""
    mib = 1024 * 1024
    wanted = {
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_DATA: limits.get("memory_mb") and limits["memory_mb"] * mib,
        resource.RLIMIT_CPU: limits.get("cpu_s"),
        resource.RLIMIT_FSIZE: limits.get("fsize_mb") and limits["fsize_mb"] * mib,
        resource.RLIMIT_NOFILE: limits.get("nofile"),
    }
    for which, value in wanted.items():
        if value is None:
            continue
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        # CPU: SIGXCPU at the soft limit, SIGKILL one second later if it is ignored
        new_hard = value + 1 if which == resource.RLIMIT_CPU and hard == resource.RLIM_INFINITY else value
        resource.setrlimit(which, (value, new_hard))


def run_task(
    header: dict[str, Any],
    blobs: list[bytes],
    ruleset: landlock.Ruleset | None,
    syscall_names: dict[int, str],
) -> bytes:
    """Set the task's process up, then decode and run it through :func:`invoke`; the result frame.

    Order matters: limits and mounts need root's capabilities, Landlock needs its paths opened in the
    final mount namespace, the capabilities go before any user byte is decoded, and the seccomp filter
    comes last (it forbids what the setup itself needs, such as ``mount``).
    """
    level = header["level"]
    parts = levels.profile(level)
    network = bool(header.get("network"))
    # set by the launcher (or the docker one-shot) only once the task's namespace holds the pool forwarder
    pool_loopback = bool(header.get("pool_loopback")) and not network
    workdir = header["workdir"]
    recorder: CallRecorder | None = None
    try:
        if header.get("setup_error"):
            raise OSError(header["setup_error"])
        apply_rlimits(header["limits"])
        if parts.private_mounts and header.get("private_mounts"):
            namespaces.private_mounts(workdir, header["workdir_mb"], header["shm_mb"])
        os.chdir(workdir)
        os.environ.clear()
        os.environ.update(header["env"])
        if parts.landlock and ruleset is not None:
            ruleset.allow([workdir, "/dev/shm", *header.get("extra_write", [])], landlock.READ | landlock.WRITE)
            ruleset.allow(["/proc", *header.get("extra_read", [])], landlock.READ)
            if pool_loopback:  # TCP connect to the pool port only (the namespace has nothing else)
                ruleset.allow_connect(SANDBOX_POOL_PORT)
            ruleset.restrict_self()
        privileges.drop_all()
        if parts.seccomp_filter:  # docker: the same filter again, inside the container
            # with the pool forwarder, the task needs a TCP socket to reach it: the network-on filter (no
            # AF_UNIX socket at all, no raw socket), inside a network namespace whose only listener is
            # the forwarder; compiled once in the zygote: here one prctl
            seccomp_filter.install(network or pool_loopback)
        recorder = CallRecorder(syscall_names)
        recorder.install()
    except BaseException as exc:  # noqa: BLE001 - report, never run the task half-sandboxed
        return pack_result(InvocationResult(error=internal_error(exc)))

    captured: dict[str, BaseException] = {}

    def call(params: dict[str, Any]) -> Any:
        try:
            fn = cloudpickle.loads(blobs[0])
            return fn(params)
        except BaseException as exc:
            captured["exc"] = exc
            if recorder is not None:
                recorder.frozen = True
            raise

    try:
        params = decode_inputs(header, blobs)
    except BaseException as exc:  # noqa: BLE001 - an input's own __reduce__ may raise anything
        captured["exc"] = exc
        result = invoke(_raiser(exc), {}, header["outputs"], header["max_result_bytes"])
    else:
        with recording(os.environ) as spans:  # only with TRACEPARENT (tracing on) and OTel installed
            result = invoke(call, params, header["outputs"], header["max_result_bytes"])
        result.spans = spans
    if result.error is not None and "exc" in captured:
        result.error = classify(captured["exc"], result.error, level, network, recorder)
    return pack_result(result)


def _raiser(exc: BaseException) -> Any:
    def fail(_params: dict[str, Any]) -> Any:
        raise exc

    return fail


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _task_main(header: dict[str, Any], blobs: list[bytes], result_fd: int, ruleset: Any, names: Any) -> None:
    """In the forked task process; never returns."""
    code = 0
    try:
        if _status_fd >= 0:
            os.close(_status_fd)
        os.setsid()
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        with contextlib.suppress(Exception):  # a log is read live (``lattice.executor.livelog``): line by line
            sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
            sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        frame = run_task(header, blobs, ruleset, names)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        _write_all(result_fd, frame)
    except BaseException:  # noqa: BLE001
        code = 70
    os._exit(code)


def launcher_from_fds(fds: list[int], names: dict[int, str]) -> int:
    """In a launcher just forked by the zygote: wire the worker's pipes, run one task, report."""
    global _status_fd
    stdin, stdout, stderr, result_fd, status_fd = fds
    _status_fd = status_fd
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
        os.close(fd)
    os.setsid()
    code = 70
    try:
        code = _launcher(result_fd, names)
    finally:
        with contextlib.suppress(OSError):
            _write_all(status_fd, code.to_bytes(4, "big"))
    return code


def _launcher(result_fd: int, names: dict[int, str]) -> int:
    """Warm launcher: wait for one task frame, fork it, mirror its end, return the exit code."""
    os.set_inheritable(result_fd, False)
    warm_ruleset = landlock.prepare(network=False)  # per launcher: a ruleset fd must not be shared
    in_pid_ns = namespaces.enter_pid_namespace()  # nothing may fork between this and the task
    try:
        own_mounts = in_pid_ns and namespaces.enter_mount_namespace()
    except OSError as exc:  # half a mount namespace: no task may run in it
        own_mounts = exc
    try:
        header, blobs = read_frame(sys.stdin.buffer, MAX_TASK_FRAME)
    except (EOFError, ValueError):
        return 0  # the worker went away (or closed an unused launcher)
    ruleset = None
    parts = levels.profile(header["level"])
    if parts.landlock:
        ruleset = warm_ruleset if not header.get("network") else landlock.prepare(True)
    if warm_ruleset is not None and ruleset is not warm_ruleset:
        warm_ruleset.close()  # unused (level subprocess, or the network-on one instead): not the task's
    forwarder = None
    if parts.network_namespace and not header.get("network"):
        if namespaces.isolate_network() and header.get("pool_socket"):
            forwarder = _pool_listener()
    header["pool_loopback"] = forwarder is not None
    header["private_mounts"] = own_mounts is True
    if isinstance(own_mounts, OSError):
        header["setup_error"] = f"cannot make the task's mount namespace: {own_mounts}"
    landlock.release()  # the zygote's resolved base rules (O_PATH fds): the task holds none of them
    pid = os.fork()
    if pid == 0:
        if forwarder is not None:
            forwarder.close()  # the task never holds the listener
        _task_main(header, blobs, result_fd, ruleset, names)
    os.close(result_fd)
    # the forwarder runs here, in the launcher's own loop: outside the task's PID namespace and filters
    return _supervise(pid, loopback.Forwarder(forwarder, header["pool_socket"]) if forwarder else None)


def _pool_listener() -> Any:
    """The pool forwarder's listener in the task's network namespace, or None (the task then finds the
    network off, as without pools: a failure here must never widen what the task may do)."""
    try:
        return loopback.listen()
    except OSError as exc:
        print(f"lattice: model pools unreachable from this task: {exc}", file=sys.stderr)
        return None


def _supervise(pid: int, forwarder: loopback.Forwarder | None = None) -> int:
    pidfd = os.pidfd_open(pid)
    stdin = sys.stdin.buffer.fileno()
    watch = forwarder.selector if forwarder is not None else selectors.DefaultSelector()
    watch.register(pidfd, selectors.EVENT_READ, "task")
    watch.register(stdin, selectors.EVENT_READ, "worker")
    while True:
        for key, mask in watch.select():
            if forwarder is not None and forwarder.dispatch(key, mask):
                continue
            if key.data == "worker" and not os.read(stdin, 4096):
                watch.unregister(stdin)  # worker gone: kill the task (its PID namespace goes with it)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            elif key.data == "task":
                _, status = os.waitpid(pid, 0)
                if os.WIFSIGNALED(status):
                    return 128 + os.WTERMSIG(status)
                return os.WEXITSTATUS(status)


def _oneshot(task_path: str, result_path: str) -> int:
    """Docker: one task from a file, result to a file (the container is the sandbox around it)."""
    with open(task_path, "rb") as fh:
        header, blobs = read_frame(fh, MAX_TASK_FRAME)
    header["pool_loopback"] = False
    if header.get("pool_socket") and not header.get("network"):
        header["pool_loopback"] = _fork_forwarder(header["pool_socket"])
    frame = run_task(header, blobs, None, seccomp_filter.syscall_numbers())
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    with open(result_path, "wb") as fh:
        fh.write(frame)
    return 0


def _fork_forwarder(gateway_path: str) -> bool:
    """Docker: the pool forwarder as a process of its own, forked before the task's filter and code (the
    container's ``--network none`` namespace is the wall; the forwarder only carries bytes to the gateway,
    which decides). It dies with the container's PID 1, which is this process."""
    server = _pool_listener()
    if server is None:
        return False
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            loopback.Forwarder(server, gateway_path).run()
        except BaseException:  # noqa: BLE001
            code = 70
        os._exit(code)
    server.close()
    return True


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[1] == "--oneshot":
        return _oneshot(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == "--zygote":
        if sys.path and sys.path[0] in ("", os.getcwd()):
            sys.path.pop(0)  # ``-m`` put the working directory ("/") first; tasks must not import from it
        from lattice.executor.sandbox.zygote import serve

        return serve(int(argv[2]))
    print("usage: python -m lattice.executor.sandbox.child --zygote SOCKET_FD | --oneshot TASK RESULT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    os._exit(main(sys.argv))
