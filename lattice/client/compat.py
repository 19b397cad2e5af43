"""Which Lattice this client is, told to the head, and a warning when the head is of another generation.

The client names itself on every request (``User-Agent: lattice-agent/X`` and
``X-Lattice-Client-Version: X``); the head names itself on every answer (``X-Lattice-Version``, and
``version`` in ``/health``). Versions are compatible when they share the major version, or, before
1.0, the minor one (semantic versioning's rule for 0.x, where a minor release may break the API).
An incompatible pair still works as far as it can; the user is warned once per head version, so a
failure that follows is not a mystery.
"""

from __future__ import annotations

import re
import threading
import warnings

from lattice import __version__

__all__ = ["CLIENT_VERSION", "IncompatibleHeadWarning", "check_head_version", "compatible", "version_headers"]

CLIENT_VERSION = __version__
#: the head's version header, on every answer
HEAD_VERSION_HEADER = "x-lattice-version"
CLIENT_VERSION_HEADER = "x-lattice-client-version"

_warned: set[tuple[str, str]] = set()
_lock = threading.Lock()


class IncompatibleHeadWarning(UserWarning):
    """The head runs a Lattice version this client may not speak (another major, or another 0.x minor)."""


def version_headers() -> dict[str, str]:
    return {"user-agent": f"lattice-agent/{CLIENT_VERSION}", CLIENT_VERSION_HEADER: CLIENT_VERSION}


def _series(version: str) -> tuple[int, ...] | None:
    """``(major,)`` from 1.0 on, ``(0, minor)`` before: what must match; None for a version not understood."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        return None
    major, minor = int(match.group(1)), int(match.group(2))
    return (major,) if major > 0 else (0, minor)


def compatible(client: str, head: str) -> bool:
    """True when the two versions are of one series; an unreadable version is given the benefit of the doubt."""
    ours, theirs = _series(client), _series(head)
    return ours is None or theirs is None or ours == theirs


def check_head_version(url: str, head_version: str | None) -> None:
    """Warn once (per head URL and version, per process) when the head's version is incompatible."""
    if not head_version or compatible(CLIENT_VERSION, head_version):
        return
    with _lock:
        if (url, head_version) in _warned:
            return
        _warned.add((url, head_version))
    warnings.warn(
        f"the Lattice head at {url} runs version {head_version}, this client is {CLIENT_VERSION}: they may not "
        f"understand each other; install lattice-agent=={head_version} here, or run a head of this version",
        IncompatibleHeadWarning, stacklevel=4)
