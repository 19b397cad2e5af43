"""What the orchestrator needs from whatever executes attempts: the :class:`Backend` protocol.

The orchestrator's loop talks to a backend only through these methods, so it runs unchanged against Ray
(``lattice.executor.dispatch.RayBackend``, the one implementation a head uses) and against an in-memory
fake in the unit tests (``tests/unit/core/fake_backend.py``), which drives the real loop with no Ray.
The dependency points from the executor to core: the Ray backend imports :class:`Attempt` and the node
types from here, and ``lattice.core`` never imports ``lattice.executor``.

Handles (``fn_ref``, upstream refs, the value :meth:`Backend.submit` returns) are opaque to core: Ray
``ObjectRef`` objects for Ray, anything hashable for a fake. A backend reports each attempt's end once,
through the callback, with either the attempt's :class:`~lattice.wire.attempt.Envelope` or an
:class:`~lattice.wire.failures.ErrorInfo` saying why there is none (a worker died, the node was lost): what
the backend's own exceptions mean is the backend's business, never the orchestrator's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lattice.core.cluster import Node
from lattice.wire.attempt import AttemptPayload, Envelope
from lattice.wire.failures import ErrorInfo
from lattice.wire.resources import Resources

#: ``on_done(envelope, None)`` when the attempt returned, ``on_done(None, error)`` when it could not.
#: A backend may call it on any thread; the orchestrator hands it over to its loop.
DoneCallback = Callable[[Envelope | None, ErrorInfo | None], None]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One submission: the payload, where it goes and what it needs there."""

    payload: AttemptPayload
    #: the function's bytes as put into the backend once per distinct function (None for a builtin)
    fn_ref: Any
    #: the upstream attempts' envelopes, in the order ``payload.refs`` indexes them
    upstream: list[Any]
    resources: Resources
    #: the node the resource manager reserved it on; the backend must run it there
    node_id: str
    #: GPUs to ask for (``resources.gpu``, or the share of a GPU that ``gpu_memory`` implies on that node)
    gpu_fraction: float
    #: True when a cancel may kill the attempt's process (a timeout at sandbox level ``none``)
    killable: bool
    #: run it in a process of its own, never in an executor shared with other attempts (a ``cpu=0`` task
    #: whose shared executor crashed under it: if it was the one that crashed it, it now fails alone)
    isolated: bool = False


class Backend(Protocol):
    """Runs attempts on the cluster's nodes; the orchestrator's only way to execute anything."""

    def nodes(self) -> list[Node]:
        """A fresh view of the cluster: every node with its capacity and liveness (no reservations)."""
        ...

    def put(self, value: Any) -> Any:
        """Store a value where attempts can receive it (a function's bytes, a resumed task's envelope)."""
        ...

    def submit(self, attempt: Attempt, on_done: DoneCallback) -> Any:
        """Start an attempt on ``attempt.node_id``; returns its handle (also what downstream attempts
        receive in :attr:`Attempt.upstream`). ``on_done`` is called once when it ends."""
        ...

    def cancel(self, ref: Any, force: bool) -> None:
        """Stop an attempt (``force``: kill its process). Its late ``on_done``, if any, is ignored."""
        ...

    def warm_up(self, nodes: list[Node]) -> None:
        """Prepare the nodes so the first attempts start fast (worker processes, executors)."""
        ...

    def shutdown(self) -> None:
        """Release what the backend holds; no call follows."""
        ...


__all__ = ["Attempt", "Backend", "DoneCallback"]
