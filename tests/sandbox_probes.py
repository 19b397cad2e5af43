"""Escape probes for the sandbox: each is a task, its limits, and the outcome expected per level.

A probe function is module-level and self-contained (imports inside), takes ``params`` and returns
a dict, so the same probes run through :func:`lattice.executor.sandbox.execute` directly
(tests/integration/test_sandbox_direct.py) and as real tasks through the head. Its ``params`` hold
a context the test builds (``CTX_KEYS``): a loopback port the test listens on, a decoy process to
kill, a directory outside the workdir, a planted secret...

Outcomes: ``ok`` (the task finished and nothing escaped; controls), ``escaped`` (the task reached
what it tried: a documented weakness of that level), or an error kind (``sandbox_violation``,
``timeout``, ``memory_exceeded``, ``killed``, ``output_too_large``, ``exception``). A probe reports
a *blocked* attempt by raising (an OSError from the blocked call), and an *absent* target (the file
does not exist in a container) as ``{"escaped": False}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: ``parent_pid`` is a stand-in for the worker started with the planted ``secret`` in its environment
#: (a secret set later with os.environ would not show in /proc/PID/environ); ``decoy_pid`` one to kill
CTX_KEYS = ("port", "decoy_pid", "outside_dir", "home", "secret", "marker", "parent_pid")

SUB, SEC, DOC = "subprocess", "seccomp", "docker"
BLOCKED = frozenset({"sandbox_violation"})


def control_normal(params: dict) -> dict:
    import os
    import threading

    results = []

    def work(i: int) -> None:
        with open(f"part-{i}.txt", "w") as fh:
            fh.write(str(i * i))
        results.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(int(open(f"part-{i}.txt").read()) for i in range(8))
    print("control task ran in", os.getcwd())
    return {"result": total + params.get("x", 0), "escaped": False}


def read_shadow(params: dict) -> dict:
    try:
        data = open("/etc/shadow").read()
    except FileNotFoundError:
        return {"escaped": False}
    return {"escaped": "root:" in data}


def _write_probe(path: str) -> dict:
    import os

    try:
        with open(path, "w") as fh:
            fh.write("lattice sandbox probe")
    except FileNotFoundError:
        return {"escaped": False}
    os.unlink(path)
    return {"escaped": True, "path": path}


def write_etc(params: dict) -> dict:
    return _write_probe(f"/etc/lattice-probe-{params['ctx']['marker']}")


def write_home(params: dict) -> dict:
    return _write_probe(f"{params['ctx']['home']}/lattice-probe-{params['ctx']['marker']}")


def write_via_symlink(params: dict) -> dict:
    import os

    os.symlink(params["ctx"]["outside_dir"], "link")
    return _write_probe(f"link/lattice-probe-{params['ctx']['marker']}")


def read_parent_environ(params: dict) -> dict:
    import os

    secret = params["ctx"]["secret"]
    if secret in str(dict(os.environ)):
        return {"escaped": True, "how": "inherited"}
    try:
        data = open(f"/proc/{params['ctx']['parent_pid']}/environ", "rb").read()
    except FileNotFoundError:
        return {"escaped": False}
    return {"escaped": secret.encode() in data}


def scan_proc_environ(params: dict) -> dict:
    import os

    secret = params["ctx"]["secret"].encode()
    readable = 0
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            data = open(f"/proc/{pid}/environ", "rb").read()
        except OSError:
            continue
        readable += 1
        if secret in data:
            return {"escaped": True, "pid": pid}
    return {"escaped": False, "readable": readable}


def fork_bomb(params: dict) -> dict:
    import os
    import time

    children = 0
    while True:
        pid = os.fork()  # BlockingIOError at the process limit
        if pid == 0:
            try:
                while True:
                    os.fork()
            except OSError:
                time.sleep(30)
            os._exit(0)
        children += 1
        if children > 100_000:
            return {"escaped": True}


def thread_bomb(params: dict) -> dict:
    import threading
    import time

    threads = []
    while len(threads) < 100_000:
        t = threading.Thread(target=time.sleep, args=(30,), daemon=True)
        t.start()  # RuntimeError at the process/thread limit
        threads.append(t)
    return {"escaped": True}


def memory_bomb(params: dict) -> dict:
    hog = []
    for _ in range(10_000):
        hog.append(bytearray(64 * 1024 * 1024))
    return {"escaped": True}


def cpu_spin(params: dict) -> dict:
    while True:
        pass


def double_fork_daemon(params: dict) -> dict:
    import os

    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            devnull = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.execvp("sleep", ["sleep", params["ctx"]["marker"]])
        os._exit(0)
    os.wait()
    return {"escaped": False}


def kill_parent(params: dict) -> dict:
    import os
    import signal

    hits = []
    for pid in (params["ctx"]["decoy_pid"], os.getppid()):
        if pid <= 1:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            hits.append(pid)
        except ProcessLookupError:
            pass
    return {"escaped": False, "signalled": hits}


def kill_everything(params: dict) -> dict:
    import os
    import signal

    try:
        os.kill(-1, signal.SIGKILL)  # only ever run at a level that guarantees a PID namespace
    except ProcessLookupError:
        pass  # nothing else to kill in the task's own namespace
    return {"escaped": False}


def stdout_flood(params: dict) -> dict:
    import os

    chunk = b"x" * (1 << 20)
    for _ in range(params.get("mb", 1024)):
        os.write(1, chunk)
    return {"escaped": False}


def huge_return(params: dict) -> dict:
    return {"result": "x" * (64 * 1024 * 1024)}


def _libc_call(name: str, *args: Any) -> int:
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, name)
    ret = fn(*args)
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")
    return ret


def _reachable(call: Callable[[], int]) -> dict:
    """The syscall reached the kernel's own checks (EINVAL etc.) or succeeded: not filtered."""
    import errno

    try:
        return {"escaped": True, "ret": call()}
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            raise
        return {"escaped": True, "errno": exc.errno}


def ptrace_probe(params: dict) -> dict:
    return _reachable(lambda: _libc_call("ptrace", 0, 0, 0, 0))  # PTRACE_TRACEME


def mount_probe(params: dict) -> dict:
    import ctypes
    import os

    os.mkdir("mnt")
    out = _reachable(lambda: _libc_call("mount", b"none", b"mnt", b"tmpfs", 0, None))
    if out.get("ret") == 0:
        ctypes.CDLL(None).umount2(b"mnt", 2)
    return out


def bpf_probe(params: dict) -> dict:
    import ctypes

    attr = ctypes.create_string_buffer(128)
    return _reachable(lambda: _libc_call("syscall", 321, 0, attr, 128))  # bpf(BPF_MAP_CREATE)


def io_uring_probe(params: dict) -> dict:
    import ctypes
    import os

    p = ctypes.create_string_buffer(120)
    out = _reachable(lambda: _libc_call("syscall", 425, 4, p))  # io_uring_setup(4, params)
    if isinstance(out.get("ret"), int) and out["ret"] > 2:
        os.close(out["ret"])
    return out


def keyctl_probe(params: dict) -> dict:
    return _reachable(lambda: _libc_call("syscall", 250, 0, -3, 0))  # KEYCTL_GET_KEYRING_ID session


def tcp_connect(params: dict) -> dict:
    import socket

    with socket.create_connection(("127.0.0.1", params["ctx"]["port"]), timeout=2) as sock:
        return {"escaped": sock.recv(16) == b"hello"}


def dns_lookup(params: dict) -> dict:
    import socket

    try:
        socket.getaddrinfo("pypi.org", 443)
    except socket.gaierror as exc:
        if params.get("level") == "subprocess":
            return {"escaped": False, "why": str(exc)}  # the machine has no DNS itself
        raise
    return {"escaped": True}


def raw_socket(params: dict) -> dict:
    import socket

    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    return {"escaped": True}


def netlink_socket(params: dict) -> dict:
    import socket

    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()
    return {"escaped": True}


def bind_port(params: dict) -> dict:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        return {"escaped": True, "port": sock.getsockname()[1]}


@dataclass(frozen=True)
class Probe:
    """A probe task: ``expect`` maps a level to the outcomes accepted there."""

    name: str
    fn: Callable[[dict], dict]
    expect: dict[str, frozenset[str]]
    outputs: tuple[str, ...] = ("escaped",)
    config: dict[str, Any] = field(default_factory=dict)
    #: host facts the probe needs to be safe or meaningful (see lattice.executor.sandbox.capabilities)
    requires: tuple[str, ...] = ()
    description: str = ""


def _e(sub: set[str] | str, sec: set[str] | str, doc: set[str] | str) -> dict[str, frozenset[str]]:
    def norm(value: set[str] | str) -> frozenset[str]:
        return frozenset({value} if isinstance(value, str) else value)

    return {SUB: norm(sub), SEC: norm(sec), DOC: norm(doc)}


V = "sandbox_violation"
PROBES: list[Probe] = [
    Probe(
        "control",
        control_normal,
        _e("ok", "ok", "ok"),
        ("result", "escaped"),
        description="threads, working-dir writes and a result",
    ),
    Probe("read /etc/shadow", read_shadow, _e("escaped", V, "ok")),
    Probe("write /etc", write_etc, _e("escaped", V, V)),
    Probe("write $HOME of the worker", write_home, _e("escaped", V, {V, "ok"})),
    Probe("write outside via symlink", write_via_symlink, _e("escaped", V, {V, "ok"})),
    Probe(
        "worker's environ (planted secret)",
        read_parent_environ,
        _e("ok", "ok", "ok"),
        description="the secret is not inherited; /proc/<worker>/environ",
    ),
    Probe("scan /proc/*/environ, read /proc/1/environ", scan_proc_environ, _e("ok", "ok", "ok")),
    Probe("fork bomb", fork_bomb, _e(V, V, V), config={"max_processes": 32, "timeout": 5}),
    Probe("thread bomb", thread_bomb, _e(V, V, V), config={"max_processes": 32, "timeout": 5}),
    Probe(
        "memory bomb",
        memory_bomb,
        _e("memory_exceeded", "memory_exceeded", "memory_exceeded"),
        config={"max_memory_mb": 256, "timeout": 10},
    ),
    Probe("CPU spin past timeout", cpu_spin, _e("timeout", "timeout", "timeout"), config={"timeout": 1.5}),
    Probe(
        "double-forked daemon", double_fork_daemon, _e("ok", "ok", "ok"), description="must be gone when the task ends"
    ),
    Probe("kill the worker (decoy) and getppid()", kill_parent, _e("ok", "ok", "ok"), requires=("pid_namespace",)),
    Probe("kill(-1, SIGKILL)", kill_everything, _e("ok", "ok", "ok"), requires=("pid_namespace",)),
    Probe("1 GB of stdout", stdout_flood, _e("ok", "ok", "ok"), config={"timeout": 30}),
    Probe(
        "huge return value",
        huge_return,
        _e("output_too_large", "output_too_large", "output_too_large"),
        ("result",),
        config={"max_result_bytes": 8 * 1024 * 1024, "max_memory_mb": 1024},
    ),
    Probe("ptrace", ptrace_probe, _e("escaped", V, V)),
    Probe("mount", mount_probe, _e("escaped", V, V)),
    Probe("bpf", bpf_probe, _e("escaped", V, V)),
    Probe("io_uring", io_uring_probe, _e("escaped", V, V)),
    Probe("keyctl", keyctl_probe, _e("escaped", V, V)),
    Probe("TCP to a loopback listener", tcp_connect, _e("escaped", V, V)),
    Probe("DNS lookup", dns_lookup, _e({"escaped", "ok"}, V, V)),
    Probe("raw socket", raw_socket, _e("escaped", V, V)),
    Probe("netlink socket", netlink_socket, _e("escaped", V, V)),
    Probe("bind a port", bind_port, _e("escaped", V, V)),
]


def outcome_of(result: Any) -> str:
    """The outcome name of an InvocationResult (``escaped`` decoded from the JSON output)."""
    import json

    if result.error is not None:
        return str(result.error.get("kind"))
    encoding, data = result.outputs.get("escaped", ("json", b"false"))
    escaped = json.loads(data) if encoding == "json" else False
    return "escaped" if escaped else "ok"
