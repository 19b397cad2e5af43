"""Linux namespaces for the sandbox child, each tried and reported, never assumed.

* PID namespace (levels subprocess and seccomp): the task runs as PID 1 of a namespace of its own,
  so ``os.kill(-1, SIGKILL)`` reaches only the task's own processes (as root without it, it would
  kill every process of the machine), the worker's PID is not even nameable, and when the task's
  main process ends the kernel kills every process left in the namespace: double-forked daemons
  cannot outlive the task. Entered by the launcher before it forks the task (``unshare`` moves only
  future children). Without root, a user namespace is created with it.
* Network namespace (seccomp without ``network=True``): the task has only a loopback that is down.
* Mount namespace (seccomp): a private ``/proc`` for the task's PID namespace, so ``/proc/1`` is the
  task itself and the host's processes are not listed.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWIPC = 0x08000000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8

_libc = ctypes.CDLL(None, use_errno=True)


def unshare(flags: int) -> None:
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare({flags:#x}): {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int) -> None:
    fs = fstype.encode() if fstype else None
    if _libc.mount(source.encode(), target.encode(), fs, ctypes.c_ulong(flags), None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def enter_pid_namespace() -> bool:
    """Put this process's future children in a new PID (and IPC) namespace; False if impossible."""
    flags = CLONE_NEWPID | CLONE_NEWIPC
    try:
        if os.geteuid() == 0:
            unshare(flags)
        else:
            uid, gid = os.geteuid(), os.getegid()
            unshare(flags | CLONE_NEWUSER)
            with open("/proc/self/setgroups", "w") as fh:
                fh.write("deny")
            with open("/proc/self/uid_map", "w") as fh:
                fh.write(f"{uid} {uid} 1")
            with open("/proc/self/gid_map", "w") as fh:
                fh.write(f"{gid} {gid} 1")
        return True
    except OSError as exc:
        log.warning(
            "no PID namespace for sandboxed tasks (%s): kill(-1) and daemons are contained by the cgroup only", exc
        )
        return False


def isolate_network() -> bool:
    """A new network namespace for future children and this process; False if impossible."""
    try:
        unshare(CLONE_NEWNET)
        return True
    except OSError as exc:
        log.warning("no network namespace for the task (%s): seccomp alone blocks the network", exc)
        return False


def private_proc() -> bool:
    """In the task (PID 1 of its namespace): a mount namespace with a /proc of its own PID namespace."""
    try:
        unshare(CLONE_NEWNS)
        _mount("none", "/", None, MS_REC | MS_PRIVATE)
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        return True
    except OSError as exc:
        log.warning("no private /proc for the task (%s)", exc)
        return False


__all__ = ["enter_pid_namespace", "isolate_network", "private_proc", "unshare"]
