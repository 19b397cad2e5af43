"""Where a head keeps its data on this machine, and where local clients look for its token."""

from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    """``$LATTICE_HOME`` or ``~/.lattice``: where a head keeps its data, and where clients find the token."""
    return Path(os.environ.get("LATTICE_HOME") or Path.home() / ".lattice").expanduser()


__all__ = ["default_home"]
