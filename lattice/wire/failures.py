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


class NonRetryable(Exception):
    """Raise it in a task to fail it for good: no retry, whatever ``retries=`` allows (a bad input, a
    refused request). ``raise NonRetryable("...") from exc`` keeps the cause in the traceback.

    Lattice's ``ApplicationError(non_retryable=True)``; for a whole class of exceptions, list them in
    ``@task(non_retryable=[...])`` instead.
    """


def exception_type_name(exc_type: type[BaseException]) -> str:
    """The name an :class:`ErrorInfo` gives an exception type: ``ValueError``, ``package.module.Class``."""
    module = exc_type.__module__
    return exc_type.__qualname__ if module in ("builtins", "__main__") else f"{module}.{exc_type.__qualname__}"


def error_info_from_exception(exc: BaseException, kind: ErrorKind = ErrorKind.EXCEPTION) -> ErrorInfo:
    """Capture an exception raised by user code (type with its module, message, formatted traceback).

    ``detail["exception_types"]`` names the exception's classes (its MRO, most specific first), so the
    head can match ``@task(non_retryable=[...])`` against subclasses without the exception; a
    :class:`NonRetryable` says ``detail["retryable"] = False`` itself.
    """
    exc_type = type(exc)
    tb = "".join(_traceback.format_exception(exc_type, exc, exc.__traceback__))
    detail: dict[str, Any] = {"exception_types": [exception_type_name(t) for t in exc_type.__mro__
                                                  if t not in (object, BaseException, Exception)]}
    if isinstance(exc, NonRetryable):
        detail["retryable"] = False
    return ErrorInfo(kind=kind, type=exception_type_name(exc_type), message=str(exc), traceback=tb, detail=detail)




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


__all__ = ["NOT_RETRYABLE_KINDS", "ErrorInfo", "ErrorKind", "NonRetryable", "error_info_from_exception",
           "exception_from_error_info", "exception_type_name"]
