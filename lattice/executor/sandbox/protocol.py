"""Frames between the worker and a sandbox child: a JSON header plus raw byte blobs.

Down (worker -> child) the frame carries the task (function and params as cloudpickle: the child
is where user code is unpickled). Up (child -> worker) it carries the result, and the worker must
never unpickle what a sandboxed process wrote: that would run the task's code outside the sandbox.
So the result frame is JSON plus raw output bytes, parsed strictly and bounded in size by
:func:`parse_result`; the encoded outputs stay opaque bytes, as at level ``none``.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

from lattice.executor.invoke import InvocationResult

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


def pack_result(result: InvocationResult) -> bytes:
    names = list(result.outputs)
    header = {
        "error": result.error,
        "outputs": [[name, result.outputs[name][0]] for name in names],
    }
    return pack(header, [result.outputs[name][1] for name in names])


def parse_result(data: bytes, declared_outputs: list[str]) -> InvocationResult:
    """Strictly parse a child's result frame (whole, already size-bounded by the reader)."""
    if len(data) < _LEN.size:
        raise ProtocolError("empty result frame")
    (hsize,) = _LEN.unpack_from(data)
    if hsize > MAX_HEADER_BYTES or _LEN.size + hsize > len(data):
        raise ProtocolError("result header too large or truncated")
    header = json.loads(data[_LEN.size : _LEN.size + hsize])
    if not isinstance(header, dict):
        raise ProtocolError("result header is not an object")
    sizes = header.get("blob_sizes", [])
    outputs = header.get("outputs", [])
    error = header.get("error")
    if error is not None and not isinstance(error, dict):
        raise ProtocolError("result error is not an object")
    if not isinstance(sizes, list) or not isinstance(outputs, list) or len(sizes) != len(outputs):
        raise ProtocolError("result outputs and blob sizes disagree")
    pos = _LEN.size + hsize
    if pos + sum(int(s) for s in sizes) != len(data):
        raise ProtocolError("result blobs do not match their sizes")
    encoded: dict[str, tuple[str, bytes]] = {}
    for (name, encoding), size in zip(outputs, sizes, strict=True):
        if name not in declared_outputs or encoding not in ENCODINGS:
            raise ProtocolError(f"unexpected output {name!r} with encoding {encoding!r}")
        encoded[str(name)] = (str(encoding), data[pos : pos + int(size)])
        pos += int(size)
    return InvocationResult(outputs=encoded, error=error)


__all__ = ["ProtocolError", "pack", "pack_result", "parse_result", "read_frame"]
