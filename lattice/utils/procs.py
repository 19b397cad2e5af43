"""Which process a recorded pid is: a pid alone is reused after a crash, a pid and its start time are not.

``head.json`` and ``worker.json`` record both; ``lattice stop`` signals a pid only when the process
that has it now started at the recorded time (psutil's ``create_time``), so a stale file can never make
it signal an unrelated process that happens to have the pid now.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

#: create_time is derived from boot time and clock ticks; a few milliseconds cover its rounding
_CREATE_TIME_SLACK_S = 0.05


@dataclass(frozen=True)
class ProcessIdentity:
    """A pid and the time its process started: what names one process for as long as it lives."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int | None = None) -> ProcessIdentity:
        """The identity of ``pid`` (default: this process); raises ``psutil.NoSuchProcess`` if it is gone."""
        pid = os.getpid() if pid is None else pid
        return cls(pid, psutil.Process(pid).create_time())

    def alive(self) -> bool:
        """True while the recorded process itself runs (not a zombie, not another process with its pid)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > _CREATE_TIME_SLACK_S:
                return False
            return proc.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return False
        except psutil.AccessDenied:
            return True  # it exists and is someone else's: alive, and not ours to signal anyway


def recorded_identity(info: dict[str, object], pid_key: str = "pid",
                      time_key: str = "create_time") -> ProcessIdentity | None:
    """The identity a ``head.json``/``worker.json`` records, or None when it records no start time.

    A file without one (written by an older Lattice) cannot prove which process it meant: callers
    treat it as stale rather than signal a pid on trust.
    """
    pid, created = info.get(pid_key), info.get(time_key)
    if not isinstance(pid, int) or not isinstance(created, int | float):
        return None
    return ProcessIdentity(pid, float(created))





def group_is_ours(pgid: int, leader_create_time: float | None) -> bool:
    """Whether process group ``pgid`` is still the one whose leader started at ``leader_create_time``.

    The leader (pid == pgid) alive with the recorded start time: ours. The leader gone: Linux does not
    hand out a pid that is still some group's id, so members left in the group are ours too (a
    group with no members left is nothing to stop: False). A leader with another start time means the
    group died and its number was reused: not ours.
    """
    try:
        created = psutil.Process(pgid).create_time()
    except psutil.NoSuchProcess:
        return group_exists(pgid)
    except psutil.AccessDenied:
        return False
    return leader_create_time is not None and abs(created - leader_create_time) <= _CREATE_TIME_SLACK_S
def group_exists(pgid: int) -> bool:
    """Whether any process is still in group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["ProcessIdentity", "group_exists", "group_is_ours", "recorded_identity"]
