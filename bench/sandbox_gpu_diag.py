"""Which sandbox layer stops CUDA at level seccomp? Run on a GPU machine: each layer alone, in a fork.

Usage: python bench/sandbox_gpu_diag.py   (prints one line per layer)
"""

from __future__ import annotations

import os
import sys


def check(label: str, setup) -> None:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            setup()
            import torch

            ok = torch.cuda.is_available()
            message = f"cuda={ok}" + ("" if ok else f" ({torch.cuda.device_count()} devices)")
        except BaseException as exc:  # noqa: BLE001 - reported
            message = f"error {exc!r}"
        os.write(write_fd, message.encode()[:2000])
        os._exit(0)
    os.close(write_fd)
    data = os.read(read_fd, 4000).decode()
    os.waitpid(pid, 0)
    print(f"{label:30} {data}", flush=True)


def landlock_only() -> None:
    from lattice.executor.sandbox import landlock

    ruleset = landlock.prepare(network=False)
    ruleset.allow([os.getcwd(), "/tmp"], landlock.READ | landlock.WRITE)
    ruleset.allow(["/proc", *[p for p in sys.path if p and os.path.isabs(p)]], landlock.READ)
    ruleset.restrict_self()


def seccomp_only() -> None:
    from lattice.executor.sandbox import seccomp_filter

    seccomp_filter.install(False)


def seccomp_with_network() -> None:
    from lattice.executor.sandbox import seccomp_filter

    seccomp_filter.install(True)


def seccomp_connect_allowed() -> None:
    from lattice.executor.sandbox import seccomp_filter

    seccomp_filter.NETWORK_SYSCALLS = tuple(n for n in seccomp_filter.NETWORK_SYSCALLS if n != "connect")
    seccomp_filter.install(False)


def landlock_with_run_dirs() -> None:
    from lattice.executor.sandbox import landlock

    os.environ["HOME"] = os.environ["TMPDIR"] = os.getcwd()
    ruleset = landlock.prepare(network=False)
    ruleset.allow([os.getcwd(), "/tmp"], landlock.READ | landlock.WRITE)
    ruleset.allow(["/proc", "/run", "/var/run", *[p for p in sys.path if p and os.path.isabs(p)]], landlock.READ)
    sockets = [p for p in ("/run/nvidia-persistenced/socket", "/var/run/nvidia-persistenced/socket")
               if os.path.exists(p)]
    ruleset.allow(sockets, landlock.READ_FILE | landlock.WRITE_FILE)
    ruleset.restrict_self()


def landlock_home_only() -> None:
    from lattice.executor.sandbox import landlock

    os.environ["HOME"] = os.environ["TMPDIR"] = os.getcwd()
    ruleset = landlock.prepare(network=False)
    ruleset.allow([os.getcwd(), "/tmp"], landlock.READ | landlock.WRITE)
    ruleset.allow(["/proc", *[p for p in sys.path if p and os.path.isabs(p)]], landlock.READ)
    ruleset.restrict_self()


if __name__ == "__main__":
    check("no layer", lambda: None)
    check("landlock only", landlock_only)
    check("seccomp filter only", seccomp_only)
    check("seccomp filter, network on", seccomp_with_network)
    check("seccomp filter, connect allowed", seccomp_connect_allowed)
    check("landlock, HOME=cwd", landlock_home_only)
    check("landlock, /run readable + socket", landlock_with_run_dirs)
    for path in ("/run/nvidia-persistenced", "/var/run/nvidia-persistenced", "/dev"):
        try:
            print(path, sorted(os.listdir(path))[:40])
        except OSError as exc:
            print(path, exc)
