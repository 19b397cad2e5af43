"""Lattice's exception tree, and the one place where task failures cross the wire.

::

    LatticeError
    ├── TaskDefinitionError        a bad @task declaration (raised at decoration time)
    ├── WorkflowError              a bad workflow built on the client (unknown output, ...)
    ├── APIError                   the head answered with an error body (status, type, field, hint)
    │   ├── AuthenticationError    401
    │   ├── NotFoundError          404
    │   └── HeadUnavailableError   the head cannot be reached
    ├── RunCancelled               a signal, not a failure: the run was cancelled
    └── RunFailed                  the run failed; ``.task`` and ``.error`` name the first cause
        └── TaskFailed             the task raised (``kind`` = exception)
            ├── TaskTimeout        ``kind`` = timeout
            ├── MemoryExceeded     ``kind`` = memory_exceeded
            ├── SandboxViolation   ``kind`` = sandbox_violation
            ├── TaskKilled         ``kind`` = killed / worker_died
            ├── OutputError        ``kind`` = output_missing / output_invalid / output_too_large
            └── ResourceUnavailable ``kind`` = resource_unavailable

A failure inside an executor is turned into an :class:`ErrorInfo` (plain data: kind, exception type,
message, traceback) by :func:`error_info_from_exception`; the SDK turns it back into the matching
exception class with :func:`exception_from_error_info`. The head only ever sees the data.
"""

from __future__ import annotations

import traceback as _traceback
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    """Why a task ended badly; decides which exception class the SDK raises."""

    EXCEPTION = "exception"
    TIMEOUT = "timeout"
    MEMORY_EXCEEDED = "memory_exceeded"
    SANDBOX_VIOLATION = "sandbox_violation"
    KILLED = "killed"
    WORKER_DIED = "worker_died"
    OUTPUT_MISSING = "output_missing"
    OUTPUT_INVALID = "output_invalid"
    OUTPUT_TOO_LARGE = "output_too_large"
    RESOURCE_UNAVAILABLE = "resource_unavailable"
    UPSTREAM_FAILED = "upstream_failed"
    CANCELLED = "cancelled"
    INTERNAL = "internal"


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


def error_info_from_exception(exc: BaseException, kind: ErrorKind = ErrorKind.EXCEPTION) -> ErrorInfo:
    """Capture an exception raised by user code (type with its module, message, formatted traceback)."""
    exc_type = type(exc)
    module = exc_type.__module__
    name = exc_type.__qualname__ if module in ("builtins", "__main__") else f"{module}.{exc_type.__qualname__}"
    tb = "".join(_traceback.format_exception(exc_type, exc, exc.__traceback__))
    return ErrorInfo(kind=kind, type=name, message=str(exc), traceback=tb)


class LatticeError(Exception):
    """Root of every error Lattice raises."""


class TaskDefinitionError(LatticeError, ValueError):
    """A ``@task`` declaration is invalid; raised when the function is decorated."""


class WorkflowError(LatticeError, ValueError):
    """A workflow built on the client is invalid (unknown output, foreign task, ...)."""


class APIError(LatticeError):
    """The head refused a request; carries the JSON error body's fields."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.status = status
        self.type = type
        self.message = message
        self.field = field
        self.hint = hint
        text = f"{status} {type}: {message}"
        if field:
            text += f" (field: {field})"
        if hint:
            text += f" — {hint}"
        super().__init__(text)


class AuthenticationError(APIError):
    """The head rejected the token (HTTP 401)."""


class NotFoundError(APIError):
    """The workflow, run or task does not exist (HTTP 404)."""


class HeadUnavailableError(LatticeError, ConnectionError):
    """The head could not be reached at all."""


class RunCancelled(LatticeError):
    """The run was cancelled before it finished. A signal, not a failure."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} was cancelled")


class RunFailed(LatticeError):
    """The run failed; ``task`` is the first task that failed and ``error`` its :class:`ErrorInfo`."""

    def __init__(self, run_id: str, task: str | None, error: ErrorInfo) -> None:
        self.run_id = run_id
        self.task = task
        self.error = error
        where = f"task {task!r}" if task else "the run"
        message = f"run {run_id} failed: {where} raised {error.type}: {error.message}"
        if error.traceback:
            message += "\n\nRemote traceback:\n" + error.traceback.rstrip()
        super().__init__(message)

    @property
    def traceback(self) -> str:
        return self.error.traceback

    def original_exception(self) -> BaseException | None:
        """The exception object the task raised, rebuilt here (None if it could not travel).

        Unpickling runs code from the task's side: call it only for runs you submitted yourself.
        """
        data = self.error.detail.get("exception")
        if not data:
            return None
        import base64

        import cloudpickle

        try:
            return cloudpickle.loads(base64.b64decode(data))
        except Exception:  # noqa: BLE001 - a class the client cannot import
            return None


class TaskFailed(RunFailed):
    """A task raised an exception."""


class TaskTimeout(TaskFailed):
    """A task ran past its ``timeout`` and was stopped."""


class MemoryExceeded(TaskFailed):
    """A task used more memory than it declared."""


class SandboxViolation(TaskFailed):
    """A task tried something its sandbox forbids (a blocked system call, network, ...)."""


class TaskKilled(TaskFailed):
    """A task's process was killed (by a signal, or its worker died)."""


class OutputError(TaskFailed):
    """A task's return value did not match its declared outputs, or could not be stored."""


class ResourceUnavailable(TaskFailed):
    """A task asks for more CPU, GPU or memory than any node of the cluster has."""


_KIND_TO_EXCEPTION: dict[ErrorKind, type[RunFailed]] = {
    ErrorKind.EXCEPTION: TaskFailed,
    ErrorKind.TIMEOUT: TaskTimeout,
    ErrorKind.MEMORY_EXCEEDED: MemoryExceeded,
    ErrorKind.SANDBOX_VIOLATION: SandboxViolation,
    ErrorKind.KILLED: TaskKilled,
    ErrorKind.WORKER_DIED: TaskKilled,
    ErrorKind.OUTPUT_MISSING: OutputError,
    ErrorKind.OUTPUT_INVALID: OutputError,
    ErrorKind.OUTPUT_TOO_LARGE: OutputError,
    ErrorKind.RESOURCE_UNAVAILABLE: ResourceUnavailable,
}


def exception_from_error_info(run_id: str, task: str | None, error: ErrorInfo) -> RunFailed:
    """The SDK side of the wire: the most specific exception for a failed run's first cause."""
    return _KIND_TO_EXCEPTION.get(error.kind, RunFailed)(run_id, task, error)


__all__ = [
    "APIError",
    "AuthenticationError",
    "ErrorInfo",
    "ErrorKind",
    "HeadUnavailableError",
    "LatticeError",
    "MemoryExceeded",
    "NotFoundError",
    "OutputError",
    "ResourceUnavailable",
    "RunCancelled",
    "RunFailed",
    "SandboxViolation",
    "TaskDefinitionError",
    "TaskFailed",
    "TaskKilled",
    "TaskTimeout",
    "WorkflowError",
    "error_info_from_exception",
    "exception_from_error_info",
]
