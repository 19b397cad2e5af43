"""What one sandboxed execution gives back, and the typed errors a sandbox reports.

Every level returns a :class:`SandboxOutcome` whose ``result`` is the same
:class:`~lattice.executor.invoke.InvocationResult` an in-process call gives, so the caller never
needs to know which level ran the task. Failures the sandbox itself detects (timeout, memory, a
blocked call, a killed process) become :class:`~lattice.errors.ErrorInfo` dicts built here, each
with the tail of the task's stderr in ``detail["stderr_tail"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lattice.errors import ErrorInfo, ErrorKind
from lattice.executor.invoke import InvocationResult

STDERR_TAIL_CHARS = 4000


@dataclass
class SandboxOutcome:
    """Result of :func:`lattice.executor.sandbox.execute`: the invocation plus the task's output."""

    result: InvocationResult
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    #: facts about the run worth logging: pids limit hit, peak memory, warnings of a fallback...
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.result.error is None


_ERROR_TYPES = {
    ErrorKind.TIMEOUT: "TaskTimeout",
    ErrorKind.MEMORY_EXCEEDED: "MemoryExceeded",
    ErrorKind.SANDBOX_VIOLATION: "SandboxViolation",
    ErrorKind.KILLED: "TaskKilled",
    ErrorKind.OUTPUT_TOO_LARGE: "OutputError",
    ErrorKind.INTERNAL: "SandboxError",
}


def sandbox_error(
    kind: ErrorKind, message: str, stderr: str = "", detail: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An ErrorInfo dict for a failure the sandbox detected (not one the task raised)."""
    merged = dict(detail or {})
    merged["stderr_tail"] = stderr[-STDERR_TAIL_CHARS:]
    return ErrorInfo(kind=kind, type=_ERROR_TYPES.get(kind, "SandboxError"), message=message, detail=merged).to_dict()


def with_stderr_tail(error: dict[str, Any] | None, stderr: str) -> dict[str, Any] | None:
    """Add the stderr tail to a task's own error dict (kept as it is otherwise)."""
    if error is None:
        return None
    detail = dict(error.get("detail") or {})
    detail.setdefault("stderr_tail", stderr[-STDERR_TAIL_CHARS:])
    return {**error, "detail": detail}


def mark_untrusted(result: InvocationResult, level: str) -> None:
    """Label what a sandboxed task produced as its own: ``sandboxed-pickle`` outputs, ``sandbox_level``.

    Set here, in the worker, after the child's frame was parsed, so the task cannot leave it out.
    """
    from lattice.wire.encoding import Encoding

    result.outputs = {
        name: (Encoding.SANDBOXED_PICKLE.value if encoding == Encoding.PICKLE else encoding, data)
        for name, (encoding, data) in result.outputs.items()
    }
    if result.error is not None:
        result.error = {**result.error, "detail": {**(result.error.get("detail") or {}), "sandbox_level": str(level)}}


class TailBuffer:
    """Keeps the last ``limit`` bytes written to it and counts what it dropped (bounded memory)."""

    def __init__(self, limit: int, tee: Callable[[bytes], None] | None = None) -> None:
        self.limit = limit
        self._buf = bytearray()
        self.dropped = 0
        self.tee = tee  # the attempt's live log (``lattice.executor.livelog``), if it streams

    def write(self, data: bytes) -> None:
        if self.tee is not None:
            self.tee(data)
        self._buf += data
        excess = len(self._buf) - self.limit
        if excess > 0:
            del self._buf[:excess]
            self.dropped += excess

    def text(self) -> str:
        body = self._buf.decode("utf-8", errors="replace")
        if self.dropped:
            return f"[... {self.dropped} earlier bytes dropped by the sandbox's output cap ...]\n{body}"
        return body


__all__ = ["SandboxOutcome", "TailBuffer", "mark_untrusted", "sandbox_error", "with_stderr_tail"]
