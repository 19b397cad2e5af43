"""Per-task cgroup v1 groups: the reliable way to count, limit and kill every process of a task.

RLIMIT_NPROC does not hold for root, and a double-forked daemon leaves the task's process group, so
a task's processes are tracked by cgroup membership instead: ``pids.max`` bounds processes and
threads, ``memory.limit_in_bytes`` bounds memory (``oom_kill`` in ``memory.oom_control`` tells a
memory kill apart from any other SIGKILL), ``cpu.cfs_quota_us`` bounds cores. Groups are made below
the worker's own group in each hierarchy, so the limits the worker is under still apply.

Where the hierarchies are missing or not writable (non-root, cgroup v2 only), :func:`available`
is false and the levels fall back to rlimits and the PID namespace, with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("pids", "memory", "cpu")
GROUP_NAME = "lattice-sandbox"

_lock = threading.Lock()
_bases: dict[str, Path] | None = None


def _own_path(controller: str) -> str:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(","):
                return path
    except OSError:
        pass
    return "/"


def _discover() -> dict[str, Path]:
    bases: dict[str, Path] = {}
    for controller in CONTROLLERS:
        mount = ROOT / controller
        if not (mount / "cgroup.procs").exists():
            continue
        base = mount / _own_path(controller).lstrip("/") / GROUP_NAME
        try:
            base.mkdir(exist_ok=True)
            probe = base / f"probe-{os.getpid()}"
            probe.mkdir(exist_ok=True)
            probe.rmdir()
        except OSError as exc:
            log.warning("cgroup v1 %s controller not usable at %s: %s", controller, base, exc)
            continue
        bases[controller] = base
        _remove_stale(base)
    return bases


def _remove_stale(base: Path, min_age_s: float = 300.0) -> None:
    """Remove empty task groups left by a worker that was killed (rmdir fails on a non-empty one)."""
    now = time.time()
    for path in base.glob("task-*"):
        try:
            if now - path.stat().st_mtime > min_age_s:
                path.rmdir()
        except OSError:
            continue


def bases() -> dict[str, Path]:
    """Writable parent group per controller (discovered once per process)."""
    global _bases
    with _lock:
        if _bases is None:
            _bases = _discover()
            if not {"pids", "memory"} <= set(_bases):
                log.warning(
                    "cgroup v1 pids/memory controllers not writable here: sandboxed tasks are limited "
                    "by rlimits and the PID namespace only (no total process/memory cap per task)"
                )
        return _bases


def available(controller: str) -> bool:
    return controller in bases()


class TaskCgroup:
    """One task's groups in each usable controller; create, fill, inspect, kill and remove."""

    def __init__(self) -> None:
        self.name = f"task-{uuid.uuid4().hex[:12]}"
        self.paths: dict[str, Path] = {}
        for controller, base in bases().items():
            path = base / self.name
            try:
                path.mkdir()
            except OSError as exc:
                log.warning("cannot create cgroup %s: %s", path, exc)
                continue
            self.paths[controller] = path

    def set_limits(self, memory_mb: int | None, max_processes: int | None, max_cpus: float | None) -> None:
        """Apply one task's limits (cheap: the slow part, moving a process in, is done ahead)."""
        if max_processes and "pids" in self.paths:
            self._write("pids", "pids.max", str(max_processes))
        if memory_mb and "memory" in self.paths:
            limit = str(memory_mb * 1024 * 1024)
            self._write("memory", "memory.limit_in_bytes", limit)
            # memsw exists only with swap accounting; without it there is no swap to escape to.
            with contextlib.suppress(OSError):
                self._write("memory", "memory.memsw.limit_in_bytes", limit)
        if max_cpus and "cpu" in self.paths:
            period = 100_000
            self._write("cpu", "cpu.cfs_period_us", str(period))
            self._write("cpu", "cpu.cfs_quota_us", str(int(max_cpus * period)))

    def _write(self, controller: str, name: str, value: str) -> None:
        (self.paths[controller] / name).write_text(value)

    def _read(self, controller: str, name: str) -> str:
        try:
            return (self.paths[controller] / name).read_text()
        except (OSError, KeyError):
            return ""

    def add(self, pid: int) -> None:
        """Move ``pid`` into every group (its future children follow it)."""
        for path in self.paths.values():
            (path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for controller in self.paths:
            found.update(int(p) for p in self._read(controller, "cgroup.procs").split())
        return found

    def oom_kills(self) -> int:
        for line in self._read("memory", "memory.oom_control").splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def memory_failcnt(self) -> int:
        text = self._read("memory", "memory.failcnt").strip()
        return int(text) if text else 0

    def memory_peak_bytes(self) -> int:
        text = self._read("memory", "memory.max_usage_in_bytes").strip()
        return int(text) if text else 0

    def pids_limit_hit(self) -> bool:
        text = self._read("pids", "pids.events")
        return any(line.startswith("max ") and line.split()[1] != "0" for line in text.splitlines())

    def kill_all(self, deadline_s: float = 5.0) -> bool:
        """SIGKILL every process in the groups until none is left (a fork race just loops)."""
        end = time.monotonic() + deadline_s
        while True:
            pids = self.pids()
            if not pids:
                return True
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > end:
                log.warning("cgroup %s still has processes %s after kill", self.name, sorted(pids))
                return False
            time.sleep(0.002)

    def remove(self) -> None:
        """Kill what is left and remove the groups (retried: a killed process leaves lazily)."""
        self.kill_all()
        for path in self.paths.values():
            for _ in range(200):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)
            else:
                log.warning("could not remove cgroup %s", path)


__all__ = ["TaskCgroup", "available", "bases"]
