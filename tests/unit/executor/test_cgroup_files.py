"""What the cgroup v2 code writes and reads, against a directory laid out as a v2 group.

The kernel's enforcement of these files is tested where the host allows it (the v1 sandbox tests, and
tests/integration/test_cgroups_v2.py on a private cgroup2 mount); this pins the v2 formats: ``cpu.max``
is ``"$QUOTA $PERIOD"``, ``memory.max`` bytes, and the flat-keyed ``memory.events`` / ``pids.events``.
"""

from __future__ import annotations

from pathlib import Path

from lattice.executor.sandbox.cgroups import Hierarchy, TaskCgroup


def _group(tmp_path: Path) -> TaskCgroup:
    base = tmp_path / "lattice-sandbox"
    base.mkdir()
    return TaskCgroup(Hierarchy(2, dict.fromkeys(("cpu", "memory", "pids"), base), base))


def test_v2_limits_are_written_in_the_unified_format(tmp_path: Path) -> None:
    group = _group(tmp_path)
    assert group.v2 and group.tracked and set(group.paths.values()) == {group.path}
    group.set_limits(memory_mb=256, max_processes=32, max_cpus=0.5)
    assert group.path is not None
    assert (group.path / "memory.max").read_text() == str(256 * 1024 * 1024)
    assert (group.path / "memory.swap.max").read_text() == "0"
    assert (group.path / "pids.max").read_text() == "32"
    assert (group.path / "cpu.max").read_text() == "50000 100000"
    assert not (group.path / "memory.limit_in_bytes").exists()  # nothing of v1


def test_v2_events_tell_an_oom_kill_and_a_refused_fork(tmp_path: Path) -> None:
    group = _group(tmp_path)
    assert group.path is not None
    assert group.oom_kills() == 0 and group.memory_failcnt() == 0 and not group.pids_limit_hit()
    (group.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n")
    (group.path / "pids.events").write_text("max 2\n")
    (group.path / "memory.peak").write_text("1048576\n")
    assert group.oom_kills() == 1 and group.memory_failcnt() == 3
    assert group.pids_limit_hit() and group.memory_peak_bytes() == 1048576


def test_a_tiny_cpu_share_is_raised_to_the_kernels_minimum_quota(tmp_path: Path) -> None:
    group = _group(tmp_path)
    group.set_limits(memory_mb=None, max_processes=None, max_cpus=0.001)
    assert group.path is not None and (group.path / "cpu.max").read_text() == "1000 100000"
