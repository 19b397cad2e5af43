"""Drop every capability of the task's process, for good, before task code runs.

The workers run as root here. A task that keeps root's capabilities can remount what its mount
namespace made read-only (cgroupfs, ``/proc/sys``), read ``/proc/kmsg``, raise its own rlimits and
bypass file permissions. So the task, after its namespaces and limits are in place, empties its
capability bounding set and ambient set, locks the "root gains no capabilities" securebits (so an
``execve`` of anything, setuid binaries included, gives nothing back), clears its effective,
permitted and inheritable sets and sets ``no_new_privs``. It keeps uid 0: the interpreter may live
in a directory only root can enter (``/root/.pyenv`` on these machines), and without capabilities
uid 0 is just the owner of root's files — which is level ``subprocess``'s documented file access,
and what Landlock (``seccomp``) or the container (``docker``, uid 65534) take away.

Plain ctypes on ``prctl`` and ``capset``: the few calls needed do not justify a dependency.
"""

from __future__ import annotations

import ctypes
import os

PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
#: NOROOT, NO_SETUID_FIXUP, KEEP_CAPS and NO_CAP_AMBIENT_RAISE, each with its lock bit
SECUREBITS_LOCKED = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80
_CAP_VERSION_3 = 0x20080522
_SYS_CAPGET, _SYS_CAPSET = 125, 126  # x86_64
_SYS_CAPGET_AARCH64, _SYS_CAPSET_AARCH64 = 90, 91

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_last_cap: int | None = None


def last_cap() -> int:
    """The highest capability number of this kernel (read once per process: the zygote's fork inherits it)."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as fh:
                _last_cap = int(fh.read())
        except (OSError, ValueError):
            _last_cap = 63
    return _last_cap


def _prctl(option: int, arg: int = 0) -> int:
    return int(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                           ctypes.c_ulong(0)))


def held_capabilities() -> dict[str, int]:
    """This process's capability sets as masks (``CapEff``, ``CapPrm``, ``CapInh``, ``CapBnd``, ``CapAmb``)."""
    sets: dict[str, int] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("Cap"):
                name, _, value = line.partition(":")
                sets[name] = int(value.strip(), 16)
    return sets


CAP_SETPCAP = 8
def _capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of this process, one syscall (cheaper than /proc/self/status)."""
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    number = _SYS_CAPGET_AARCH64 if os.uname().machine == "aarch64" else _SYS_CAPGET
    if _libc.syscall(ctypes.c_long(number), ctypes.byref(header), ctypes.byref(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capget: {os.strerror(err)}")
    low, high = data[0], data[1]
    return (low.effective | high.effective << 32, low.permitted | high.permitted << 32,
            low.inheritable | high.inheritable << 32)


def drop_all() -> None:
    """Drop every capability and set no_new_privs; raises ``OSError`` if any capability is left.

    A process without ``CAP_SETPCAP`` (an unprivileged worker, a container) cannot shrink its bounding
    set, and needs not: with no capability held and ``no_new_privs`` set, nothing can bring one back.
    Runs once per task, on its path: a few dozen system calls, no file read.
    """
    effective, _, _ = _capget()
    if effective & (1 << CAP_SETPCAP):
        for cap in range(last_cap() + 1):
            if _prctl(PR_CAPBSET_DROP, cap) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"cannot drop capability {cap} from the bounding set: {os.strerror(err)}")
        if _prctl(PR_SET_SECUREBITS, SECUREBITS_LOCKED) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot lock the securebits: {os.strerror(err)}")
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    if effective:
        header = _CapHeader(_CAP_VERSION_3, 0)
        data = (_CapData * 2)()
        number = _SYS_CAPSET_AARCH64 if os.uname().machine == "aarch64" else _SYS_CAPSET
        if _libc.syscall(ctypes.c_long(number), ctypes.byref(header), ctypes.byref(data)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"capset: {os.strerror(err)}")
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    left = _capget()
    if any(left):
        raise OSError(1, f"capabilities still held after dropping them: {[hex(mask) for mask in left]}")


__all__ = ["drop_all", "held_capabilities"]
