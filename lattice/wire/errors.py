"""Lattice's exception tree (re-exported as ``lattice.errors``, the public place to import it from).

::

    LatticeError
    ├── TaskDefinitionError        a bad @task declaration (raised at decoration time)
    ├── WorkflowError              a bad workflow built on the client (unknown output, ...)
    ├── APIError                   the head answered with an error body (status, type, field, hint)
    │   ├── AuthenticationError    401
    │   └── NotFoundError          404
    ├── HeadUnavailableError       the head could not be reached (or kept answering 502/503/504) until the
    │                              client's deadline; also a ConnectionError. ``HeadUnavailable`` is the same class
    ├── WaitTimeout                a wait's own ``timeout=`` ran out before the run ended; also a TimeoutError
    ├── RunCancelled               a signal, not a failure: the run was cancelled
    ├── UntrustedOutputError       a sandboxed task's output names a type the client does not trust
    └── RunFailed                  the run failed; ``.task`` and ``.error`` name the first cause
        └── TaskFailed             the task raised (``kind`` = exception)
            ├── TaskTimeout        ``kind`` = timeout
            ├── MemoryExceeded     ``kind`` = memory_exceeded
            ├── SandboxViolation   ``kind`` = sandbox_violation
            ├── TaskKilled         ``kind`` = killed / worker_died / node_lost
            ├── OutputError        ``kind`` = output_missing / output_invalid / output_too_large
            └── ResourceUnavailable ``kind`` = resource_unavailable

A failure inside an executor crosses the wire as data (:class:`~lattice.wire.failures.ErrorInfo`);
``lattice.wire.failures`` is the one converter, both ways. The head only ever sees the data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lattice.wire.failures import ErrorInfo
    from lattice.wire.restricted_pickle import PickleTrust


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
    """The head could not be reached, or answered only "unavailable" (502/503/504), until the deadline.

    A client retries such failures with backoff for up to its ``unavailable_timeout`` (a head restart
    takes seconds) and raises this after it. ``request_sent`` says whether the failed request may have
    reached the head: False when the connection itself was refused, so even a request that must not be
    repeated (it is not idempotent) can be sent again.
    """

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message)
        self.request_sent = request_sent


#: The name the resilience docs use; one class, so ``except HeadUnavailable`` catches every such error.
HeadUnavailable = HeadUnavailableError


class WaitTimeout(LatticeError, TimeoutError):
    """A wait (``get_results``/``wait`` with ``timeout=``) ran out before the run ended; the run goes on."""

    def __init__(self, run_id: str, timeout: float) -> None:
        self.run_id = run_id
        self.timeout = timeout
        super().__init__(f"run {run_id} did not finish within {timeout} s; it is still running on the head "
                         "(wait again, or cancel it)")


class RunCancelled(LatticeError):
    """The run was cancelled before it finished. A signal, not a failure."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} was cancelled")


class UntrustedOutputError(LatticeError):
    """A sandboxed task's output needs a type the client was not told to trust, so it was not decoded.

    A pickle is a program: decoding it in full would run whatever the sandboxed task chose. ``type_name``
    is the refused global (``module.Name``); nothing of it was called.
    """

    def __init__(self, task: str | None, output: str | None, type_name: str) -> None:
        self.task = task
        self.output = output
        self.type_name = type_name
        what = f"output {output!r}" if output else "an output"
        where = f"sandboxed task {task!r}" if task else "a sandboxed task"
        head = f"{what} of {where} was not decoded: its pickle needs {type_name!r}, which is not a trusted type"
        if _names_a_non_class(type_name):
            super().__init__(
                f"{head}. It is not a class but something a pickle would *call* (the classic payload of a "
                "malicious pickle), so no trusted_types can allow it; only trust_outputs=True on the call or the "
                "client would load it, which runs it: do that only for a task whose code you trust")
            return
        super().__init__(
            f"{head}. If it is a data class you trust, pass trusted_types=[{type_name!r}] to LatticeClient (or "
            "LangGraphClient); to decode without restriction, pass trust_outputs=True to the call or the client")


def _names_a_non_class(dotted: str) -> bool:
    """True when ``module.Name`` resolves, in a module this process already imported, to a non-class.

    Only looks: it imports nothing (an import would run the module's code for the sake of a message).
    """
    import sys

    module, _, name = dotted.rpartition(".")
    obj: object = sys.modules.get(module)
    if obj is None:
        return False
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return not isinstance(obj, type)


class RunFailed(LatticeError):
    """The run failed; ``task`` is the first task that failed and ``error`` its :class:`ErrorInfo`.

    ``trust`` is how the client that raised it decodes sandboxed tasks' pickles; it decides what
    :meth:`original_exception` may rebuild.
    """

    def __init__(self, run_id: str, task: str | None, error: ErrorInfo, trust: PickleTrust | None = None) -> None:
        self.run_id = run_id
        self.task = task
        self.error = error
        self.trust = trust
        where = f"task {task!r}" if task else "the run"
        message = f"run {run_id} failed: {where} raised {error.type}: {error.message}"
        if error.traceback:
            message += "\n\nRemote traceback:\n" + error.traceback.rstrip()
        super().__init__(message)

    @property
    def traceback(self) -> str:
        return self.error.traceback

    @property
    def sandbox_level(self) -> str:
        """The sandbox level the failed task ran at, as its worker reported it (``"none"`` if not said)."""
        return str(self.error.detail.get("sandbox_level") or "none")

    def original_exception(self, trust_outputs: bool | None = None,
                           trusted_types: Iterable[type | str] = ()) -> BaseException | None:
        """The exception object the task raised, rebuilt here; None if it could not travel or is not trusted.

        Unpickling runs code from the task's side. For a task at sandbox level ``none`` (trusted code)
        it is unpickled in full. For a sandboxed task it follows the client's trust (``trust_outputs``,
        ``trusted_types``; the arguments override or add to them): builtin exceptions come back as
        objects, other classes only when trusted; a refused one gives None. ``error`` keeps the type,
        message and traceback either way.
        """
        data = self.error.detail.get("exception")
        if not data:
            return None
        import base64

        from lattice.wire.encoding import Encoding, decode_task_value
        from lattice.wire.restricted_pickle import PickleTrust

        trust = (self.trust or PickleTrust()).but(trust_outputs, trusted_types)
        encoding = Encoding.PICKLE if self.sandbox_level == "none" else Encoding.SANDBOXED_PICKLE
        try:
            value = decode_task_value(encoding, base64.b64decode(data), trust, task=self.task, output="exception")
        except Exception:  # noqa: BLE001 - refused, or a class the client cannot import
            return None
        return value if isinstance(value, BaseException) else None


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


__all__ = [
    "APIError",
    "AuthenticationError",
    "HeadUnavailable",
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
    "UntrustedOutputError",
    "WaitTimeout",
    "WorkflowError",
]
