"""Task failures as data, and the one converter between exceptions and that data, both ways.

An executor turns what stopped a task into an :class:`ErrorInfo` (:func:`error_info_from_exception`:
kind, exception type, message, traceback, detail); the head stores and routes it without ever holding
the exception; the SDK turns it back into the most specific exception of ``lattice.errors``
(:func:`exception_from_error_info`). Retry meaning travels on the data, as Temporal's
``ApplicationError(non_retryable=...)`` does: :attr:`ErrorInfo.retryable` and
:attr:`ErrorInfo.next_delay_s`, so the orchestrator asks the error instead of keeping a list.
"""

from __future__ import annotations

import traceback as _traceback
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from lattice.wire.errors import (
    MemoryExceeded,
    OutputError,
    ResourceUnavailable,
    RunFailed,
    SandboxViolation,
    TaskFailed,
    TaskKilled,
    TaskTimeout,
)

if TYPE_CHECKING:
    from lattice.wire.restricted_pickle import PickleTrust


class ErrorKind(StrEnum):
    """Why a task ended badly; decides which exception class the SDK raises."""

    EXCEPTION = "exception"
    TIMEOUT = "timeout"
    MEMORY_EXCEEDED = "memory_exceeded"
    SANDBOX_VIOLATION = "sandbox_violation"
    KILLED = "killed"
    WORKER_DIED = "worker_died"
    NODE_LOST = "node_lost"
    OUTPUT_MISSING = "output_missing"
    OUTPUT_INVALID = "output_invalid"
    OUTPUT_TOO_LARGE = "output_too_large"
    RESOURCE_UNAVAILABLE = "resource_unavailable"
    UPSTREAM_FAILED = "upstream_failed"
    CANCELLED = "cancelled"
    INTERNAL = "internal"


#: kinds that no retry can change: the task can never be placed, or was stopped on purpose
NOT_RETRYABLE_KINDS = frozenset({"resource_unavailable", "cancelled", "upstream_failed"})


@dataclass(frozen=True)
class ErrorInfo:
    """A task failure as data: safe to store, send as JSON and show, whatever the task raised."""

    kind: ErrorKind
    type: str
    message: str
    traceback: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = str(self.kind)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorInfo:
        kind = data.get("kind", ErrorKind.INTERNAL)
        try:
            kind = ErrorKind(kind)
        except ValueError:
            kind = ErrorKind.INTERNAL
        return cls(
            kind=kind,
            type=str(data.get("type", "Error")),
            message=str(data.get("message", "")),
            traceback=str(data.get("traceback", "")),
            detail=dict(data.get("detail") or {}),
        )

    @property
    def retryable(self) -> bool:
        """False for kinds no retry changes, or when the error says so itself (``detail["retryable"]``)."""
        if self.detail.get("retryable") is False:
            return False
        return str(self.kind) not in NOT_RETRYABLE_KINDS

    @property
    def next_delay_s(self) -> float | None:
        """A delay before the next attempt that the error asks for (``detail["next_delay_s"]``), if any."""
        value = self.detail.get("next_delay_s")
        return float(value) if isinstance(value, int | float) and value >= 0 else None


def error_info_from_exception(exc: BaseException, kind: ErrorKind = ErrorKind.EXCEPTION) -> ErrorInfo:
    """Capture an exception raised by user code (type with its module, message, formatted traceback)."""
    exc_type = type(exc)
    module = exc_type.__module__
    name = exc_type.__qualname__ if module in ("builtins", "__main__") else f"{module}.{exc_type.__qualname__}"
    tb = "".join(_traceback.format_exception(exc_type, exc, exc.__traceback__))
    return ErrorInfo(kind=kind, type=name, message=str(exc), traceback=tb)




_KIND_TO_EXCEPTION: dict[ErrorKind, type[RunFailed]] = {
    ErrorKind.EXCEPTION: TaskFailed,
    ErrorKind.TIMEOUT: TaskTimeout,
    ErrorKind.MEMORY_EXCEEDED: MemoryExceeded,
    ErrorKind.SANDBOX_VIOLATION: SandboxViolation,
    ErrorKind.KILLED: TaskKilled,
    ErrorKind.WORKER_DIED: TaskKilled,
    ErrorKind.NODE_LOST: TaskKilled,
    ErrorKind.OUTPUT_MISSING: OutputError,
    ErrorKind.OUTPUT_INVALID: OutputError,
    ErrorKind.OUTPUT_TOO_LARGE: OutputError,
    ErrorKind.RESOURCE_UNAVAILABLE: ResourceUnavailable,
}


def exception_from_error_info(run_id: str, task: str | None, error: ErrorInfo,
                              trust: PickleTrust | None = None) -> RunFailed:
    """The SDK side of the wire: the most specific exception for a failed run's first cause.

    ``trust`` is the raising client's, so that :meth:`RunFailed.original_exception` follows it.
    """
    return _KIND_TO_EXCEPTION.get(error.kind, RunFailed)(run_id, task, error, trust)


__all__ = ["NOT_RETRYABLE_KINDS", "ErrorInfo", "ErrorKind", "error_info_from_exception", "exception_from_error_info"]
