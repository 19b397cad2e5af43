"""Per-task cgroups, v1 or v2: the reliable way to count, limit and kill every process of a task.

RLIMIT_NPROC does not hold for root, and a double-forked daemon leaves the task's process group, so
a task's processes are tracked by cgroup membership instead. The host's hierarchy is detected once per
process (:func:`hierarchy`):

- **cgroup v2** (the unified hierarchy; most current distributions mount only this): one group per task
  under ``<own group>/lattice-sandbox``, with ``pids.max``, ``memory.max`` (and ``memory.swap.max`` 0),
  ``cpu.max``; ``memory.events`` tells a memory kill (``oom_kill``) and a limit hit (``max``) apart from
  any other SIGKILL, ``pids.events`` a refused fork; ``cgroup.kill`` kills every process of the group at
  once, with no fork race. A controller is usable only where the parent group delegates it: Lattice
  enables ``memory pids cpu`` in its own group's ``cgroup.subtree_control`` and in ``lattice-sandbox``'s;
  the kernel refuses the first where the worker's group still holds processes (v2's "no internal
  processes" rule) unless it is the root, so run workers in a delegated group (docs/security.md).
  Membership and ``cgroup.kill`` need no controller and work in any writable v2 group.
- **cgroup v1** (one hierarchy per controller): a group per task in each of ``pids``, ``memory``, ``cpu``,
  below the worker's own; ``pids.max``, ``memory.limit_in_bytes`` (``oom_kill`` in
  ``memory.oom_control``), ``cpu.cfs_quota_us``; killing loops SIGKILL over ``cgroup.procs``.

Either way the groups sit below the worker's own group, so the limits the worker is under still apply.
``LATTICE_CGROUP_ROOT`` names where the hierarchy is mounted when it is not ``/sys/fs/cgroup`` (a cgroup2
mount elsewhere). On a hybrid host (v1 controllers, plus a controller-less cgroup2 at
``/sys/fs/cgroup/unified``) leave it unset: the limits live in v1. Where nothing is writable (non-root,
no delegation), :func:`available` is false and the levels fall back to rlimits and the PID namespace,
with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("pids", "memory", "cpu")
GROUP_NAME = "lattice-sandbox"
CPU_PERIOD_US = 100_000


@dataclass
class Hierarchy:
    """Where this process makes task groups: ``version`` 1 (a base per controller) or 2 (one base, the
    controllers it delegates to its children in ``controllers``); version 0 when nothing is usable."""

    version: int
    #: v1: controller -> base group; v2: every delegated controller -> the one base
    bases: dict[str, Path] = field(default_factory=dict)
    #: v2 only: the base group (task groups are made in it even with no controller, for membership)
    base: Path | None = None

    @property
    def controllers(self) -> set[str]:
        return set(self.bases)


_lock = threading.Lock()
_hierarchy: Hierarchy | None = None


def _own_path(controller: str | None) -> str:
    """This process's group in one v1 controller's hierarchy, or (``None``) in the v2 one (``0::``)."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            hid, names, path = line.split(":", 2)
            if controller is None and hid == "0" and names == "":
                return path
            if controller is not None and controller in names.split(","):
                return path
    except OSError:
        pass
    return "/"


def detect(root: Path | None = None) -> Hierarchy:
    """The hierarchy mounted at ``root`` (default ``$LATTICE_CGROUP_ROOT`` or ``/sys/fs/cgroup``): v2 when it
    is a cgroup2 mount (it has ``cgroup.controllers``), else the v1 per-controller mounts below it."""
    root = root or Path(os.environ.get("LATTICE_CGROUP_ROOT") or ROOT)
    if (root / "cgroup.controllers").exists():
        return _discover_v2(root)
    return _discover_v1(root)


def _probe(base: Path) -> None:
    base.mkdir(exist_ok=True)
    probe = base / f"probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    probe.rmdir()


def _discover_v1(root: Path) -> Hierarchy:
    bases: dict[str, Path] = {}
    for controller in CONTROLLERS:
        mount = root / controller
        if not (mount / "cgroup.procs").exists():
            continue
        base = mount / _own_path(controller).lstrip("/") / GROUP_NAME
        try:
            _probe(base)
        except OSError as exc:
            log.warning("cgroup v1 %s controller not usable at %s: %s", controller, base, exc)
            continue
        bases[controller] = base
        _remove_stale(base)
    return Hierarchy(1 if bases else 0, bases)


def _read_words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def _discover_v2(root: Path) -> Hierarchy:
    own = root / _own_path(None).lstrip("/")
    base = own / GROUP_NAME
    try:
        _probe(base)
    except OSError as exc:
        log.warning("cgroup v2 group %s not usable: %s", base, exc)
        return Hierarchy(0)
    _remove_stale(base)
    wanted = set(CONTROLLERS) & _read_words(own / "cgroup.controllers")
    for controller in sorted(wanted - _read_words(own / "cgroup.subtree_control")):
        try:  # EBUSY where the worker's group holds processes and is not the root: not delegated to us
            (own / "cgroup.subtree_control").write_text(f"+{controller}")
        except OSError as exc:
            log.warning("cgroup v2: cannot delegate %s below %s: %s", controller, own, exc)
    for controller in sorted(set(CONTROLLERS) & _read_words(base / "cgroup.controllers")):
        try:
            (base / "cgroup.subtree_control").write_text(f"+{controller}")
        except OSError as exc:
            log.warning("cgroup v2: cannot enable %s in %s: %s", controller, base, exc)
    enabled = set(CONTROLLERS) & _read_words(base / "cgroup.subtree_control")
    return Hierarchy(2, {controller: base for controller in sorted(enabled)}, base)


def _remove_stale(base: Path, min_age_s: float = 300.0) -> None:
    """Remove empty task groups left by a worker that was killed (rmdir fails on a non-empty one)."""
    now = time.time()
    for path in base.glob("task-*"):
        try:
            if now - path.stat().st_mtime > min_age_s:
                path.rmdir()
        except OSError:
            continue


def hierarchy() -> Hierarchy:
    """This process's hierarchy, detected once (with a warning where limits are lost)."""
    global _hierarchy
    with _lock:
        if _hierarchy is None:
            _hierarchy = detect()
            if not {"pids", "memory"} <= _hierarchy.controllers:
                kind = {1: "cgroup v1", 2: "cgroup v2"}.get(_hierarchy.version, "cgroup")
                log.warning(
                    "%s pids/memory controllers not writable here (have: %s): sandboxed tasks are limited by "
                    "rlimits and the PID namespace only (no total process/memory cap per task); see the limits "
                    "section of docs/security.md", kind, sorted(_hierarchy.controllers) or "none")
        return _hierarchy


def bases() -> dict[str, Path]:
    """Writable parent group per usable controller (discovered once per process)."""
    return hierarchy().bases


def available(controller: str) -> bool:
    return controller in bases()


class TaskCgroup:
    """One task's group(s): create, fill, limit, inspect, kill and remove.

    :attr:`paths` maps each usable controller to the task's group in it (v2: the same directory for all);
    :attr:`tracked` says whether the task's processes are followed at all (on v2 also with no controller).
    """

    def __init__(self, where: Hierarchy | None = None) -> None:
        self.hierarchy = where or hierarchy()
        self.name = f"task-{uuid.uuid4().hex[:12]}"
        self.paths: dict[str, Path] = {}
        #: v2: the task's one group
        self.path: Path | None = None
        if self.hierarchy.version == 2:
            assert self.hierarchy.base is not None
            path = self.hierarchy.base / self.name
            try:
                path.mkdir()
            except OSError as exc:
                log.warning("cannot create cgroup %s: %s", path, exc)
                return
            self.path = path
            self.paths = dict.fromkeys(self.hierarchy.bases, path)
            return
        for controller, base in self.hierarchy.bases.items():
            path = base / self.name
            try:
                path.mkdir()
            except OSError as exc:
                log.warning("cannot create cgroup %s: %s", path, exc)
                continue
            self.paths[controller] = path

    @property
    def v2(self) -> bool:
        return self.path is not None

    @property
    def tracked(self) -> bool:
        return self.v2 or bool(self.paths)

    def _groups(self) -> list[Path]:
        """Each distinct group the task's processes are in."""
        return [self.path] if self.path is not None else list(self.paths.values())

    def set_limits(self, memory_mb: int | None, max_processes: int | None, max_cpus: float | None) -> None:
        """Apply one task's limits (cheap: the slow part, moving a process in, is done ahead)."""
        if max_processes and "pids" in self.paths:
            self._write("pids", "pids.max", str(max_processes))
        if memory_mb and "memory" in self.paths:
            limit = str(memory_mb * 1024 * 1024)
            if self.v2:
                self._write("memory", "memory.max", limit)
                # no swap to escape to (the file exists only with swap accounting)
                with contextlib.suppress(OSError):
                    self._write("memory", "memory.swap.max", "0")
            else:
                self._write("memory", "memory.limit_in_bytes", limit)
                # memsw exists only with swap accounting; without it there is no swap to escape to.
                with contextlib.suppress(OSError):
                    self._write("memory", "memory.memsw.limit_in_bytes", limit)
        if max_cpus and "cpu" in self.paths:
            quota = max(1000, int(max_cpus * CPU_PERIOD_US))  # the kernel's minimum quota is 1 ms
            if self.v2:
                self._write("cpu", "cpu.max", f"{quota} {CPU_PERIOD_US}")
            else:
                self._write("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_US))
                self._write("cpu", "cpu.cfs_quota_us", str(quota))

    def _write(self, controller: str, name: str, value: str) -> None:
        (self.paths[controller] / name).write_text(value)

    def _read(self, controller: str, name: str) -> str:
        try:
            return (self.paths[controller] / name).read_text()
        except (OSError, KeyError):
            return ""

    def _events(self, controller: str, name: str) -> dict[str, int]:
        """A flat keyed file (``memory.events``, ``pids.events``) as ``{key: count}``."""
        events: dict[str, int] = {}
        for line in self._read(controller, name).splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                events[key] = int(value)
        return events

    def add(self, pid: int) -> None:
        """Move ``pid`` into the task's group(s) (its future children follow it)."""
        for path in self._groups():
            (path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self._groups():
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
        return found

    def oom_kills(self) -> int:
        if self.v2:
            return self._events("memory", "memory.events").get("oom_kill", 0)
        for line in self._read("memory", "memory.oom_control").splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def memory_failcnt(self) -> int:
        """How often the task's memory reached its limit (v2: ``max`` in ``memory.events``)."""
        if self.v2:
            return self._events("memory", "memory.events").get("max", 0)
        text = self._read("memory", "memory.failcnt").strip()
        return int(text) if text else 0

    def memory_peak_bytes(self) -> int:
        text = self._read("memory", "memory.peak" if self.v2 else "memory.max_usage_in_bytes").strip()
        return int(text) if text.isdigit() else 0

    def pids_limit_hit(self) -> bool:
        return self._events("pids", "pids.events").get("max", 0) > 0

    def kill_all(self, deadline_s: float = 5.0) -> bool:
        """Kill every process in the group(s) and wait until none is left. On v2 ``cgroup.kill`` does it in
        the kernel, new forks included; on v1 (or a kernel before 5.14) SIGKILL loops over the members."""
        end = time.monotonic() + deadline_s
        killed_by_kernel = False
        if self.path is not None:
            try:
                (self.path / "cgroup.kill").write_text("1")
                killed_by_kernel = True
            except OSError:
                pass
        while True:
            pids = self.pids()
            if not pids:
                return True
            if not killed_by_kernel:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
            if time.monotonic() > end:
                log.warning("cgroup %s still has processes %s after kill", self.name, sorted(pids))
                return False
            time.sleep(0.002)

    def remove(self) -> None:
        """Kill what is left and remove the group(s) (retried: a killed process leaves lazily)."""
        self.kill_all()
        for path in self._groups():
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


__all__ = ["Hierarchy", "TaskCgroup", "available", "bases", "detect", "hierarchy"]
