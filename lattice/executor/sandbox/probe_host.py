"""What this host gives the sandbox, found by trying (in a throwaway child), not by guessing."""

from __future__ import annotations

import functools
import os
from typing import Any


def _in_child(fn: Any) -> bool:
    """Run ``fn`` in a forked child (namespaces must not touch this process); True if it worked."""
    pid = os.fork()
    if pid == 0:
        try:
            fn()
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _pid_namespace() -> None:
    from lattice.executor.sandbox import namespaces

    if not namespaces.enter_pid_namespace():
        raise OSError("no PID namespace")
    pid = os.fork()
    if pid == 0:
        os._exit(0 if os.getpid() == 1 else 1)
    _, status = os.waitpid(pid, 0)
    if os.WEXITSTATUS(status) != 0:
        raise OSError("not PID 1")


def _seccomp() -> None:
    from lattice.executor.sandbox import seccomp_filter

    seccomp_filter.install(network=False)


@functools.lru_cache(maxsize=1)
def host_capabilities() -> dict[str, Any]:
    from lattice.executor.sandbox import cgroups, landlock

    return {
        "root": os.geteuid() == 0,
        "pid_namespace": _in_child(_pid_namespace),
        "seccomp": _in_child(_seccomp),
        "landlock_abi": landlock.abi_version(),
        "cgroup_controllers": sorted(cgroups.bases()),
        "cgroup_version": cgroups.hierarchy().version,
    }


__all__ = ["host_capabilities"]
