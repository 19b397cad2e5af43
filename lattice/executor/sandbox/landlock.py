"""Landlock for level ``seccomp``: a file-system allow list, and no signals or ptrace beyond the task.

seccomp filters syscalls by number and arguments but cannot see paths, and the tasks run as root
here, so "read /etc/shadow" and "write /etc" are stopped by Landlock instead: the task may read the
system's libraries, its interpreter's prefixes and site-packages and the ``lattice`` package
(``paths.py``: never the worker's ``sys.path``, which Ray seeds with the head's working directory),
read and write its working directory and ``/dev/shm`` (both private tmpfs mounts), and nothing else
(``$HOME``, the head's data dir and working directory, ``/etc/shadow`` stay out of reach). Landlock also
forbids ptrace and ``/proc/<pid>/environ`` of processes outside the task's own domain, and from ABI
6 on signals to them (``os.kill`` of the worker) and abstract unix sockets. ABI 4+ also denies TCP
bind/connect when the network is off (a second line behind seccomp).

Plain ctypes on the three syscalls: there is no maintained Python binding. x86_64 and aarch64 share
the syscall numbers 444-446.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import stat
from collections.abc import Iterable

from lattice.executor.sandbox.paths import task_read_paths

log = logging.getLogger(__name__)

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1

FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
READ = EXECUTE | READ_FILE | READ_DIR
WRITE = (
    WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO | MAKE_SYM | TRUNCATE | REFER
)

#: system paths a Python task needs to read (when they exist)
SYSTEM_READ_PATHS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/opt", "/sys")  # /proc: per task
#: files of /etc a task must not read; every other entry of /etc is readable
ETC_DENIED = frozenset(
    {"shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d", "ssh", "ssl", "security", "docker"}
)
ETC_EXTRA = ("/etc/ssl/certs", "/etc/ssl/openssl.cnf")
DEV_FILES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPort(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("port", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def abi_version() -> int:
    """Landlock ABI of this kernel (0 when it has none or it is disabled)."""
    version = _libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    return max(int(version), 0)


def _handled_fs(abi: int) -> int:
    handled = READ | (WRITE & ~(TRUNCATE | REFER)) | MAKE_CHAR | MAKE_BLOCK
    if abi >= 2:
        handled |= REFER
    if abi >= 3:
        handled |= TRUNCATE
    if abi >= 5:
        handled |= IOCTL_DEV
    return handled


def default_read_paths() -> list[str]:
    """Libraries, the interpreter's own paths, the lattice package and /etc (less its secrets)."""
    paths = [*SYSTEM_READ_PATHS, *task_read_paths()]
    try:
        paths += [os.path.join("/etc", name) for name in os.listdir("/etc") if name not in ETC_DENIED]
    except OSError:
        pass
    paths += list(ETC_EXTRA)
    return paths


class Ruleset:
    """A Landlock ruleset being built; :meth:`restrict_self` applies it to the calling thread's process."""

    def __init__(self, abi: int, network: bool) -> None:
        self.abi = abi
        self.handled = _handled_fs(abi)
        attr = _RulesetAttr(self.handled, 0, 0)
        size = 8
        if abi >= 4 and not network:
            attr.net = NET_BIND_TCP | NET_CONNECT_TCP
            size = 16
        if abi >= 6:
            attr.scoped = SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX
            size = 24
        fd = _libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_create_ruleset: {os.strerror(err)}")
        self.fd = int(fd)

    def allow(self, paths: Iterable[str], access: int) -> None:
        """Allow ``access`` beneath each existing path (files get their file-only subset)."""
        rules = resolve(paths, access)
        try:
            self.add(rules)
        finally:
            close_rules(rules)

    def add(self, rules: Iterable[tuple[int, int]]) -> None:
        """Add resolved ``(O_PATH fd, rights)`` rules (see :func:`resolve`); the fds stay the caller's."""
        for fd, rights in rules:
            rights &= self.handled
            if not rights:
                continue
            rule = _PathBeneath(rights, fd)
            if _libc.syscall(SYS_ADD_RULE, self.fd, RULE_PATH_BENEATH, ctypes.byref(rule), 0) < 0:
                log.debug("landlock_add_rule fd %d: errno %d", fd, ctypes.get_errno())

    def allow_connect(self, port: int) -> bool:
        """Allow TCP connect to ``port`` (ABI 4+, network handled); False where the kernel has no such rule."""
        if self.abi < 4:
            return False
        rule = _NetPort(NET_CONNECT_TCP, port)
        if _libc.syscall(SYS_ADD_RULE, self.fd, RULE_NET_PORT, ctypes.byref(rule), 0) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_add_rule(port {port}): {os.strerror(err)}")
        return True

    def close(self) -> None:
        """Drop a ruleset that will not be enforced (its fd must not reach a task)."""
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def restrict_self(self) -> None:
        """Enforce the ruleset on this process and its future children (needs no_new_privs)."""
        _libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        if _libc.syscall(SYS_RESTRICT_SELF, self.fd, 0) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_restrict_self: {os.strerror(err)}")
        os.close(self.fd)


def resolve(paths: Iterable[str], access: int) -> list[tuple[int, int]]:
    """Open each existing path ``O_PATH`` and pair it with ``access`` (a file gets its file-only subset).

    The caller closes the fds (:func:`close_rules`); paths that do not exist are left out.
    """
    rules: list[tuple[int, int]] = []
    for path in paths:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        rules.append((fd, access & (~0 if is_dir else FILE_ONLY)))
    return rules


def close_rules(rules: Iterable[tuple[int, int]]) -> None:
    for fd, _ in rules:
        with contextlib.suppress(OSError):
            os.close(fd)


def base_rules() -> list[tuple[int, int]]:
    """Every read-only rule a task starts with (system paths, /etc less its secrets, devices), resolved."""
    nvidia = [os.path.join("/dev", name) for name in _listdir("/dev") if name.startswith(("nvidia", "dri"))]
    return [
        *resolve(default_read_paths(), READ),
        *resolve(DEV_FILES, READ | WRITE_FILE),
        *resolve(nvidia, READ | WRITE_FILE | IOCTL_DEV),
    ]


#: the base rules resolved once in the zygote (:func:`warm`) and inherited by every launcher it forks:
#: ~150 paths listed, opened and stat'ed cost ~4 ms of CPU per launcher; with them inherited, a
#: launcher's ruleset is ~150 ``landlock_add_rule`` calls. Held only by the zygote and the launchers
#: (trusted code): a launcher drops them (:func:`release`) before it forks its task.
_warm_rules: list[tuple[int, int]] | None = None


def warm() -> None:
    """Resolve the base rules once for this process and its forks (the zygote, before serving).

    A path of /etc created later is not in them (the task cannot read it: fail closed) until the zygote
    is restarted; one removed later stays allowed on its old inode, which no task can reach by name."""
    global _warm_rules
    release()
    _warm_rules = base_rules()


def release() -> None:
    """Close the inherited base rules' fds (a launcher, before forking its task; the task holds none)."""
    global _warm_rules
    rules, _warm_rules = _warm_rules, None
    if rules:
        close_rules(rules)


def prepare(network: bool, extra_read: Iterable[str] = ()) -> Ruleset | None:
    """The ruleset with every read-only path, built ahead of the task (writes are added per task)."""
    abi = abi_version()
    if abi < 1:
        return None
    ruleset = Ruleset(abi, network)
    if _warm_rules is not None:
        ruleset.add(_warm_rules)
    else:
        rules = base_rules()
        try:
            ruleset.add(rules)
        finally:
            close_rules(rules)
    if extra_read:
        ruleset.allow(extra_read, READ)
    return ruleset


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


__all__ = ["READ", "WRITE", "Ruleset", "abi_version", "base_rules", "close_rules", "default_read_paths", "prepare",
           "release", "resolve", "warm"]
