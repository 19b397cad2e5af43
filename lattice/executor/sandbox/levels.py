"""The level registry: what each sandbox level is made of, and which runner executes it.

Every other module asks a level's :class:`LevelProfile` what to do (``profile(level).landlock``)
instead of comparing level names, so a level's definition lives in one row of :data:`PROFILES` and
a new level is one more row (plus its runner), not a hunt through ``if level == ...`` branches.
The names and their order are the wire's (:class:`lattice.wire.sandbox.SandboxLevel`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lattice.wire.sandbox import SandboxLevel

if TYPE_CHECKING:
    from lattice.executor.sandbox.config import SandboxConfig
    from lattice.executor.sandbox.outcome import SandboxOutcome

Runner = Callable[[bytes, dict[str, tuple[str, bytes]], list[str], "SandboxConfig", "dict[str, str] | None"],
                  "SandboxOutcome"]


@dataclass(frozen=True)
class LevelProfile:
    """The parts one level is built from (each a property of the task's process or its container)."""

    level: SandboxLevel
    #: where it runs: ``in_process`` (the caller's own process), ``child`` (a warm launcher's fork)
    #: or ``container`` (a throwaway Docker container)
    runner: str
    #: its own mount namespace: read-only /proc and /sys, private /dev/shm and working directory
    private_mounts: bool = False
    #: a Landlock file-system allow list
    landlock: bool = False
    #: a network namespace of its own (when the task did not opt in to the network)
    network_namespace: bool = False
    #: the seccomp-bpf filter (``seccomp_filter.py``)
    seccomp_filter: bool = False
    #: the network is off unless the task opted in (a failed network call is the sandbox's doing)
    network_off: bool = False

    @property
    def sandboxed(self) -> bool:
        return self.level.sandboxed


PROFILES: dict[SandboxLevel, LevelProfile] = {
    SandboxLevel.NONE: LevelProfile(SandboxLevel.NONE, "in_process"),
    SandboxLevel.SUBPROCESS: LevelProfile(SandboxLevel.SUBPROCESS, "child", private_mounts=True),
    SandboxLevel.SECCOMP: LevelProfile(SandboxLevel.SECCOMP, "child", private_mounts=True, landlock=True,
                                       network_namespace=True, seccomp_filter=True, network_off=True),
    SandboxLevel.DOCKER: LevelProfile(SandboxLevel.DOCKER, "container", seccomp_filter=True, network_off=True),
}


def profile(level: SandboxLevel | str) -> LevelProfile:
    """The profile of ``level`` (a name or a :class:`SandboxLevel`)."""
    return PROFILES[SandboxLevel.parse(level)]


def runner(level: SandboxLevel | str) -> Runner:
    """The function that runs a task, still encoded, at a sandboxed ``level``."""
    kind = profile(level).runner
    if kind == "child":
        from lattice.executor.sandbox.subprocess_level import execute_in_child

        return execute_in_child
    if kind == "container":
        from lattice.executor.sandbox.docker_level import execute_in_container

        return execute_in_container
    raise ValueError(f"level {level!r} runs in the caller's process: use lattice.executor.sandbox.execute")


__all__ = ["PROFILES", "LevelProfile", "profile", "runner"]
