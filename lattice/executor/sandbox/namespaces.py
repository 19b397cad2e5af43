"""Linux namespaces for the sandbox child, each tried and reported, never assumed.

* PID namespace (levels subprocess and seccomp): the task runs as PID 1 of a namespace of its own,
  so ``os.kill(-1, SIGKILL)`` reaches only the task's own processes (as root without it, it would
  kill every process of the machine), the worker's PID is not even nameable, and when the task's
  main process ends the kernel kills every process left in the namespace: double-forked daemons
  cannot outlive the task. Entered by the launcher before it forks the task (``unshare`` moves only
  future children). Without root, a user namespace is created with it.
* Network namespace (seccomp without ``network=True``): the task has only a loopback that is down.
* Mount namespace (levels subprocess and seccomp): made warm by the launcher
  (:func:`enter_mount_namespace`: ``/sys`` becomes a read-only view of sysfs without the mounts
  below it, so cgroupfs, tracefs and debugfs are not there at all and a task cannot raise its own
  cgroup limits or move itself out of its groups), finished by the task (:func:`private_mounts`): a
  read-only ``/proc`` of the task's own PID namespace (``/proc/1`` is the task; the host's
  processes are not listed; ``/proc/sys`` and ``sysrq-trigger`` cannot be written) with ``kmsg``,
  ``kcore``, ``kpage*``... behind ``/dev/null``; a private ``/dev/shm`` and a private working
  directory, each a size-capped tmpfs whose pages the task's memory cgroup is charged for, gone
  with the namespace when the task ends. Without capabilities (``privileges.py``) the task cannot
  undo any of it.
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
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 0x4000, 1 << 18

#: files of the (read-only) task /proc that even a process without capabilities could read, or that
#: hold the kernel's log and memory: hidden behind /dev/null (Docker masks much the same set)
PROC_MASKED = ("kmsg", "kcore", "kpagecount", "kpageflags", "kpagecgroup", "timer_list", "sched_debug")

_libc = ctypes.CDLL(None, use_errno=True)


def unshare(flags: int) -> None:
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare({flags:#x}): {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    fs = fstype.encode() if fstype else None
    options = data.encode() if data else None
    if _libc.mount(source.encode(), target.encode(), fs, ctypes.c_ulong(flags), options) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _read_only(target: str) -> None:
    """Make one mount read-only in this namespace only (a bind remount changes the mount, not the fs)."""
    _mount("none", target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


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


def enter_mount_namespace() -> bool:
    """In a warm launcher, ahead of its task: a private mount namespace with ``/sys`` read-only.

    Done before the task arrives (it does not depend on the task), so the task's own setup is only
    :func:`private_mounts`. False (with a warning) when no mount namespace can be made; once it
    exists, every further step must succeed or this raises.
    """
    try:
        unshare(CLONE_NEWNS)
        _mount("none", "/", None, MS_REC | MS_PRIVATE)
    except OSError as exc:
        log.warning("no mount namespace for the task (%s): host /proc, /sys and /dev/shm stay visible", exc)
        return False
    # a read-only view of sysfs *without* the mounts below it: cgroupfs, tracefs, debugfs, securityfs
    # and bpffs are simply not there (cheaper than remounting each read-only: ~2 ms a task, measured)
    _mount("/sys", "/sys", None, MS_BIND)
    _read_only("/sys")
    return True


def private_mounts(workdir: str, workdir_mb: int, shm_mb: int) -> None:
    """In the task (PID 1 of its namespace, inside the launcher's mount namespace): the task's mounts.

    A procfs of its own PID namespace (it must be mounted from inside that namespace) with the kernel
    interfaces masked, a private ``/dev/shm`` and working directory. Raises if any step fails.
    """
    # read-only as a whole: /proc/sys, /proc/sysrq-trigger and every other writable file included
    _mount("proc", "/proc", "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in PROC_MASKED:
        path = f"/proc/{name}"
        if os.path.exists(path):
            _mount("/dev/null", path, None, MS_BIND)
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={shm_mb}m,mode=1777")
    _mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, f"size={workdir_mb}m,mode=0700")


__all__ = ["enter_mount_namespace", "enter_pid_namespace", "isolate_network", "private_mounts", "unshare"]
