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
CTX_KEYS = ("port", "decoy_pid", "outside_dir", "home", "secret", "marker", "parent_pid", "dgram_path",
            "stream_path", "marker_dir")

#: where a pickle payload (:class:`MarkerPayload`) records every process it ran in; the tests read it
MARKER_DIR = "/tmp/lattice-probe-markers"

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


class MarkerPayload:
    """A value whose unpickling runs code: it records where it ran (pid, whether Ray or pytest is loaded).

    Wherever a pickle from a task is decoded, this runs. It must never run in a Ray worker or in the
    test process (the stand-in for a worker): :func:`markers` lists the records for a test to check.
    The code swallows its own errors so that a sandbox that forbids the write still lets the load go on.
    """

    def __init__(self, tag: str, patch_runner: bool = False) -> None:
        self.tag = tag
        self.patch_runner = patch_runner

    def __reduce__(self) -> tuple[Any, ...]:
        code = (
            "import json, os, sys\n"
            "try:\n"
            f"    os.makedirs({MARKER_DIR!r}, exist_ok=True)\n"
            f"    path = os.path.join({MARKER_DIR!r}, {self.tag!r} + '-' + str(os.getpid()) + '.json')\n"
            "    record = {'pid': os.getpid(), 'ray': 'ray' in sys.modules, 'pytest': 'pytest' in sys.modules}\n"
            "    with open(path, 'w') as fh:\n"
            "        json.dump(record, fh)\n"
            "except Exception:\n"
            "    pass\n"
        )
        if self.patch_runner:
            # try to make every later task of this process run unsandboxed
            code += (
                "try:\n"
                "    import lattice.executor.runner as runner\n"
                "    runner._run_sandboxed = lambda *a, **k: (_ for _ in ()).throw(RuntimeError('patched'))\n"
                "except Exception:\n"
                "    pass\n"
            )
        return (exec, (code,))


def markers(tag: str) -> list[dict[str, Any]]:
    """Every record :class:`MarkerPayload` with ``tag`` left (one per process it ran in)."""
    import glob
    import json
    import os

    out = []
    for path in glob.glob(os.path.join(MARKER_DIR, f"{tag}-*.json")):
        with open(path) as fh:
            out.append(json.load(fh))
    return out


def pickling_default(params: dict, _payload: Any = MarkerPayload("default-arg")) -> dict:
    """Its default argument runs code when the function is unpickled (only ever in a sandbox)."""
    return {"escaped": False}


def returns_payload(params: dict) -> dict:
    return {"value": MarkerPayload(params.get("tag", "output"))}


def consumes(params: dict) -> dict:
    return {"escaped": False, "got": type(params.get("value")).__name__}


def read_kernel_log(params: dict) -> dict:
    import os

    leaked = {}
    for path in ("/proc/kmsg", "/proc/kcore"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            continue
        try:
            masked = os.fstat(fd).st_rdev == os.stat("/dev/null").st_rdev
            try:
                data = os.read(fd, 64)
            except BlockingIOError:
                data = b"(open)"
            if not masked and data:
                leaked[path] = len(data)
        finally:
            os.close(fd)
    return {"escaped": bool(leaked), "leaked": leaked}


def _try_writes(paths: list[str]) -> dict:
    """Open each path for writing (nothing is written); escaped if any open works; else raise the first error."""
    import os

    opened, first_error = [], None
    for path in paths:
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            continue
        except OSError as exc:
            first_error = first_error or exc
            continue
        os.close(fd)
        opened.append(path)
    if opened:
        return {"escaped": True, "opened": opened}
    if first_error is not None:
        raise first_error
    return {"escaped": False}


def write_kernel_interfaces(params: dict) -> dict:
    return _try_writes(["/proc/sysrq-trigger", "/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches",
                        "/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/uevent_helper"])


def raise_own_cgroup_limits(params: dict) -> dict:
    """Lift pids.max / the memory limit of the task's own groups, or move into the root group."""
    import os

    paths = []
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _, controllers, path = line.strip().split(":", 2)
            for controller in controllers.split(","):
                base = f"/sys/fs/cgroup/{controller}"
                if controller == "pids":
                    paths += [f"{base}{path}/pids.max", f"{base}/cgroup.procs"]
                if controller == "memory":
                    paths += [f"{base}{path}/memory.limit_in_bytes", f"{base}/cgroup.procs"]
    if not paths:
        return {"escaped": False, "why": "no cgroup v1 groups"}
    return _try_writes([p for p in dict.fromkeys(paths) if os.path.exists(p)])


def send_to_host_unix_sockets(params: dict) -> dict:
    """Reach a host datagram socket (sendto, sendmsg on a socket and on a socketpair) and a stream one."""
    import socket

    ctx = params["ctx"]
    reached, first_error = [], None

    def attempt(name: str, fn: Any) -> None:
        nonlocal first_error
        try:
            fn()
            reached.append(name)
        except FileNotFoundError:
            pass  # the host's socket is not there (a container)
        except OSError as exc:
            first_error = first_error or exc

    def dgram_sendto() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"sendto", ctx["dgram_path"])

    def dgram_sendmsg() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendmsg([b"sendmsg"], [], 0, ctx["dgram_path"])

    def pair_sendmsg() -> None:
        left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with left, right:
            left.sendmsg([b"pair"], [], 0, ctx["dgram_path"])

    def stream_connect() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(ctx["stream_path"])

    for name, fn in (("sendto", dgram_sendto), ("sendmsg", dgram_sendmsg), ("socketpair+sendmsg", pair_sendmsg),
                     ("connect", stream_connect)):
        attempt(name, fn)
    if reached:
        return {"escaped": True, "reached": reached}
    if first_error is not None:
        raise first_error
    return {"escaped": False}


def shared_memory_works(params: dict) -> dict:
    """Control: multiprocessing's shared memory (what DataLoader-style code needs) works in /dev/shm."""
    import os
    from multiprocessing import shared_memory

    block = shared_memory.SharedMemory(create=True, size=1 << 20)
    try:
        block.buf[:5] = b"hello"
        other = shared_memory.SharedMemory(name=block.name)
        same = bytes(other.buf[:5]) == b"hello"
        other.close()
    finally:
        block.close()
        block.unlink()
    return {"escaped": False, "result": same and os.path.isdir("/dev/shm")}


def write_shm_secret(params: dict) -> dict:
    """Leave a secret and 64 MB in /dev/shm; a later task, or the host, must not find them."""
    ctx = params["ctx"]
    with open(f"/dev/shm/lattice-probe-{ctx['marker']}", "w") as fh:
        fh.write(ctx["secret"])
    with open(f"/dev/shm/lattice-probe-{ctx['marker']}-big", "wb") as fh:
        fh.write(b"x" * (64 << 20))
    return {"escaped": False}


def read_shm_secret(params: dict) -> dict:
    import glob

    for path in glob.glob("/dev/shm/lattice-probe-*"):
        try:
            if params["ctx"]["secret"] in open(path, errors="replace").read(4096):
                return {"escaped": True, "path": path}
        except OSError:
            continue
    return {"escaped": False}


def forge_result_frame(params: dict) -> dict:
    """Write a result frame of its own (an output labelled JSON that is not JSON) and exit at once."""
    import json
    import os
    import struct

    header = json.dumps({"error": None, "outputs": [["escaped", "json"]], "blob_sizes": [9]}).encode()
    frame = struct.pack("!Q", len(header)) + header + b"{not json"
    if os.path.isdir("/lattice/io"):  # docker: the result is a file in the shared io dir
        with open("/lattice/io/result.bin", "wb") as fh:
            fh.write(frame)
    else:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2:
                try:
                    os.write(fd, frame)
                except OSError:
                    pass
    os._exit(0)


def inherited_fds(params: dict) -> dict:
    """Look for file descriptors the task was handed beyond stdio and its result pipe.

    The zygote holds pre-opened ``O_PATH`` fds of every read-only Landlock path (and the launcher a
    ruleset fd, a pool listener): a task holding any of them could ``openat`` relative to it or add
    rules of its own. Anything that is not a pipe, /dev/null or the listing's own fd counts.
    """
    import os

    held = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2:
            continue
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own fd, closed by now
        if not target.startswith("pipe:") and target != "/dev/null":
            held.append(f"{fd}->{target}")
    return {"escaped": held or False}


def result_symlink(params: dict) -> dict:
    """docker: replace the result file by a symlink to a host file (the worker must not follow it)."""
    import os

    if not os.path.isdir("/lattice/io"):
        return {"escaped": False}
    os.symlink("/etc/passwd", "/lattice/io/result.bin")
    os._exit(0)


def fill_workdir(params: dict) -> dict:
    """Write until the disk is full: the working directory has a quota, the host's disk is untouched."""
    chunk = b"x" * (8 << 20)
    for i in range(100_000):
        with open(f"fill-{i}", "wb") as fh:
            fh.write(chunk)
    return {"escaped": True}


def pidfd_signal_decoy(params: dict) -> dict:
    import os
    import signal

    try:
        fd = os.pidfd_open(params["ctx"]["decoy_pid"])
    except ProcessLookupError:
        return {"escaped": False}
    signal.pidfd_send_signal(fd, 0)
    return {"escaped": True}


def personality_no_aslr(params: dict) -> dict:
    return _reachable(lambda: _libc_call("personality", 0x0040000))  # ADDR_NO_RANDOMIZE


def perf_event_probe(params: dict) -> dict:
    import ctypes

    attr = ctypes.create_string_buffer(128)
    return _reachable(lambda: _libc_call("syscall", 298, attr, 0, -1, -1, 0))  # perf_event_open


def userfaultfd_probe(params: dict) -> dict:
    import os

    out = _reachable(lambda: _libc_call("syscall", 323, 0))  # userfaultfd(0)
    if isinstance(out.get("ret"), int) and out["ret"] > 2:
        os.close(out["ret"])
    return out


def capabilities_held(params: dict) -> dict:
    """No capability may be left in any set of the task's process."""
    caps = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("Cap"):
                name, _, value = line.partition(":")
                caps[name] = int(value.strip(), 16)
    held = {name: hex(mask) for name, mask in caps.items() if mask}
    return {"escaped": bool(held), "held": held}


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
    Probe("capabilities left in the task", capabilities_held, _e("ok", "ok", "ok")),
    Probe("pickling default argument", pickling_default, _e("ok", "ok", "ok"),
          description="its payload runs only where the function is unpickled: in the sandbox"),
    Probe("read /proc/kmsg, /proc/kcore", read_kernel_log, _e({"ok", V}, {"ok", V}, {"ok", V})),
    Probe("write /proc/sys, sysrq-trigger, /sys/kernel", write_kernel_interfaces, _e(V, V, V)),
    Probe("raise its own cgroup limits", raise_own_cgroup_limits, _e({V, "ok"}, {V, "ok"}, {V, "ok"})),
    Probe("sendmsg/sendto/connect to host unix sockets", send_to_host_unix_sockets, _e("escaped", V, V)),
    Probe("shared memory works", shared_memory_works, _e("ok", "ok", "ok"), ("escaped", "result")),
    Probe("forged result frame", forge_result_frame, _e(V, V, V)),
    Probe("result file replaced by a symlink", result_symlink, _e("ok", "ok", V)),
    Probe("file descriptors of the zygote or launcher", inherited_fds, _e("ok", "ok", "ok")),
    Probe("fill the working directory", fill_workdir, _e(V, V, V), config={"max_workdir_mb": 64, "timeout": 20}),
    Probe("pidfd_open + pidfd_send_signal on the decoy", pidfd_signal_decoy, _e("ok", "ok", "ok"),
          requires=("pid_namespace",)),
    Probe("personality(ADDR_NO_RANDOMIZE)", personality_no_aslr, _e("escaped", V, V)),
    Probe("perf_event_open", perf_event_probe, _e({"escaped", V}, V, V)),
    Probe("userfaultfd", userfaultfd_probe, _e({"escaped", V}, V, V)),
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
        config={"max_result_bytes": 8 * 1024 * 1024, "max_memory_mb": 1024, "timeout": 30},  # a 64 MB value
    ),
    Probe("ptrace", ptrace_probe, _e("escaped", V, V)),
    Probe("mount", mount_probe, _e(V, V, V)),
    Probe("bpf", bpf_probe, _e("escaped", V, V)),
    Probe("io_uring", io_uring_probe, _e("escaped", V, V)),
    Probe("keyctl", keyctl_probe, _e("escaped", V, V)),
    Probe("TCP to a loopback listener", tcp_connect, _e("escaped", V, V)),
    Probe("DNS lookup", dns_lookup, _e({"escaped", "ok"}, V, V)),
    Probe("raw socket", raw_socket, _e(V, V, V)),
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
