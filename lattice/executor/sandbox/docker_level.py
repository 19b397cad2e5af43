"""Level ``docker``: one hardened, throwaway container per task, through the Docker SDK.

:func:`container_kwargs` is pure (the unit tests pin the exact configuration sent): no network,
every capability dropped, ``no-new-privileges``, a read-only root with a tmpfs ``/work``, pids and
memory limits (``memswap_limit == mem_limit``: no swap), CPU quota, rlimits, user 65534, a log
driver that keeps only the tail of stdout/stderr. The task frame goes in and the result comes out
through a small per-task directory bind-mounted at ``/lattice/io``; inside, the same child code as
the other levels runs the task (and loads the same seccomp filter). At the timeout the container is
killed; it is always removed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import stat
import sys
import tempfile
import time
from typing import Any

from lattice.errors import ErrorKind
from lattice.executor.invoke import InvocationResult
from lattice.executor.sandbox.config import SandboxConfig
from lattice.executor.sandbox.docker_image import SANDBOX_UID
from lattice.executor.sandbox.outcome import SandboxOutcome, sandbox_error, with_stderr_tail
from lattice.executor.sandbox.paths import child_python_path, task_read_paths
from lattice.executor.sandbox.protocol import ProtocolError, pack_task, parse_result
from lattice.executor.sandbox.subprocess_level import RESULT_HEADER_ALLOWANCE, task_header

IO_DIR = "/lattice/io"
#: where the worker's pool gateway socket appears in the container (``SandboxConfig.pool_socket``)
POOL_DIR = "/lattice/pools"
WORKDIR = "/work"
MIB = 1024 * 1024
_NEVER_BOUND = frozenset({"/", "/etc", "/root", "/home", "/tmp", "/work", "/lattice", "/proc", "/sys", "/dev"})


def host_python_mounts() -> dict[str, dict[str, str]]:
    """Read-only binds that make the worker's interpreter and import paths work in the image."""
    # the interpreter's own paths and the lattice package: never the worker's sys.path (see paths.py)
    paths = ["/usr", "/etc/ld.so.cache", "/etc/localtime", *task_read_paths()]
    binds: dict[str, dict[str, str]] = {}
    for path in sorted(set(paths), key=len):
        if not os.path.exists(path) or os.path.realpath(path) in _NEVER_BOUND:
            continue
        if any(path == b or path.startswith(b.rstrip("/") + "/") for b in binds):
            continue  # already inside a bound directory
        binds[path] = {"bind": path, "mode": "ro"}
    return binds


def container_kwargs(config: SandboxConfig, io_dir: str, env: dict[str, str]) -> dict[str, Any]:
    """Everything ``client.containers.create`` gets for one task (pure: no engine needed)."""
    from docker.types import LogConfig, Ulimit

    python = sys.executable if config.docker_mount_host_python else "python3"
    volumes = {io_dir: {"bind": IO_DIR, "mode": "rw"}}
    if config.pool_socket and not config.network:  # connect(2) to a socket needs it writable
        volumes[os.path.dirname(config.pool_socket)] = {"bind": POOL_DIR, "mode": "rw"}
    if config.docker_mount_host_python:
        volumes.update(host_python_mounts())
    ulimits = [Ulimit(name="core", soft=0, hard=0)]
    if config.max_open_files:
        ulimits.append(Ulimit(name="nofile", soft=config.max_open_files, hard=config.max_open_files))
    if config.max_file_size_mb:
        size = config.max_file_size_mb * MIB
        ulimits.append(Ulimit(name="fsize", soft=size, hard=size))
    if config.max_cpu_seconds:
        ulimits.append(Ulimit(name="cpu", soft=config.max_cpu_seconds, hard=config.max_cpu_seconds + 1))
    log_bytes = max(config.output_limit_bytes * 2, MIB)
    tmpfs_mb = min(config.max_workdir_mb, config.max_memory_mb or config.max_workdir_mb)
    kwargs: dict[str, Any] = {
        "image": config.docker_image,
        "command": [
            python,
            "-m",
            "lattice.executor.sandbox.child",
            "--oneshot",
            f"{IO_DIR}/task.bin",
            f"{IO_DIR}/result.bin",
        ],
        "user": f"{SANDBOX_UID}:{SANDBOX_UID}",
        "network_mode": "none" if not config.network else "bridge",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "tmpfs": {WORKDIR: f"rw,nosuid,nodev,size={tmpfs_mb}m,mode=1777", "/tmp": "rw,nosuid,nodev,size=64m,mode=1777"},
        "working_dir": WORKDIR,
        "environment": env,
        "volumes": volumes,
        "ulimits": ulimits,
        "log_config": LogConfig(type="json-file", config={"max-size": str(log_bytes), "max-file": "1"}),
        "labels": {"lattice.sandbox": "task"},
        "detach": True,
        "stdin_open": False,
        "tty": False,
        "init": False,
        "ipc_mode": "private",
        "shm_size": f"{min(config.shm_size_mb, config.max_memory_mb or config.shm_size_mb)}m",
    }
    if config.max_processes:
        kwargs["pids_limit"] = config.max_processes
    if config.max_memory_mb:
        kwargs["mem_limit"] = f"{config.max_memory_mb}m"
        kwargs["memswap_limit"] = f"{config.max_memory_mb}m"
    if config.max_cpus:
        kwargs["nano_cpus"] = int(config.max_cpus * 1e9)
    return kwargs


@functools.lru_cache(maxsize=8)
def _client(host: str | None) -> Any:
    import docker

    return docker.DockerClient(base_url=host, timeout=60) if host else docker.from_env(timeout=60)


def _tail(data: bytes, limit: int) -> str:
    if len(data) <= limit:
        return data.decode("utf-8", errors="replace")
    body = data[-limit:].decode("utf-8", errors="replace")
    return f"[... earlier output dropped by the sandbox's output cap ...]\n{body}"


def execute_in_container(
    fn_blob: bytes,
    inputs: dict[str, tuple[str, bytes]],
    outputs: list[str],
    config: SandboxConfig,
    env: dict[str, str] | None = None,
) -> SandboxOutcome:
    """Run one task in a fresh container (see the module docstring)."""
    started = time.monotonic()
    io_dir = tempfile.mkdtemp(prefix="lattice-docker-io-")
    header = task_header(config, WORKDIR, outputs, env)
    header["env"]["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"])
    header["env"]["PYTHONPATH"] = child_python_path()
    if header.get("pool_socket"):
        header["pool_socket"] = f"{POOL_DIR}/{os.path.basename(header['pool_socket'])}"
    with open(os.path.join(io_dir, "task.bin"), "wb") as fh:
        fh.write(pack_task(header, fn_blob, inputs))
    os.chmod(os.path.join(io_dir, "task.bin"), 0o644)
    with contextlib.suppress(PermissionError):
        os.chown(io_dir, SANDBOX_UID, SANDBOX_UID)
    container = None
    timed_out = False
    try:
        client = _client(config.docker_host)
        container = client.containers.create(**container_kwargs(config, io_dir, header["env"]))
        container.start()
        try:
            container.wait(timeout=config.timeout or None)
        except Exception:  # noqa: BLE001 - the SDK raises requests' ReadTimeout/ConnectionError
            timed_out = True
            with contextlib.suppress(Exception):
                container.kill()
            container.wait(timeout=30)
        container.reload()
        state = container.attrs.get("State", {})
        stdout = _tail(container.logs(stdout=True, stderr=False), config.output_limit_bytes)
        stderr = _tail(container.logs(stdout=False, stderr=True), config.output_limit_bytes)
        result = _conclude(config, outputs, io_dir, state, timed_out, stderr)
    except Exception as exc:  # noqa: BLE001 - engine errors become a typed task error, never a crash
        stdout, stderr = "", ""
        message = f"the docker sandbox could not run the task: {type(exc).__name__}: {exc}"
        result = InvocationResult(error=sandbox_error(ErrorKind.INTERNAL, message))
    finally:
        if container is not None:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        shutil.rmtree(io_dir, ignore_errors=True)
    result.error = with_stderr_tail(result.error, stderr)
    return SandboxOutcome(result, stdout, stderr, time.monotonic() - started, {"engine": "docker"})


def _conclude(
    config: SandboxConfig, outputs: list[str], io_dir: str, state: dict[str, Any], timed_out: bool, stderr: str
) -> InvocationResult:
    if timed_out:
        message = f"the task ran past its timeout of {config.timeout:g} s; its container was killed"
        return InvocationResult(error=sandbox_error(ErrorKind.TIMEOUT, message, stderr, {"limit": "timeout"}))
    try:
        data = _read_result_file(os.path.join(io_dir, "result.bin"), config.max_result_bytes + RESULT_HEADER_ALLOWANCE)
    except _ResultTooLarge:
        message = f"the task's result exceeds the limit of {config.max_result_bytes} bytes"
        return InvocationResult(error=sandbox_error(ErrorKind.OUTPUT_TOO_LARGE, message, stderr))
    except ProtocolError as exc:
        message = f"the task's container left a result that is not a plain file ({exc})"
        return InvocationResult(error=sandbox_error(ErrorKind.SANDBOX_VIOLATION, message, stderr))
    if data:
        try:
            return parse_result(data, outputs)
        except (ProtocolError, ValueError, TypeError) as exc:
            message = f"the task's container wrote a malformed result ({exc})"
            return InvocationResult(error=sandbox_error(ErrorKind.SANDBOX_VIOLATION, message, stderr))
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        message = f"the task used more than its memory limit of {config.max_memory_mb} MB; its container was killed"
        return InvocationResult(error=sandbox_error(ErrorKind.MEMORY_EXCEEDED, message, stderr))
    if code == 128 + 24:
        message = f"the task used more than its CPU time limit of {config.max_cpu_seconds} s"
        return InvocationResult(error=sandbox_error(ErrorKind.TIMEOUT, message, stderr, {"limit": "cpu"}))
    message = f"the task's container exited with code {code} before the task returned a result"
    return InvocationResult(error=sandbox_error(ErrorKind.KILLED, message, stderr, {"exit_code": code}))


class _ResultTooLarge(Exception):
    """The result file is over the size limit."""


def _read_result_file(path: str, limit: int) -> bytes:
    """The result file the task wrote into the shared io dir, read without following what it made there.

    The task owns that directory from inside: it can replace ``result.bin`` by a symlink to a host file
    (the head's token), a FIFO (the worker would block) or a device. ``O_NOFOLLOW | O_NONBLOCK`` and a
    regular-file check on the opened descriptor refuse all three; the read is bounded.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise ProtocolError(f"cannot open it: {os.strerror(exc.errno or 0)}") from exc
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ProtocolError("it is not a regular file")
        data = fh.read(limit + 1) if info.st_size <= limit else b""
        if info.st_size > limit or len(data) > limit:
            raise _ResultTooLarge
    return data


__all__ = ["container_kwargs", "execute_in_container", "host_python_mounts"]
