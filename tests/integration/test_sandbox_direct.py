"""Every escape probe of tests/sandbox_probes.py, through ``execute`` directly, at every level.

Run for real: the kernel's namespaces, cgroups, seccomp and Landlock, and a private Docker engine
(skipped with the reason where none can be started). The test process, a decoy process and a
secret-holding stand-in for the worker must all survive every probe.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cloudpickle
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `tests.` imports also under plain `pytest`

import tests.sandbox_probes as probes
from lattice.executor.sandbox import SandboxConfig, SandboxLevel, capabilities, execute
from tests.integration.sandbox_fixtures import docker_engine, probe_context, processes_with  # noqa: F401

cloudpickle.register_pickle_by_value(probes)  # tasks travel by value, as they do from a client

LEVELS = [SandboxLevel.SUBPROCESS, SandboxLevel.SECCOMP, SandboxLevel.DOCKER]
BASE = {"timeout": 5.0}


def _config(level: SandboxLevel, request: pytest.FixtureRequest, probe: probes.Probe) -> SandboxConfig:
    caps = capabilities()
    missing = [need for need in probe.requires if not caps.get(need)]
    if missing and level is not SandboxLevel.DOCKER:
        pytest.skip(f"probe {probe.name!r} is only safe with {missing}, which this host lacks")
    if level is SandboxLevel.SECCOMP and not caps["seccomp"]:
        pytest.skip("seccomp (libseccomp via pyseccomp) is not usable here")
    extra = {}
    if level is SandboxLevel.DOCKER:
        extra["docker_host"] = request.getfixturevalue("docker_engine")
    return SandboxConfig(level=level, **BASE, **extra).merged(**probe.config)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("level", LEVELS, ids=str)
@pytest.mark.parametrize("probe", probes.PROBES, ids=[p.name for p in probes.PROBES])
def test_probe(level: SandboxLevel, probe: probes.Probe, probe_context, request) -> None:  # noqa: F811
    config = _config(level, request, probe)
    params = probe_context.params(str(level))
    datagrams = len(probe_context.received)
    outcome = execute(cloudpickle.dumps(probe.fn), params, list(probe.outputs), config)
    got = probes.outcome_of(outcome.result)
    error = outcome.result.error or {}
    assert got in probe.expect[str(level)], (
        f"{probe.name} at {level}: got {got}, expected {sorted(probe.expect[str(level)])}\n"
        f"error: {json.dumps({k: v for k, v in error.items() if k != 'traceback'})[:1500]}\n"
        f"outputs: {outcome.result.outputs}\nstderr: {outcome.stderr[-800:]}"
    )
    assert probe_context.decoy.poll() is None, "the decoy process was killed from inside the sandbox"
    assert probe_context.holder.poll() is None, "the secret-holding process was killed from inside the sandbox"
    if error:
        assert "stderr_tail" in error["detail"], error
    assert_no_payload_ran_outside_a_sandbox()
    if probe.fn is probes.shared_memory_works:
        assert json.loads(outcome.result.outputs["result"][1]) is True
    if probe.fn is probes.send_to_host_unix_sockets and level is not SandboxLevel.SUBPROCESS:
        assert len(probe_context.received) == datagrams, "a datagram reached the host's unix socket"
    if probe.fn is probes.double_fork_daemon:
        assert processes_with(params["ctx"]["marker"]) == [], "a daemon outlived its task"
    if probe.fn is probes.stdout_flood:
        assert len(outcome.stdout) < config.output_limit_bytes + 200
    if got == "sandbox_violation" and probe.name in {"ptrace", "mount"}:
        assert error["detail"].get("blocked_call") == probe.name, error["detail"]
    if got == "sandbox_violation" and probe.name in {"bpf", "io_uring", "keyctl"}:
        assert error["detail"].get("blocked_call") == "syscall", error["detail"]  # libc.syscall(nr): no name


def assert_no_payload_ran_outside_a_sandbox() -> None:
    """A pickle payload may run inside a sandbox child, never in this process (the worker's stand-in)."""
    import glob
    import os

    for path in glob.glob(os.path.join(probes.MARKER_DIR, "*.json")):
        record = json.loads(Path(path).read_text())
        assert not record["pytest"] and not record["ray"], f"a payload ran outside the sandbox: {record}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("level", LEVELS, ids=str)
def test_dev_shm_is_private_to_each_task(level: SandboxLevel, probe_context, request) -> None:  # noqa: F811
    """What one task leaves in /dev/shm is gone with it: neither a later task nor the host sees it."""
    import glob

    extra = {"docker_host": request.getfixturevalue("docker_engine")} if level is SandboxLevel.DOCKER else {}
    config = SandboxConfig(level=level, timeout=20, **extra)
    params = probe_context.params(str(level))
    before = _shm_used_kb()
    wrote = execute(cloudpickle.dumps(probes.write_shm_secret), params, ["escaped"], config)
    assert probes.outcome_of(wrote.result) == "ok", wrote.result.error
    read = execute(cloudpickle.dumps(probes.read_shm_secret), params, ["escaped"], config)
    assert probes.outcome_of(read.result) == "ok", "a later task read what an earlier one left in /dev/shm"
    assert glob.glob(f"/dev/shm/lattice-probe-{params['ctx']['marker']}*") == [], "the host's /dev/shm was written"
    assert _shm_used_kb() - before < 32 * 1024, "the task's 64 MB stayed in the host's memory"


def _shm_used_kb() -> int:
    import os

    st = os.statvfs("/dev/shm")
    return (st.f_blocks - st.f_bfree) * st.f_frsize // 1024


def test_forged_frames_are_violations_not_crashes() -> None:
    """Every malformed result frame is a ProtocolError (a sandbox_violation), never another exception."""
    import struct

    from lattice.executor.sandbox.protocol import ProtocolError, parse_result

    def frame(header: object, blob: bytes = b"") -> bytes:
        raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
        return struct.pack("!Q", len(raw)) + raw + blob

    ok = {"error": None, "outputs": [["x", "json"]], "blob_sizes": [1]}
    assert parse_result(frame(ok, b"1"), ["x"]).outputs == {"x": ("json", b"1")}
    forged = [
        b"", b"\x00" * 7, struct.pack("!Q", 2**63) + b"{}", frame(b"{not json"), frame([1, 2]),
        frame({**ok, "extra": 1}, b"1"), frame(ok, b"{"), frame(ok, b"N"), frame({**ok, "blob_sizes": [3]}, b"NaN"),
        frame({**ok, "blob_sizes": ["1"]}, b"1"), frame({**ok, "blob_sizes": [-1]}, b"1"),
        frame({**ok, "outputs": [["y", "json"]]}, b"1"), frame({**ok, "outputs": [["x", "sandboxed-pickle"]]}, b"1"),
        frame({**ok, "outputs": [["x", "json", 1]]}, b"1"), frame({**ok, "outputs": [], "blob_sizes": []}),
        frame({"error": {"kind": 5}, "outputs": [], "blob_sizes": []}),
        frame({"error": {"type": "X", "detail": [1]}, "outputs": [], "blob_sizes": []}),
        frame({**ok, "blob_sizes": [1 + 1000]}, b"[" * 1001), frame(ok, b"1") + b"trailing",
        frame({"error": None, "outputs": [["x", "json"]], "blob_sizes": [2001]}, b"[" * 1000 + b"1" + b"]" * 1000),
    ]
    for data in forged:
        with pytest.raises(ProtocolError):
            parse_result(data, ["x"])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("level", [SandboxLevel.SUBPROCESS, SandboxLevel.SECCOMP], ids=str)
def test_concurrent_tasks_from_many_threads(level: SandboxLevel) -> None:
    """The worker's I/O executor calls execute from many threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    def task(params: dict) -> dict:
        import os

        return {"pid": os.getpid(), "x": params["x"] * 2}

    blob = cloudpickle.dumps(task)
    config = SandboxConfig(level=level, timeout=20)
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda x: execute(blob, {"x": x}, ["pid", "x"], config), range(24)))
    assert all(o.ok for o in outcomes), [o.result.error for o in outcomes if not o.ok][:2]
    assert sorted(json.loads(o.result.outputs["x"][1]) for o in outcomes) == [2 * x for x in range(24)]
    assert {json.loads(o.result.outputs["pid"][1]) for o in outcomes} == {1}  # PID 1 of its own namespace


@pytest.mark.timeout(60)
def test_env_is_scrubbed_and_given_env_passes(monkeypatch) -> None:
    monkeypatch.setenv("LATTICE_WORKER_SECRET", "do-not-leak")

    def task(params: dict) -> dict:
        import os

        return {"env": dict(os.environ), "cwd": os.getcwd()}

    outcome = execute(
        cloudpickle.dumps(task),
        {},
        ["env", "cwd"],
        SandboxConfig(level="subprocess", timeout=10),
        env={"CUDA_VISIBLE_DEVICES": "1"},
    )
    env = json.loads(outcome.result.outputs["env"][1])
    cwd = json.loads(outcome.result.outputs["cwd"][1])
    assert "LATTICE_WORKER_SECRET" not in env and env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["HOME"] == cwd == env["TMPDIR"]
    import os

    assert not os.path.exists(cwd), "the task's working directory must be removed afterwards"


def test_level_none_runs_in_process() -> None:
    outcome = execute(cloudpickle.dumps(lambda p: {"r": p["x"]}), {"x": 3}, ["r"], SandboxConfig(level="none"))
    assert outcome.ok and outcome.result.outputs["r"] == ("json", b"3")


@pytest.mark.timeout(60)
def test_network_opt_in_reaches_the_loopback_listener(probe_context) -> None:  # noqa: F811
    config = SandboxConfig(level="seccomp", timeout=10, network=True)
    outcome = execute(cloudpickle.dumps(probes.tcp_connect), probe_context.params("seccomp"), ["escaped"], config)
    assert probes.outcome_of(outcome.result) == "escaped", outcome.result.error
    raw = execute(cloudpickle.dumps(probes.raw_socket), probe_context.params("seccomp"), ["escaped"], config)
    assert probes.outcome_of(raw.result) == "sandbox_violation"  # raw sockets stay off even with network
