"""An in-memory :class:`~lattice.core.backend.Backend`: attempts wait until the test ends them.

With it, ``test_orchestrator.py`` drives the real loop (the orchestrator, the scheduler, the resource
manager, a real store on a temp SQLite file) with no Ray: a test submits runs, then finishes, fails or
lets attempts time out, and reads what the head stored and announced.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from lattice.core.backend import Attempt, DoneCallback
from lattice.core.cluster import Node
from lattice.wire.attempt import Envelope
from lattice.wire.failures import ErrorInfo, ErrorKind


@dataclass(frozen=True)
class FakeRef:
    """A handle the fake hands out: for an attempt (``attempt_id``) or for a value put (``key``)."""

    key: str


@dataclass
class Submitted:
    attempt: Attempt
    on_done: DoneCallback
    ref: FakeRef
    done: bool = False

    @property
    def attempt_id(self) -> str:
        return self.attempt.payload.attempt_id


@dataclass
class FakeBackend:
    """Holds every submission; nothing runs until the test says how it ended."""

    cluster: list[Node] = field(default_factory=lambda: [Node("n1", "127.0.0.1", cpu=2, gpu=0, memory_mb=4096)])
    submitted: dict[str, Submitted] = field(default_factory=dict)
    objects: dict[FakeRef, Any] = field(default_factory=dict)
    cancelled: list[tuple[str, bool]] = field(default_factory=list)
    warmed: list[str] = field(default_factory=list)
    closed: bool = False

    # --- the Backend protocol ------------------------------------------------------------------------

    def nodes(self) -> list[Node]:
        return [dataclasses.replace(node) for node in self.cluster]  # a fresh view, as Ray's is

    def put(self, value: Any) -> FakeRef:
        ref = FakeRef(f"object-{len(self.objects)}")
        self.objects[ref] = value
        return ref

    def submit(self, attempt: Attempt, on_done: DoneCallback) -> FakeRef:
        attempt_id = attempt.payload.attempt_id
        assert attempt_id not in self.submitted, f"attempt id {attempt_id} reused"
        ref = FakeRef(attempt_id)
        self.submitted[attempt_id] = Submitted(attempt, on_done, ref)
        return ref

    def cancel(self, ref: Any, force: bool) -> None:
        self.cancelled.append((ref.key, force))

    def warm_up(self, nodes: list[Node]) -> None:
        self.warmed.extend(node.node_id for node in nodes)

    def shutdown(self) -> None:
        self.closed = True

    # --- what a test does ----------------------------------------------------------------------------

    def live(self) -> list[str]:
        """Attempts submitted and not ended (a cancelled one counts until the test ends it)."""
        return [attempt_id for attempt_id, sub in self.submitted.items() if not sub.done]

    def live_tasks(self) -> list[str]:
        return sorted(self.submitted[a].attempt.payload.task for a in self.live())

    def attempt_of(self, task: str) -> str:
        """The one live attempt of ``task``."""
        found = [a for a in self.live() if self.submitted[a].attempt.payload.task == task]
        assert len(found) == 1, f"live attempts of {task!r}: {found}"
        return found[0]

    def succeed(self, attempt_id: str, outputs: dict[str, Any] | None = None, *, stdout: str = "",
                stderr: str = "", started_at: float = 1.0, finished_at: float = 1.5) -> Envelope:
        """End an attempt with these outputs (JSON-encoded; every declared output defaults to None)."""
        sub = self._end(attempt_id)
        declared = sub.attempt.payload.outputs
        values = {name: None for name in declared} | (outputs or {})
        envelope = Envelope(
            outputs={name: ("json", json.dumps(value).encode()) for name, value in values.items()},
            stdout=stdout, stderr=stderr, started_at=started_at, finished_at=finished_at,
            node_id=sub.attempt.node_id, pid=4242)
        sub.on_done(envelope, None)
        return envelope

    def raise_in_task(self, attempt_id: str, message: str = "boom", kind: ErrorKind = ErrorKind.EXCEPTION,
                      **detail: Any) -> None:
        """End an attempt with an error envelope (the task raised, or its outputs did not check)."""
        sub = self._end(attempt_id)
        error = ErrorInfo(kind, "ValueError", message, "Traceback ...", detail=detail)
        sub.on_done(Envelope(error=error.to_dict(), stderr="", started_at=1.0, finished_at=1.2,
                             node_id=sub.attempt.node_id, pid=4242), None)

    def lose(self, attempt_id: str, kind: ErrorKind = ErrorKind.WORKER_DIED) -> None:
        """End an attempt without an envelope, as when its worker died."""
        sub = self._end(attempt_id)
        sub.on_done(None, ErrorInfo(kind, "WorkerCrashedError", "the worker died"))

    def _end(self, attempt_id: str) -> Submitted:
        sub = self.submitted[attempt_id]
        assert not sub.done, f"attempt {attempt_id} already ended"
        sub.done = True
        return sub
