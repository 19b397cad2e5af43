"""How task values become bytes, and back.

A value is stored as JSON when it is made only of JSON's own types (so the head, the Board and other
languages can read it), and as cloudpickle otherwise. Decoding a pickle runs code, so the label says
who made it: ``pickle`` comes from trusted code (the submitter's literals, a task at sandbox level
``none``), ``sandboxed-pickle`` from a task that ran in a sandbox. Only a sandbox or the client's
restricted decoder (``lattice.wire.restricted_pickle``) reads a ``sandboxed-pickle``, unless the user
opts in to trusting it; the head never decodes either.
"""

from __future__ import annotations

import base64
import json
from enum import StrEnum
from typing import Any

import cloudpickle

from lattice.wire.errors import LatticeError, UntrustedOutputError
from lattice.wire.restricted_pickle import PickleTrust, UntrustedPickleError


class Encoding(StrEnum):
    JSON = "json"
    #: cloudpickle written by trusted code (the submitter, a task at level ``none``)
    PICKLE = "pickle"
    #: cloudpickle written by a sandboxed task: untrusted, never unpickled outside a sandbox unrestricted
    SANDBOXED_PICKLE = "sandboxed-pickle"


_JSON_SCALARS = (str, int, float, bool, type(None))


def is_json_native(value: Any, _depth: int = 0) -> bool:
    """True when ``json.loads(json.dumps(value)) == value`` with the same types all the way down."""
    if _depth > 100:
        return False
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if type(value) in _JSON_SCALARS:
        return True
    if type(value) is list:
        return all(is_json_native(v, _depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and is_json_native(v, _depth + 1) for k, v in value.items())
    return False


def encode_value(value: Any) -> tuple[Encoding, bytes]:
    if is_json_native(value):
        return Encoding.JSON, json.dumps(value, separators=(",", ":")).encode()
    return Encoding.PICKLE, cloudpickle.dumps(value)


def decode_value(encoding: str, data: bytes) -> Any:
    """Decode a value in trusted surroundings with no extra trust: :func:`decode_task_value`'s rule."""
    return decode_task_value(encoding, data)


def decode_task_value(encoding: str, data: bytes, trust: PickleTrust | None = None, *, task: str | None = None,
                      output: str | None = None) -> Any:
    """The one rule by which the client turns a task's stored value into an object.

    ``json`` is data; ``pickle`` was written by trusted code (the submitter, a task at level ``none``)
    and is unpickled in full; ``sandboxed-pickle`` was written by a sandboxed task, so it is unpickled
    in full only when ``trust`` says so, else by the restricted decoder, and a refusal becomes
    :class:`~lattice.UntrustedOutputError` naming ``task`` and ``output``.
    """
    if encoding == Encoding.JSON:
        return json.loads(data)
    if encoding == Encoding.PICKLE:
        return cloudpickle.loads(data)
    if encoding == Encoding.SANDBOXED_PICKLE:
        try:
            return (trust or PickleTrust()).loads(data)
        except UntrustedPickleError as exc:
            raise UntrustedOutputError(task, output, exc.global_name) from None
    where = f"output {output!r} of task {task!r}" if task else f"output {output!r}"
    raise UnknownEncodingError(f"{where} has the unknown encoding {encoding!r}; this client reads json, pickle and "
                       "sandboxed-pickle (is the client older than the head?)")


class UnknownEncodingError(LatticeError, ValueError):
    """A stored value has an encoding this side of the wire does not know."""


def to_wire(encoding: str, data: bytes) -> dict[str, Any]:
    """A stored value as it travels in JSON over HTTP: JSON values inline, others base64."""
    if encoding == Encoding.JSON:
        return {"encoding": "json", "value": json.loads(data)}
    return {"encoding": str(encoding), "data": base64.b64encode(data).decode()}


def from_wire(item: dict[str, Any]) -> tuple[Encoding, bytes]:
    """Inverse of :func:`to_wire`; never decodes a pickle (safe in the head)."""
    encoding = Encoding(item.get("encoding", "json"))
    if encoding == Encoding.JSON:
        return encoding, json.dumps(item.get("value"), separators=(",", ":")).encode()
    return encoding, base64.b64decode(item["data"])


def value_to_wire(value: Any) -> dict[str, Any]:
    return to_wire(*encode_value(value))


def value_from_wire(item: dict[str, Any]) -> Any:
    """Client side: decode a value the head sent (unpickles: only for the user's own data)."""
    if item.get("encoding", "json") == Encoding.JSON:
        return item.get("value")
    return decode_value(item["encoding"], base64.b64decode(item["data"]))
