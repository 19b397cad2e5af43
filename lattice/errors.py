"""Lattice's exceptions and task-failure data: the public place to import them from.

The definitions live in the wire package (``lattice.wire.errors``, ``lattice.wire.failures``), which
the client, the head and the executors all share; see ``lattice.wire.errors`` for the tree.
"""

from __future__ import annotations

from lattice.wire.errors import *  # noqa: F403
from lattice.wire.errors import __all__ as _errors_all
from lattice.wire.failures import (
    ErrorInfo,
    ErrorKind,
    NonRetryable,
    error_info_from_exception,
    exception_from_error_info,
)

__all__ = [*_errors_all, "ErrorInfo", "ErrorKind", "NonRetryable", "error_info_from_exception",
           "exception_from_error_info"]
