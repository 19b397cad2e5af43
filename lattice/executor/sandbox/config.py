"""Sandbox levels and limits: plain values, validated once, shared by every level.

A :class:`SandboxConfig` says *how strictly* (the level) and *how much* (the limits) one task may run.
The process-wide default set with :func:`set_sandbox_config` is what an executor uses when a task
brings no settings of its own; per-task settings are applied with :meth:`SandboxConfig.merged`.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any

from lattice.wire.sandbox import SandboxLevel

MIB = 1024 * 1024

DEFAULT_DOCKER_IMAGE = "lattice-sandbox:local"


@dataclass(frozen=True)
class SandboxConfig:
    """Isolation level and resource limits for a task. ``None`` for a limit means "no limit"."""

    level: SandboxLevel = SandboxLevel.NONE
    #: wall-clock seconds before the task and all its processes are killed (kind ``timeout``)
    timeout: float | None = None
    #: memory of the task's processes together (cgroup), and RLIMIT_DATA of each process
    max_memory_mb: int | None = None
    #: CPU seconds per process (RLIMIT_CPU; the task is killed with kind ``timeout``)
    max_cpu_seconds: int | None = None
    #: processes *and threads* of the task together (cgroup pids.max, docker pids_limit)
    max_processes: int | None = 256
    #: largest file the task may write (RLIMIT_FSIZE)
    max_file_size_mb: int | None = 1024
    #: open file descriptors per process (RLIMIT_NOFILE)
    max_open_files: int | None = 1024
    #: CPU cores the task may use at once (cgroup cpu quota, docker nano_cpus)
    max_cpus: float | None = None
    #: size of the task's working directory, a tmpfs of its own (counted against its memory limit)
    max_workdir_mb: int = 1024
    #: size of the task's private ``/dev/shm`` (a tmpfs; counted against its memory limit)
    shm_size_mb: int = 256
    #: allow network access at levels seccomp and docker (off by default: see docs/security.md)
    network: bool = False
    #: bytes of stdout and of stderr kept (the tail); the rest is read and dropped
    output_limit_bytes: int = 1 * MIB
    #: largest encoded return value (all outputs together) accepted from the task
    max_result_bytes: int = 256 * MIB
    #: image for level docker; see ``lattice.executor.sandbox.docker_image``
    docker_image: str = DEFAULT_DOCKER_IMAGE
    #: Docker engine URL (``unix:///...``); ``None`` uses ``DOCKER_HOST`` or the default socket
    docker_host: str | None = None
    #: bind-mount the worker's own Python read-only into the container (needed by the default image)
    docker_mount_host_python: bool = True
    #: extra paths a seccomp-level task may read (Landlock); the workdir is always read-write
    extra_read_paths: tuple[str, ...] = field(default_factory=tuple)
    #: extra paths a seccomp-level task may write
    extra_write_paths: tuple[str, ...] = field(default_factory=tuple)
    #: the worker's pool gateway (a Unix socket) for a network-off task that declared model pools: the
    #: task reaches it, and nothing else, on ``127.0.0.1:SANDBOX_POOL_PORT`` (``sandbox/loopback.py``)
    pool_socket: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", SandboxLevel.parse(self.level))
        for name in ("timeout", "max_cpus"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise ValueError(f"SandboxConfig.{name} must be a positive number or None, got {value!r}")
        for name in (
            "max_memory_mb",
            "max_cpu_seconds",
            "max_processes",
            "max_file_size_mb",
            "max_open_files",
        ):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"SandboxConfig.{name} must be a positive integer or None, got {value!r}")
        for name in ("output_limit_bytes", "max_result_bytes", "max_workdir_mb", "shm_size_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"SandboxConfig.{name} must be a positive integer, got {value!r}")
        if self.max_processes is not None and self.max_processes < 4:
            raise ValueError("SandboxConfig.max_processes must be at least 4 (the interpreter needs a few)")
        if not isinstance(self.network, bool):
            raise ValueError(f"SandboxConfig.network must be a bool, got {self.network!r}")
        if not self.docker_image:
            raise ValueError("SandboxConfig.docker_image must not be empty")
        object.__setattr__(self, "extra_read_paths", tuple(self.extra_read_paths))
        object.__setattr__(self, "extra_write_paths", tuple(self.extra_write_paths))

    def merged(self, **overrides: Any) -> SandboxConfig:
        """A copy with ``overrides`` applied (validated); unknown names raise ``TypeError``.

        ``None`` is a real value here (it means "no limit"); leave a key out to keep the current value.
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown SandboxConfig field(s) {unknown}; known: {sorted(names)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for logs, the head's settings page and the child's task message)."""
        data = dataclasses.asdict(self)
        data["level"] = str(self.level)
        data["extra_read_paths"] = list(self.extra_read_paths)
        data["extra_write_paths"] = list(self.extra_write_paths)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SandboxConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


_default_lock = threading.Lock()
_default = SandboxConfig()


def set_sandbox_config(config: SandboxConfig) -> None:
    """Set this process's default sandbox configuration (used where a task brings none)."""
    global _default
    if not isinstance(config, SandboxConfig):
        raise TypeError(f"set_sandbox_config expects a SandboxConfig, got {type(config).__name__}")
    with _default_lock:
        _default = config


def get_sandbox_config() -> SandboxConfig:
    """This process's default sandbox configuration (level ``none`` until set)."""
    with _default_lock:
        return _default


__all__ = [
    "DEFAULT_DOCKER_IMAGE",
    "SandboxConfig",
    "SandboxLevel",
    "get_sandbox_config",
    "set_sandbox_config",
]
