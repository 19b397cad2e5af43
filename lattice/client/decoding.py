"""Turning the head's answers into values: task outputs, a run's results or its typed error, per-task results.

Pure functions, no I/O, so every way of reaching the head (the sync and async clients, the LangGraph
backend) decodes by the same rules: :func:`~lattice.wire.encoding.decode_task_value` decides per
value who wrote it and therefore whether it may be unpickled in full, under a
:class:`~lattice.wire.restricted_pickle.PickleTrust` the caller hands down.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from lattice.errors import ErrorInfo, RunCancelled, exception_from_error_info
from lattice.wire.encoding import Encoding, decode_task_value
from lattice.wire.restricted_pickle import PickleTrust

__all__ = ["TaskResult", "decode_outputs", "decode_task_value", "decode_wire_value", "results_or_raise"]

_UNTRUSTED = PickleTrust()  # nothing beyond the restricted decoder's safe types


def decode_wire_value(item: dict[str, Any], trust: PickleTrust = _UNTRUSTED, *, task: str | None = None,
                      output: str | None = None) -> Any:
    """A value as the head sends it (JSON inline, else base64 bytes), decoded by :func:`decode_task_value`."""
    encoding = item.get("encoding", Encoding.JSON)
    if encoding == Encoding.JSON:
        return item.get("value")
    return decode_task_value(encoding, base64.b64decode(item["data"]), trust, task=task, output=output)


def decode_outputs(outputs: dict[str, dict[str, Any]] | None, trust: PickleTrust = _UNTRUSTED,
                   task: str | None = None) -> dict[str, Any]:
    """Decode a dict of wire values: one task's outputs (``task`` given), or merged sink outputs.

    A merged item names its task itself (``"task"``, set by the head), and a shared output name is
    keyed ``"<task>.<output>"``: the error for a refused value then names the plain output.
    """
    decoded = {}
    for key, item in (outputs or {}).items():
        owner = item.get("task")
        if owner is None:
            decoded[key] = decode_wire_value(item, trust, task=task, output=key)
        else:
            decoded[key] = decode_wire_value(item, trust, task=owner, output=key.removeprefix(f"{owner}."))
    return decoded


def results_or_raise(body: dict[str, Any], trust: PickleTrust = _UNTRUSTED) -> dict[str, Any]:
    """A finished run's results as values; a failed or cancelled run raises its typed error.

    The error carries ``trust``, so its ``original_exception()`` decodes as this call would.
    """
    state = body["state"]
    if state == "succeeded":
        return decode_outputs(body.get("outputs"), trust)
    if state == "cancelled":
        raise RunCancelled(body["run_id"])
    error = ErrorInfo.from_dict(body.get("error") or {"kind": "internal", "type": "RunFailed",
                                                     "message": "the run failed"})
    raise exception_from_error_info(body["run_id"], body.get("failed_task"), error, trust)


@dataclass
class TaskResult:
    """One task of a run: its state, decoded outputs, attempt, node, timings and error."""

    name: str
    state: str
    outputs: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    attempt_id: str | None = None
    node_id: str | None = None
    #: attempts lost to nodes (or a head) that died under this task: not retries, at most 3
    node_losses: int = 0
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    error: ErrorInfo | None = None

    @classmethod
    def from_api(cls, item: dict[str, Any], trust: PickleTrust = _UNTRUSTED) -> TaskResult:
        """One task as ``GET /runs/{id}/tasks`` gives it; its outputs decoded under ``trust``."""
        return cls(
            name=item["name"], state=item["state"], outputs=decode_outputs(item.get("outputs"), trust, item["name"]),
            attempt=item.get("attempt", 0), attempt_id=item.get("attempt_id"), node_id=item.get("node_id"),
            node_losses=item.get("node_losses", 0), queued_at=item.get("queued_at"), started_at=item.get("started_at"),
            finished_at=item.get("finished_at"), duration_s=item.get("duration_s"),
            error=ErrorInfo.from_dict(item["error"]) if item.get("error") else None,
        )
