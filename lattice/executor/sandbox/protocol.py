"""Frames between the worker and a sandbox child: a JSON header plus raw byte blobs.

Down (worker -> child) the frame carries the task: the function's bytes and each input exactly as
encoded upstream (JSON or a pickle), so the child, inside the sandbox, is the only process that
unpickles them. Up (child -> worker) it carries the result, and the worker must
never unpickle what a sandboxed process wrote: that would run the task's code outside the sandbox.
So the result frame is JSON plus raw output bytes, parsed strictly and bounded in size by
:func:`parse_result`; the encoded outputs stay opaque bytes, as at level ``none``.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

from lattice.executor.invoke import InvocationResult
from lattice.executor.sandbox.spans import SpanError, parse_spans

_LEN = struct.Struct("!Q")
MAX_HEADER_BYTES = 4 * 1024 * 1024
ENCODINGS = frozenset({"json", "pickle"})


class ProtocolError(ValueError):
    """A frame from a child was malformed or too large."""


def pack(header: dict[str, Any], blobs: list[bytes]) -> bytes:
    """One frame: length-prefixed JSON header (with the blob sizes), then the blobs."""
    header = {**header, "blob_sizes": [len(b) for b in blobs]}
    raw = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([_LEN.pack(len(raw)), raw, *blobs])


def read_frame(stream: BinaryIO, max_blob_bytes: int) -> tuple[dict[str, Any], list[bytes]]:
    """Read one frame from a blocking stream (used in the child)."""
    header = json.loads(_read_exact(stream, _read_len(stream, MAX_HEADER_BYTES)))
    sizes = header.pop("blob_sizes", [])
    if sum(sizes) > max_blob_bytes:
        raise ProtocolError(f"frame blobs of {sum(sizes)} bytes exceed {max_blob_bytes}")
    return header, [_read_exact(stream, size) for size in sizes]


def _read_len(stream: BinaryIO, limit: int) -> int:
    (size,) = _LEN.unpack(_read_exact(stream, _LEN.size))
    if size > limit:
        raise ProtocolError(f"frame header of {size} bytes exceeds {limit}")
    return size


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError(f"stream ended {left} bytes before the end of a frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def pack_task(header: dict[str, Any], fn_blob: bytes, inputs: dict[str, tuple[str, bytes]]) -> bytes:
    """The task frame: the function's bytes and each input still encoded, as the worker received them.

    The worker never decodes a sandboxed task's function or inputs (a pickle runs code when loaded);
    the child does, inside the sandbox (:func:`decode_inputs`).
    """
    names = list(inputs)
    header = {**header, "inputs": [[name, inputs[name][0]] for name in names]}
    return pack(header, [fn_blob, *(inputs[name][1] for name in names)])


def decode_inputs(header: dict[str, Any], blobs: list[bytes]) -> dict[str, Any]:
    """In the child: the task's params from a task frame (unpickles: only ever inside the sandbox)."""
    import cloudpickle

    params: dict[str, Any] = {}
    for (name, encoding), data in zip(header.get("inputs", []), blobs[1:], strict=True):
        params[name] = json.loads(data) if encoding == "json" else cloudpickle.loads(data)
    return params


def pack_result(result: InvocationResult) -> bytes:
    names = list(result.outputs)
    header: dict[str, Any] = {
        "error": result.error,
        "outputs": [[name, result.outputs[name][0]] for name in names],
    }
    if result.spans:
        header["spans"] = result.spans
    return pack(header, [result.outputs[name][1] for name in names])


def _no_constants(name: str) -> Any:
    raise ProtocolError(f"JSON constant {name} is not allowed")


def strict_json(data: bytes | str) -> Any:
    """``json.loads`` that refuses NaN/Infinity (no JSON response could carry them) and runaway nesting."""
    try:
        return json.loads(data, parse_constant=_no_constants)
    except RecursionError as exc:
        raise ProtocolError("JSON nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ProtocolError(f"invalid JSON: {type(exc).__name__}") from exc


_HEADER_KEYS = frozenset({"error", "outputs", "blob_sizes", "spans"})


def parse_result(data: bytes, declared_outputs: list[str]) -> InvocationResult:
    """Strictly parse a child's result frame (whole, already size-bounded by the reader).

    Everything in it was written by the task's process, so nothing is taken on trust: the header's
    shape and types, blob sizes that add up exactly, declared output names only (each once), known
    encodings only, JSON that parses (NaN and Infinity refused) wherever the label says JSON, and an
    error made of the fields an :class:`~lattice.errors.ErrorInfo` has. Any deviation is a
    :class:`ProtocolError`, which the caller reports as a ``sandbox_violation``.
    """
    from lattice.errors import ErrorInfo

    if len(data) < _LEN.size:
        raise ProtocolError("empty result frame")
    (hsize,) = _LEN.unpack_from(data)
    if hsize > MAX_HEADER_BYTES or _LEN.size + hsize > len(data):
        raise ProtocolError("result header too large or truncated")
    header = strict_json(data[_LEN.size : _LEN.size + hsize])
    if not isinstance(header, dict) or not set(header) <= _HEADER_KEYS:
        raise ProtocolError("result header is not an object of error, outputs, blob_sizes and spans")
    sizes = header.get("blob_sizes", [])
    outputs = header.get("outputs", [])
    error = header.get("error")
    try:
        spans = parse_spans(header.get("spans"))
    except SpanError as exc:
        raise ProtocolError(f"result spans: {exc}") from None
    if not isinstance(sizes, list) or not all(type(s) is int and s >= 0 for s in sizes):
        raise ProtocolError("result blob sizes are not a list of sizes")
    if not isinstance(outputs, list) or len(sizes) != len(outputs):
        raise ProtocolError("result outputs and blob sizes disagree")
    pos = _LEN.size + hsize
    if pos + sum(sizes) != len(data):
        raise ProtocolError("result blobs do not match their sizes")
    if error is not None:
        if not isinstance(error, dict) or not all(isinstance(error.get(k, ""), str) for k in ("kind", "type",
                                                                                            "message", "traceback")):
            raise ProtocolError("result error is not an error object")
        if not isinstance(error.get("detail", {}), dict) or outputs:
            raise ProtocolError("result error has a malformed detail, or outputs beside it")
        return InvocationResult(error=ErrorInfo.from_dict(error).to_dict(), spans=spans)
    encoded: dict[str, tuple[str, bytes]] = {}
    for item, size in zip(outputs, sizes, strict=True):
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)):
            raise ProtocolError("a result output is not a [name, encoding] pair")
        name, encoding = item
        if name not in declared_outputs or name in encoded or encoding not in ENCODINGS:
            raise ProtocolError(f"unexpected output {name[:100]!r} with encoding {encoding[:40]!r}")
        blob = data[pos : pos + size]
        if encoding == "json":
            strict_json(blob)
        encoded[name] = (encoding, blob)
        pos += size
    if set(encoded) != set(declared_outputs):
        raise ProtocolError(f"result outputs {sorted(encoded)[:20]} are not the declared {declared_outputs[:20]}")
    return InvocationResult(outputs=encoded, spans=spans)


__all__ = ["ProtocolError", "decode_inputs", "pack", "pack_result", "pack_task", "parse_result", "read_frame",
           "strict_json"]
