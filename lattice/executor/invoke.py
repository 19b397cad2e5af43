"""Call one task function and turn what happens into plain data.

This is the innermost step of every execution path: a Ray worker at sandbox level ``none`` calls it
in-process, the sandboxes call it inside their child process. Nothing it returns holds user objects:
outputs are already encoded bytes and a failure is an :class:`~lattice.errors.ErrorInfo` dict, so the
head can route the result without ever unpickling user data.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from lattice.errors import ErrorInfo, ErrorKind, error_info_from_exception
from lattice.wire.encoding import encode_value

DEFAULT_MAX_OUTPUT_BYTES = 256 * 1024 * 1024


@dataclass
class InvocationResult:
    """What one call produced: encoded outputs, or the error that stopped it."""

    outputs: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    #: spans a sandboxed task recorded (checked JSON, see ``lattice.executor.sandbox.spans``)
    spans: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def load_function(fn_blob: bytes) -> Any:
    return cloudpickle.loads(fn_blob)


def invoke(
    fn: Any,
    params: dict[str, Any],
    outputs: list[str],
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
) -> InvocationResult:
    """Run ``fn(params)``, check its return value against ``outputs`` and encode each output."""
    try:
        if isinstance(fn, bytes):
            fn = load_function(fn)
        returned = fn(params)
    except BaseException as exc:  # noqa: BLE001 - user code may raise anything, SystemExit included
        error = error_info_from_exception(exc).to_dict()
        pickled = _pickled_exception(exc)
        if pickled is not None:
            error["detail"]["exception"] = pickled
        return InvocationResult(error=error)
    return encode_outputs(returned, outputs, max_output_bytes)


MAX_PICKLED_EXCEPTION_BYTES = 64 * 1024


def _pickled_exception(exc: BaseException) -> str | None:
    """The exception itself (cloudpickle, base64), so the client can raise the very same object.

    The head keeps it as an opaque string and never unpickles it; only the submitting client does
    (``RunFailed.original_exception()``). Left out when it cannot be pickled or is large.
    """
    try:
        data = cloudpickle.dumps(exc)
    except Exception:  # noqa: BLE001 - exceptions holding locks, sockets, frames
        return None
    if len(data) > MAX_PICKLED_EXCEPTION_BYTES:
        return None
    return base64.b64encode(data).decode()


def encode_outputs(returned: Any, outputs: list[str], max_output_bytes: int) -> InvocationResult:
    if returned is None and not outputs:
        return InvocationResult()
    if not isinstance(returned, dict):
        return _output_error(
            ErrorKind.OUTPUT_INVALID,
            f"a task must return a dict of its outputs {outputs}, got {type(returned).__name__}",
        )
    missing = [name for name in outputs if name not in returned]
    if missing:
        return _output_error(
            ErrorKind.OUTPUT_MISSING,
            f"the task returned no value for its declared output(s) {missing}; "
            f"it returned keys {sorted(map(str, returned))}",
            {"missing": missing},
        )
    encoded: dict[str, tuple[str, bytes]] = {}
    total = 0
    for name in outputs:
        try:
            encoding, data = encode_value(returned[name])
        except Exception as exc:  # noqa: BLE001 - unpicklable objects raise many kinds of errors
            info = error_info_from_exception(exc, ErrorKind.OUTPUT_INVALID)
            return InvocationResult(
                error=ErrorInfo(
                    kind=ErrorKind.OUTPUT_INVALID,
                    type=info.type,
                    message=f"output {name!r} cannot be serialized: {info.message}",
                    traceback=info.traceback,
                    detail={"output": name},
                ).to_dict()
            )
        total += len(data)
        if total > max_output_bytes:
            return _output_error(
                ErrorKind.OUTPUT_TOO_LARGE,
                f"the task's outputs exceed the limit of {max_output_bytes} bytes "
                f"(output {name!r} brought them to {total} bytes); write large data to shared "
                "storage and return a reference instead",
                {"output": name, "limit_bytes": max_output_bytes},
            )
        encoded[name] = (str(encoding), data)
    return InvocationResult(outputs=encoded)


def _output_error(kind: ErrorKind, message: str, detail: dict[str, Any] | None = None) -> InvocationResult:
    return InvocationResult(
        error=ErrorInfo(kind=kind, type="OutputError", message=message, detail=detail or {}).to_dict()
    )
