"""The seccomp rule list, the docker container configuration, frames and typed errors, as data."""

from __future__ import annotations

import errno
import os
import socket
import sys

import pytest

from lattice.errors import ErrorKind, error_info_from_exception
from lattice.executor.invoke import InvocationResult
from lattice.executor.sandbox import SandboxConfig, seccomp_filter
from lattice.executor.sandbox.outcome import TailBuffer, sandbox_error
from lattice.executor.sandbox.protocol import ProtocolError, pack, pack_result, parse_result
from lattice.executor.sandbox.violations import CallRecorder, classify


def _denied(rules: list[seccomp_filter.Rule]) -> set[str]:
    return {r.syscall for r in rules if not r.args and r.errno == errno.EPERM}


def test_seccomp_denies_the_escape_syscalls_always() -> None:
    for network in (False, True):
        denied = _denied(seccomp_filter.rules(network))
        for name in (
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "mount",
            "umount2",
            "pivot_root",
            "chroot",
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
        ):
            assert name in denied, name


def test_seccomp_network_rules() -> None:
    off = seccomp_filter.rules(network=False)
    assert {"connect", "bind", "listen", "accept", "accept4"} <= _denied(off)
    assert seccomp_filter.Rule("socket", args=((0, "NE", socket.AF_UNIX),)) in off
    assert seccomp_filter.Rule("sendto", args=((4, "NE", 0),)) in off
    on = seccomp_filter.rules(network=True)
    assert not {"connect", "bind", "listen", "accept"} & _denied(on)
    families = {r.args[0][2] for r in on if r.syscall == "socket" and r.args[0][:2] == (0, "EQ")}
    assert socket.AF_INET not in families and socket.AF_INET6 not in families
    # with network on, no AF_UNIX socket at all: pathname sockets of the host (docker.sock, Ray's) stay out
    assert socket.AF_UNIX in families
    assert seccomp_filter.Rule("socket", args=((1, "MASKED_EQ", 0xF, socket.SOCK_RAW),)) in on


@pytest.mark.parametrize("network", [False, True])
def test_seccomp_rules_leave_no_socket_that_sends_to_an_address(network: bool) -> None:
    """sendmsg/sendmmsg carry the address in memory: the filter removes every socket that could use one."""
    rules = seccomp_filter.rules(network=network)
    for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW):
        assert seccomp_filter.Rule("socketpair", args=((1, "MASKED_EQ", 0xF, kind),)) in rules
        if not network:
            unix_dgram = seccomp_filter.Rule("socket", args=((0, "EQ", socket.AF_UNIX), (1, "MASKED_EQ", 0xF, kind)))
            assert unix_dgram in rules
    if network:
        assert seccomp_filter.Rule("socket", args=((0, "EQ", socket.AF_UNIX),)) in rules


def test_seccomp_personality_and_terminal_rules() -> None:
    rules = seccomp_filter.rules(network=False)
    flags = {r.args[0][2] for r in rules if r.syscall == "personality"}
    assert flags == {0x0040000, 0x0100000, 0x0200000, 0x0400000}  # ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC...
    assert {r.args[0][2] for r in rules if r.syscall == "ioctl"} == {0x5412, 0x541C}  # TIOCSTI, TIOCLINUX


def test_seccomp_clone_rules() -> None:
    rules = seccomp_filter.rules(network=False)
    assert seccomp_filter.Rule("clone3", errno.ENOSYS) in rules  # so glibc falls back to clone()
    flags = {r.args[0][2] for r in rules if r.syscall == "clone"}
    assert flags == set(seccomp_filter.CLONE_NAMESPACE_FLAGS.values())


def test_container_kwargs_are_hardened() -> None:
    pytest.importorskip("docker")
    from lattice.executor.sandbox.docker_level import IO_DIR, container_kwargs

    config = SandboxConfig(
        level="docker",
        timeout=5,
        max_memory_mb=512,
        max_processes=64,
        max_cpus=1.5,
        max_cpu_seconds=30,
        max_open_files=256,
        max_file_size_mb=100,
        max_workdir_mb=100,
    )
    kw = container_kwargs(config, "/tmp/io", {"HOME": "/work"})
    assert kw["image"] == "lattice-sandbox:local"
    assert kw["network_mode"] == "none"
    assert kw["cap_drop"] == ["ALL"]
    assert kw["security_opt"] == ["no-new-privileges"]
    assert kw["read_only"] is True
    assert kw["tmpfs"]["/work"].startswith("rw,nosuid,nodev,size=100m") and kw["working_dir"] == "/work"
    assert kw["pids_limit"] == 64
    assert kw["mem_limit"] == kw["memswap_limit"] == "512m"
    assert kw["nano_cpus"] == 1_500_000_000
    assert kw["user"] == "65534:65534"
    assert kw["volumes"]["/tmp/io"] == {"bind": IO_DIR, "mode": "rw"}
    assert all(v["mode"] == "ro" for k, v in kw["volumes"].items() if k != "/tmp/io")
    assert sys.prefix in kw["volumes"] or any(sys.prefix.startswith(k + "/") for k in kw["volumes"])
    # the worker's working directory (Ray puts it on sys.path) is never bound into the container
    assert os.getcwd() not in kw["volumes"] and os.path.expanduser("~") not in kw["volumes"]
    assert kw["shm_size"] == "256m" and kw["ipc_mode"] == "private"
    limits = {u["Name"]: (u["Soft"], u["Hard"]) for u in kw["ulimits"]}
    assert limits == {"core": (0, 0), "nofile": (256, 256), "fsize": (100 * 2**20, 100 * 2**20), "cpu": (30, 31)}
    assert kw["command"][-3:] == ["--oneshot", f"{IO_DIR}/task.bin", f"{IO_DIR}/result.bin"]
    assert kw["environment"] == {"HOME": "/work"}
    assert kw["log_config"]["Config"]["max-file"] == "1"


def test_container_kwargs_omit_absent_limits_and_network_opt_in() -> None:
    pytest.importorskip("docker")
    from lattice.executor.sandbox.docker_level import container_kwargs

    kw = container_kwargs(
        SandboxConfig(
            level="docker", max_processes=None, network=True, docker_mount_host_python=False, docker_image="me/img:1"
        ),
        "/io",
        {},
    )
    assert "mem_limit" not in kw and "memswap_limit" not in kw and "pids_limit" not in kw and "nano_cpus" not in kw
    assert kw["network_mode"] == "bridge" and kw["image"] == "me/img:1" and kw["command"][0] == "python3"
    assert list(kw["volumes"]) == ["/io"]


def test_result_frames_round_trip_and_are_strict() -> None:
    result = InvocationResult(outputs={"a": ("json", b"1"), "b": ("pickle", b"\x80\x04")})
    assert parse_result(pack_result(result), ["a", "b"]).outputs == result.outputs
    with pytest.raises(ProtocolError):
        parse_result(pack_result(result), ["a"])  # an output the task did not declare
    with pytest.raises(ProtocolError):
        parse_result(pack_result(result)[:-1], ["a", "b"])
    bad = pack({"error": None, "outputs": [["a", "exec"]]}, [b"x"])
    with pytest.raises(ProtocolError):
        parse_result(bad, ["a"])


def test_tail_buffer_keeps_the_end_in_bounded_memory() -> None:
    buf = TailBuffer(10)
    for _ in range(1000):
        buf.write(b"0123456789abc")
    assert buf.dropped == 13 * 1000 - 10 and buf.text().endswith("456789abc")


def test_sandbox_error_has_kind_and_stderr_tail() -> None:
    err = sandbox_error(ErrorKind.TIMEOUT, "too slow", "x" * 10_000)
    assert err["kind"] == "timeout" and err["type"] == "TaskTimeout" and len(err["detail"]["stderr_tail"]) == 4000


def _error(exc: BaseException) -> dict:
    return error_info_from_exception(exc).to_dict()


def test_classify_maps_limits_and_denials() -> None:
    mem = MemoryError()
    assert classify(mem, _error(mem), "subprocess", False, None)["kind"] == "memory_exceeded"
    fork = BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
    out = classify(fork, _error(fork), "subprocess", False, None)
    assert out["kind"] == "sandbox_violation" and out["detail"]["limit"] == "max_processes"
    denied = PermissionError(errno.EPERM, "Operation not permitted")
    assert classify(denied, _error(denied), "none", False, None)["kind"] == "exception"  # not a sandbox
    # subprocess drops every capability: a denial there is the sandbox's (mount, raw socket, cgroupfs)
    assert classify(denied, _error(denied), "subprocess", False, None)["kind"] == "sandbox_violation"
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    recorder = CallRecorder({})
    recorder.events.append({"call": "connect", "target": "('127.0.0.1', 9)"})
    # subprocess keeps the network: a refused connection there is the task's own failure
    assert classify(refused, _error(refused), "subprocess", False, recorder)["kind"] == "exception"
    out = classify(denied, _error(denied), "seccomp", False, None)
    assert out["kind"] == "sandbox_violation" and out["detail"]["errno"] == "EPERM"
    plain = ValueError("user bug")
    assert classify(plain, _error(plain), "seccomp", False, None)["kind"] == "exception"


def test_read_paths_come_from_the_interpreter_not_sys_path(tmp_path, monkeypatch) -> None:
    """Ray seeds a worker's sys.path with the head's working directory: it must not become readable."""
    from lattice.executor.sandbox import landlock, paths

    monkeypatch.setattr(sys, "path", [str(tmp_path), os.path.expanduser("~"), *sys.path])
    readable = paths.task_read_paths() + landlock.default_read_paths()
    assert str(tmp_path) not in readable and os.path.expanduser("~") not in readable
    assert not any(p in ("/", "/root", "/home", "/tmp") for p in readable)
    assert sys.prefix in readable and paths.lattice_package_dir() in readable
    assert paths.child_python_path() == os.path.dirname(paths.lattice_package_dir())  # the package's root only


def test_every_level_has_one_profile_and_runner() -> None:
    """The registry is the one place a level is defined: every name has a row, every sandboxed row a runner."""
    from lattice.executor.sandbox import levels
    from lattice.wire.sandbox import SandboxLevel

    assert set(levels.PROFILES) == set(SandboxLevel)
    for level in SandboxLevel:
        parts = levels.profile(level.value)
        assert parts.level is level and parts.sandboxed == (level is not SandboxLevel.NONE)
        if parts.sandboxed:
            assert callable(levels.runner(level))
    with pytest.raises(ValueError, match="caller's process"):
        levels.runner("none")
    assert levels.profile("seccomp").landlock and not levels.profile("subprocess").landlock
    assert levels.profile("docker").network_off and not levels.profile("subprocess").network_off
