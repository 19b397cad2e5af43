"""The seccomp-bpf filter of level ``seccomp``: a deny list, built with libseccomp (pyseccomp).

Why a deny list with a default of *allow*: task code is arbitrary Python with native extensions
(numpy, torch, tokenizers), whose syscall needs cannot be listed up front; what a sandbox escape
needs (the network, ptrace, mounts, namespaces, kernel attack surface such as bpf and io_uring) can.

Why ``EPERM`` and not a kill: the task sees an ordinary ``PermissionError``, its traceback shows
where it happened, and the child (``violations.py``) turns it into a ``sandbox_violation`` naming
the call. ``clone3`` answers ``ENOSYS`` so that glibc falls back to ``clone``, whose namespace flags
the filter can inspect (``clone3`` passes them in memory, out of BPF's reach). A non-native
architecture (``int 0x80``, x32) is killed by libseccomp's default bad-arch action.

Sending to an address: ``sendto`` passes the address as an argument (denied when it is set and the
network is off), but ``sendmsg``/``sendmmsg`` pass it inside a ``msghdr`` in memory, out of BPF's
reach — and a network namespace does not isolate *pathname* unix sockets, so a datagram could reach
the host's ``/dev/log`` or systemd's notify socket. So the filter removes the sockets that could
send one: without network a task may create only AF_UNIX *stream* and *seqpacket* sockets (whose
``sendmsg`` ignores or refuses an address) and cannot ``connect`` or ``bind`` them; with network it
may create no AF_UNIX socket at all (no host unix socket is reachable: ``docker.sock``, Ray's
sockets), and ``socketpair`` gives stream or seqpacket pairs only, at both settings.

:func:`rules` is pure data (tested as such). :func:`compiled` turns it into a BPF program once per
process and network setting (libseccomp's rule building and BPF generation cost ~2 ms, which a no-op
task must not pay: the zygote compiles, every task inherits the bytes); :func:`load` installs those
bytes with one ``prctl`` after ``no_new_privs``; :func:`install` does both.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
from dataclasses import dataclass

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2

#: denied at every seccomp-level task, network or not
DENIED_SYSCALLS: tuple[str, ...] = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "syslog",
    "name_to_handle_at",
    "open_by_handle_at",
    "lookup_dcookie",
    "fanotify_init",
    "landlock_create_ruleset",
    "seccomp",
    "vhangup",
)

#: denied unless the task opted in with ``network=True``
NETWORK_SYSCALLS: tuple[str, ...] = ("connect", "bind", "listen", "accept", "accept4")

CLONE_NAMESPACE_FLAGS: dict[str, int] = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}

SOCK_TYPE_MASK = 0xF
SOCK_PACKET = 10  # obsolete packet sockets; not exported by the socket module
#: AF_UNIX socket types that can send to an address (SOCK_RAW is a datagram socket for AF_UNIX)
UNIX_DATAGRAM_TYPES = (socket.SOCK_DGRAM, socket.SOCK_RAW)
#: personality(2) flags that weaken the task's own memory protections (ASLR off, executable data)
PERSONALITY_DENIED = {"ADDR_NO_RANDOMIZE": 0x0040000, "MMAP_PAGE_ZERO": 0x0100000,
                      "ADDR_COMPAT_LAYOUT": 0x0200000, "READ_IMPLIES_EXEC": 0x0400000}
#: terminal ioctls that inject input into, or take over, a terminal the task could reach
TIOCSTI, TIOCLINUX = 0x5412, 0x541C


@dataclass(frozen=True)
class Rule:
    """One libseccomp rule: ``syscall`` answers ``errno`` when all ``args`` comparisons hold.

    ``args`` are ``(index, op, value)`` or ``(index, "MASKED_EQ", mask, value)``; op is a pyseccomp
    comparison name (EQ, NE, GT, MASKED_EQ...).
    """

    syscall: str
    errno: int = errno.EPERM
    args: tuple[tuple, ...] = ()


def rules(network: bool) -> list[Rule]:
    """Every rule of the filter for a task with or without network access."""
    out = [Rule(name) for name in DENIED_SYSCALLS]
    out.append(Rule("clone3", errno.ENOSYS))
    out += [Rule("clone", args=((0, "MASKED_EQ", flag, flag),)) for flag in CLONE_NAMESPACE_FLAGS.values()]
    out += [Rule("personality", args=((0, "MASKED_EQ", flag, flag),)) for flag in PERSONALITY_DENIED.values()]
    out += [Rule("ioctl", args=((1, "EQ", request),)) for request in (TIOCSTI, TIOCLINUX)]
    # no datagram unix socket pair: its sendto/sendmsg could name a host socket's path
    out += [Rule("socketpair", args=((1, "MASKED_EQ", SOCK_TYPE_MASK, kind),)) for kind in UNIX_DATAGRAM_TYPES]
    if not network:
        out += [Rule(name) for name in NETWORK_SYSCALLS]
        # only AF_UNIX stream/seqpacket sockets (unconnectable, unbindable: see the module docstring)
        out.append(Rule("socket", args=((0, "NE", socket.AF_UNIX),)))
        out += [Rule("socket", args=((0, "EQ", socket.AF_UNIX), (1, "MASKED_EQ", SOCK_TYPE_MASK, kind)))
                for kind in UNIX_DATAGRAM_TYPES]
        out.append(Rule("sendto", args=((4, "NE", 0),)))
    else:
        # network on: IPv4/IPv6 only (no host unix socket), and no raw sockets (packet crafting, sniffing)
        allowed = {socket.AF_INET, socket.AF_INET6}
        out += [Rule("socket", args=((0, "EQ", family),)) for family in range(0, 11) if family not in allowed]
        out.append(Rule("socket", args=((0, "GT", socket.AF_INET6),)))
        out.append(Rule("socket", args=((1, "MASKED_EQ", SOCK_TYPE_MASK, socket.SOCK_RAW),)))
        out.append(Rule("socket", args=((1, "MASKED_EQ", SOCK_TYPE_MASK, SOCK_PACKET),)))
    return out


_compiled: dict[bool, bytes] = {}


def compiled(network: bool) -> bytes:
    """The filter as a raw BPF program (``struct sock_filter[]``), built once per process."""
    program = _compiled.get(network)
    if program is None:
        import tempfile

        with tempfile.TemporaryFile() as fh:
            _build(network).export_bpf(fh)
            fh.seek(0)
            program = fh.read()
        if not program or len(program) % 8:
            raise OSError(errno.EINVAL, "libseccomp exported no usable BPF program")
        _compiled[network] = program
    return program


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load(program: bytes) -> None:
    """Set ``no_new_privs`` and install a compiled filter on this (single-threaded) process."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_SECCOMP): {os.strerror(err)}")


def install(network: bool) -> None:
    """Set ``no_new_privs`` and load the filter into this process (inherited by its children)."""
    load(compiled(network))


def _build(network: bool) -> object:
    import pyseccomp

    flt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for rule in rules(network):
        args = []
        for spec in rule.args:
            index, op, *values = spec
            args.append(pyseccomp.Arg(index, getattr(pyseccomp, op), *values))
        try:
            flt.add_rule(pyseccomp.ERRNO(rule.errno), rule.syscall, *args)
        except (RuntimeError, OSError, ValueError):
            # a syscall this kernel/libseccomp does not know cannot be called either
            continue
    return flt


def syscall_numbers() -> dict[int, str]:
    """Native syscall number -> name for every call the filter can deny (names the blocked call).

    Empty without pyseccomp: level ``subprocess`` needs no libseccomp, and level ``seccomp`` then
    fails closed when it installs its filter.
    """
    try:
        import pyseccomp
    except ImportError:
        return {}

    table: dict[int, str] = {}
    for name in (*DENIED_SYSCALLS, *NETWORK_SYSCALLS, "socket", "socketpair", "sendto", "clone", "clone3",
                 "personality", "ioctl"):
        try:
            table[int(pyseccomp.resolve_syscall(pyseccomp.system_arch(), name))] = name
        except Exception:  # noqa: BLE001 - unknown on this architecture
            continue
    return table


__all__ = ["CLONE_NAMESPACE_FLAGS", "DENIED_SYSCALLS", "NETWORK_SYSCALLS", "Rule", "compiled", "install", "load",
           "rules"]
