"""The cgroup v2 path, for real, on a private cgroup2 mount of this machine's kernel.

A host that mounts only cgroup v2 gets this path at ``/sys/fs/cgroup``; a v1 host (like the CI machine,
whose ``pids``, ``memory`` and ``cpu`` controllers are bound to v1 hierarchies) can still mount the unified
hierarchy elsewhere, as root. There the kernel offers only the controllers v1 does not hold, so this tests
what needs none: task groups made and removed, processes moved in and followed across a double fork,
``cgroup.kill`` ending all of them, and a real sandboxed task placed in its v2 group. Where the kernel also
offers ``pids``/``memory``, the limit tests below run too. docs/security.md (limits) says what is covered.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lattice.executor.sandbox import cgroups
from lattice.executor.sandbox.cgroups import GROUP_NAME, TaskCgroup, detect


@pytest.fixture(scope="module")
def cgroup2() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting cgroup2 needs root")
    mount = Path(tempfile.mkdtemp(prefix="lattice-cgroup2-"))
    done = subprocess.run(["mount", "-t", "cgroup2", "none", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"this kernel/container does not let us mount cgroup2: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        base = mount / cgroups._own_path(None).lstrip("/") / GROUP_NAME
        for group in base.glob("task-*"):
            group.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()  # the hierarchy outlives this mount (a hybrid host has it at /sys/fs/cgroup/unified)
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_the_unified_hierarchy_is_detected_and_the_offered_controllers_delegated(cgroup2: Path) -> None:
    found = detect(cgroup2)
    assert found.version == 2 and found.base is not None and found.base.is_dir()
    own = found.base.parent
    offered = set(cgroups.CONTROLLERS) & set((own / "cgroup.controllers").read_text().split())
    # our own group is this mount's root here (exempt from "no internal processes"), so all are delegated
    assert found.controllers == offered


def test_a_task_group_follows_a_double_fork_and_cgroup_kill_ends_everything(cgroup2: Path) -> None:
    group = TaskCgroup(detect(cgroup2))
    assert group.v2 and group.tracked and group.path is not None and group.path.is_dir()
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import subprocess, sys
            sys.stdin.readline()  # wait until the test has moved us into the group
            daemon = subprocess.Popen(["sleep", "600"], start_new_session=True)  # leaves our process group
            print(daemon.pid, flush=True)
            sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        group.add(child.pid)
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        daemon = int(child.stdout.readline())
        assert group.pids() == {child.pid, daemon}
        assert f"0::/{group.path.relative_to(cgroup2)}" in Path(f"/proc/{daemon}/cgroup").read_text()
        started = time.monotonic()
        assert group.kill_all()
        assert child.wait(5) == -9
        deadline = time.monotonic() + 5
        while not _gone(daemon) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _gone(daemon), "the daemon outside the task's process group survived cgroup.kill"
        assert time.monotonic() - started < 5
        assert "populated 0" in (group.path / "cgroup.events").read_text()
    finally:
        if child.poll() is None:
            child.kill()
    group.remove()
    assert not group.path.exists()


def test_a_sandboxed_task_runs_in_its_v2_group(cgroup2: Path) -> None:
    """The real sandbox (level subprocess) with the v2 hierarchy: the task's process is in its own group
    below lattice-sandbox, and the group is gone afterwards."""
    script = textwrap.dedent("""
        import json, cloudpickle
        from lattice.executor.sandbox import SandboxConfig, SandboxLevel, execute, cgroups

        def where(params):
            return {"cgroup": open("/proc/self/cgroup").read()}

        outcome = execute(cloudpickle.dumps(where), {}, ["cgroup"],
                          SandboxConfig(level=SandboxLevel.SUBPROCESS, timeout=30, max_processes=64))
        print(json.dumps({"error": outcome.result.error, "info": outcome.info,
                          "version": cgroups.hierarchy().version,
                          "cgroup": outcome.result.outputs.get("cgroup")[1].decode()
                          if outcome.result.outputs else None}))
    """)
    env = {**os.environ, "LATTICE_CGROUP_ROOT": str(cgroup2)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["error"] is None, report
    assert report["version"] == 2
    v2_line = next(line for line in json.loads(report["cgroup"]).splitlines() if line.startswith("0::"))
    assert f"/{GROUP_NAME}/task-" in v2_line, v2_line
    task_group = cgroup2 / v2_line.strip().removeprefix("0::/")
    deadline = time.monotonic() + 10  # the reaper removes used groups off the task's path
    while task_group.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not task_group.exists(), f"{task_group} was left behind"


def test_pids_and_memory_limits_hold_where_the_kernel_offers_them(cgroup2: Path) -> None:
    found = detect(cgroup2)
    if not {"pids", "memory"} <= found.controllers:
        pytest.skip(f"the cgroup2 mount here offers {sorted(found.controllers) or 'none'} of pids/memory/cpu "
                    "(cgroup v1 hierarchies hold them on this kernel)")
    group = TaskCgroup(found)
    group.set_limits(memory_mb=64, max_processes=8, max_cpus=0.5)
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import os, sys
        sys.stdin.readline()
        kids = 0
        try:
            for _ in range(32):
                if os.fork() == 0:
                    import time; time.sleep(60)
                kids += 1
        except OSError:
            pass
        print(kids, flush=True)
        blob = bytearray(256 * 1024 * 1024)  # past memory.max: the OOM killer ends this process
        print("survived", flush=True)
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        group.add(child.pid)
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        assert int(child.stdout.readline()) < 8
        assert child.wait(30) == -9
        assert group.oom_kills() >= 1 and group.pids_limit_hit()
    finally:
        group.remove()
